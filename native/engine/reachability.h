// Records the graph cannot reach: a check that walks the HNSW base layer from
// the entry point and lists the live nodes it never meets, and a repair that
// re-links each such node, both on the pool.
//
// Why they exist: usearch 2.25 leaves live nodes without in-links. When `add`
// reuses a removed node's slot it calls `index_gt::update()`, which wipes that
// slot's outgoing links and relinks it at the new vector (its TODO about the
// old reverse links); a node whose only in-link came from that slot is cut
// off. Fresh builds leave a few too (the reverse-link heuristic prunes a
// node's last in-link, more often with parallel inserts). Search only walks
// links, so such a record is stored but never returned at any ef.
//
// Access to usearch's graph: index_gt has public read-only views
// (`neighbors(slot, level)`, `citerator_at`, `size`), but the graph itself
// (`index_dense_gt::typed_`), its entry slot, the stored vectors and the
// mutable link lists are private. As in core.h (reindex_keys_), they are
// reached through the explicit-instantiation idiom — access checks do not
// apply to the template arguments of an explicit instantiation — here with
// C++17 `auto` parameters so no private type has to be spelled. Nothing in
// usearch's headers is patched or copied; a usearch upgrade that renames one
// of these members fails to compile rather than misbehaving.
#pragma once

#include "promise-worker.h"

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

namespace {

template <typename Tag, auto Member> struct expose_private {
    friend auto private_of(Tag) { return Member; }
};

struct graph_tag {
    friend auto private_of(graph_tag);
};
struct vectors_tag {
    friend auto private_of(vectors_tag);
};
template struct expose_private<graph_tag, &index_t::typed_>;
template struct expose_private<vectors_tag, &index_t::vectors_lookup_>;

// usearch's index_gt (a private alias inside index_dense_gt), named by type only.
using graph_t = std::remove_pointer_t<std::remove_reference_t<decltype(std::declval<index_t&>().*private_of(graph_tag{}))>>;

struct entry_tag {
    friend auto private_of(entry_tag);
};
struct node_at_tag {
    friend auto private_of(node_at_tag);
};
struct links_tag {
    friend auto private_of(links_tag);
};
template struct expose_private<entry_tag, &graph_t::entry_slot_>;
template struct expose_private<node_at_tag, &graph_t::node_at_>;
template struct expose_private<links_tag, &graph_t::neighbors_>;

using slot_t = std::uint32_t; // index_dense_gt<key, std::uint32_t>: the compressed slot type

graph_t& graph_of(Core& core) { return *(core.index.*private_of(graph_tag{})); }
byte_t const* vector_at(Core& core, std::size_t slot) { return (core.index.*private_of(vectors_tag{}))[slot]; }

// The mutable link list of `slot` at `level` (usearch's neighbors_ref_t: size, push_back, erase_if).
auto links_of(graph_t& g, std::size_t slot, std::size_t level) {
    auto node = (g.*private_of(node_at_tag{}))(slot);
    return (g.*private_of(links_tag{}))(node, static_cast<std::int16_t>(level));
}

// Distances between stored nodes by slot, for index_gt::update(): the same
// computation as index_dense_gt's own (private) metric proxy.
struct SlotMetric {
    using cref_t = typename graph_t::member_cref_t;
    using citer_t = typename graph_t::member_citerator_t;
    Core* core;
    byte_t const* v(std::size_t slot) const { return vector_at(*core, slot); }
    distance_punned_t f(byte_t const* a, byte_t const* b) const { return core->index.metric()(a, b); }
    distance_punned_t operator()(byte_t const* a, cref_t b) const { return f(a, v(get_slot(b))); }
    distance_punned_t operator()(cref_t a, cref_t b) const { return f(v(get_slot(a)), v(get_slot(b))); }
    distance_punned_t operator()(byte_t const* a, citer_t b) const { return f(a, v(get_slot(b))); }
    distance_punned_t operator()(citer_t a, citer_t b) const { return f(v(get_slot(a)), v(get_slot(b))); }
    distance_punned_t operator()(byte_t const* a, byte_t const* b) const { return f(a, b); }
};

struct Unreachable {
    std::vector<slot_t> slots;
    std::vector<key_t> keys;
    std::size_t live = 0; // live nodes examined
};

// Live nodes that a base-layer walk from the entry point never meets. The
// caller holds the gate (read or stronger). Removed nodes are walked through
// (searches do too) but never reported. Level 0 only: every search ends with
// a base-layer walk, and every node lives there; a node reachable only
// through upper-layer links is reported too (a repair costs one relink).
// O(nodes × base connectivity) reads and one byte per node.
Unreachable find_unreachable(Core& core) {
    Unreachable out;
    graph_t& g = graph_of(core);
    std::size_t n = g.size();
    if (n == 0)
        return out;
    key_t free_key = core.index.free_key();
    std::size_t entry = g.*private_of(entry_tag{});
    std::vector<std::uint8_t> seen(n, 0);
    std::vector<slot_t> stack;
    stack.reserve(1024);
    if (entry < n) {
        seen[entry] = 1;
        stack.push_back(static_cast<slot_t>(entry));
    }
    while (!stack.empty()) {
        slot_t s = stack.back();
        stack.pop_back();
        auto view = g.neighbors(s, 0);
        for (auto it = view.begin(); it != view.end(); ++it) {
            slot_t next = it.slot();
            if (next < n && !seen[next]) {
                seen[next] = 1;
                stack.push_back(next);
            }
        }
    }
    for (std::size_t s = 0; s != n; ++s) {
        key_t key = (*g.citerator_at(static_cast<slot_t>(s))).key;
        if (key == free_key)
            continue;
        ++out.live;
        if (!seen[s]) {
            out.slots.push_back(static_cast<slot_t>(s));
            out.keys.push_back(key);
        }
    }
    return out;
}

// Relinks the live node at `slot` the way usearch relinks a reused slot: a
// fresh search from the entry point at `expansion`, new outgoing links to its
// nearest nodes on every level it lives on, and reverse links from them
// (subject to usearch's pruning heuristic). Caller holds the exclusive gate
// and the thread slot `thread`.
std::string relink(Core& core, slot_t slot, key_t key, std::size_t expansion, std::size_t thread) {
    graph_t& g = graph_of(core);
    index_update_config_t config;
    config.expansion = expansion;
    config.thread = thread;
    auto result = g.update(g.iterator_at(slot), key, vector_at(core, slot), SlotMetric{&core}, config);
    if (!result)
        return result.error.release();
    return {};
}

// Last resort for a node the heuristic keeps pruning out of every reverse
// list: append it to the base-layer list of its nearest out-neighbour with
// room, or else have that neighbour's farthest link give way (that link's
// target keeps whatever other in-links it has; the next check catches it if
// it had none). Caller holds the exclusive gate.
bool force_in_link(Core& core, slot_t slot) {
    graph_t& g = graph_of(core);
    std::size_t base_limit = g.config().connectivity_base;
    if (base_limit == 0)
        base_limit = core.config.connectivity * 2;
    SlotMetric metric{&core};
    byte_t const* mine = vector_at(core, slot);
    std::vector<std::pair<distance_punned_t, slot_t>> near;
    auto view = g.neighbors(slot, 0);
    for (auto it = view.begin(); it != view.end(); ++it)
        if (it.slot() != slot)
            near.emplace_back(metric.f(mine, vector_at(core, it.slot())), it.slot());
    std::sort(near.begin(), near.end());
    for (auto const& candidate : near) {
        auto links = links_of(g, candidate.second, 0);
        if (links.size() < base_limit) {
            links.push_back(slot);
            return true;
        }
    }
    if (near.empty())
        return false;
    slot_t host = near.front().second;
    auto links = links_of(g, host, 0);
    byte_t const* at = vector_at(core, host);
    slot_t farthest = links[0];
    distance_punned_t worst = metric.f(at, vector_at(core, farthest));
    for (std::size_t i = 1; i < links.size(); ++i) {
        distance_punned_t d = metric.f(at, vector_at(core, links[i]));
        if (d > worst)
            worst = d, farthest = links[i];
    }
    links.erase_if([farthest](slot_t s) { return s == farthest; });
    links.push_back(slot);
    return true;
}

struct RepairReport {
    std::size_t found = 0;     // unreachable live nodes at the first check
    std::size_t repaired = 0;  // relinks performed (a node may take more than one round)
    std::size_t remaining = 0; // unreachable at the last check
    std::size_t rounds = 0;    // checks run
    std::size_t live = 0;
    std::vector<key_t> found_keys;
};

// Check, then (if `repair`) relink what is unreachable and check again, up to
// `max_rounds` repair rounds. Round 1 relinks through usearch's own update();
// later rounds also force an in-link for nodes still cut off. The check holds
// the read gate (searches go on; writes wait); each relink holds the
// exclusive gate briefly, so searches get in between relinks.
std::string check_and_repair(Core& core, bool repair, std::size_t max_rounds, std::size_t expansion, RepairReport& report) {
    SlotHold thread(core.slots);
    for (std::size_t round = 0;; ++round) {
        Unreachable found;
        {
            ReadHold hold(core.gate);
            if (core.closed)
                return "closed";
            found = find_unreachable(core);
        }
        ++report.rounds;
        if (round == 0) {
            report.found = found.keys.size();
            report.found_keys = found.keys;
            report.live = found.live;
        }
        report.remaining = found.keys.size();
        if (!repair || found.keys.empty() || round == max_rounds)
            return {};
        for (std::size_t i = 0; i != found.slots.size(); ++i) {
            ExclusiveHold hold(core.gate);
            if (core.closed)
                return "closed";
            graph_t& g = graph_of(core);
            slot_t slot = found.slots[i];
            // The node may have changed since the check (a write between the holds): skip it, the next check sees it.
            if (slot >= g.size() || (*g.citerator_at(slot)).key != found.keys[i])
                continue;
            if (round == 0) {
                std::string error = relink(core, slot, found.keys[i], expansion, thread.slot);
                if (!error.empty())
                    return error;
            } else if (!force_in_link(core, slot)) {
                std::string error = relink(core, slot, found.keys[i], expansion * 2, thread.slot);
                if (!error.empty())
                    return error;
            }
            ++report.repaired;
        }
    }
}

// checkGraph(repair, maxRounds, expansion) → Promise<{ found, repaired, remaining, rounds, live, keys }>
class ReachabilityWorker : public PromiseWorker {
  public:
    ReachabilityWorker(Napi::Env env, std::shared_ptr<Core> core, bool repair, std::size_t rounds, std::size_t expansion)
        : PromiseWorker(env, std::move(core)), repair_(repair), rounds_(rounds), expansion_(expansion) {}

  private:
    void Run() override {
        std::string error = check_and_repair(*core_, repair_, rounds_, expansion_, report_);
        if (!error.empty())
            Fail(error == "closed" ? Failure::closed : Failure::native, error);
    }
    Napi::Value Result(Napi::Env env) override {
        auto out = Napi::Object::New(env);
        out.Set("found", static_cast<double>(report_.found));
        out.Set("repaired", static_cast<double>(report_.repaired));
        out.Set("remaining", static_cast<double>(report_.remaining));
        out.Set("rounds", static_cast<double>(report_.rounds));
        out.Set("live", static_cast<double>(report_.live));
        auto keys = Napi::BigUint64Array::New(env, report_.found_keys.size());
        std::copy(report_.found_keys.begin(), report_.found_keys.end(), keys.Data());
        out.Set("keys", keys);
        return out;
    }
    bool repair_;
    std::size_t rounds_;
    std::size_t expansion_;
    RepairReport report_;
};

// For tests only: removes every link into `key`'s node on every level, so the
// node is cut off from the graph exactly as usearch's slot reuse can leave
// one. Resolves to how many links were removed.
class UnlinkWorker : public PromiseWorker {
  public:
    UnlinkWorker(Napi::Env env, std::shared_ptr<Core> core, key_t key) : PromiseWorker(env, std::move(core)), key_(key) {}

  private:
    void Run() override {
        ExclusiveHold hold(core_->gate);
        if (core_->closed)
            return Fail(Failure::closed, "closed");
        graph_t& g = graph_of(*core_);
        std::size_t n = g.size();
        slot_t target = static_cast<slot_t>(n);
        for (std::size_t s = 0; s != n; ++s)
            if ((*g.citerator_at(static_cast<slot_t>(s))).key == key_)
                target = static_cast<slot_t>(s);
        if (target == n)
            return Fail(Failure::invalid, "no such key", "key");
        if (target == g.*private_of(entry_tag{}))
            return Fail(Failure::invalid, "the key is the entry point", "key");
        for (std::size_t s = 0; s != n; ++s)
            for (std::size_t level = 0; level <= g.level_of(static_cast<slot_t>(s)); ++level)
                removed_ += links_of(g, s, level).erase_if([target](slot_t x) { return x == target; });
    }
    Napi::Value Result(Napi::Env env) override { return Napi::Number::New(env, static_cast<double>(removed_)); }
    key_t key_;
    std::size_t removed_ = 0;
};

} // namespace
