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
    std::size_t live = 0;           // live nodes examined
    std::vector<std::uint8_t> seen; // per slot: reached from the entry point
};

// Marks everything reachable from `start` through base-layer links as seen;
// with `in_degree`, counts each newly seen node's links into their targets.
void mark_from(graph_t& g, slot_t start, std::vector<std::uint8_t>& seen, std::vector<std::uint32_t>* in_degree) {
    std::size_t n = seen.size();
    std::vector<slot_t> stack;
    stack.reserve(1024);
    seen[start] = 1;
    stack.push_back(start);
    while (!stack.empty()) {
        slot_t s = stack.back();
        stack.pop_back();
        auto view = g.neighbors(s, 0);
        for (auto it = view.begin(); it != view.end(); ++it) {
            slot_t next = it.slot();
            if (next >= n)
                continue;
            if (in_degree)
                ++(*in_degree)[next];
            if (!seen[next]) {
                seen[next] = 1;
                stack.push_back(next);
            }
        }
    }
}

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
    out.seen.assign(n, 0);
    if (entry < n)
        mark_from(g, static_cast<slot_t>(entry), out.seen, nullptr);
    for (std::size_t s = 0; s != n; ++s) {
        key_t key = (*g.citerator_at(static_cast<slot_t>(s))).key;
        if (key == free_key)
            continue;
        ++out.live;
        if (!out.seen[s]) {
            out.slots.push_back(static_cast<slot_t>(s));
            out.keys.push_back(key);
        }
    }
    return out;
}

// How many base-layer links from reached nodes point at each slot.
std::vector<std::uint32_t> reached_in_degree(graph_t& g, std::vector<std::uint8_t> const& seen) {
    std::vector<std::uint32_t> in_degree(seen.size(), 0);
    for (std::size_t s = 0; s != seen.size(); ++s) {
        if (!seen[s])
            continue;
        auto view = g.neighbors(static_cast<slot_t>(s), 0);
        for (auto it = view.begin(); it != view.end(); ++it)
            if (it.slot() < seen.size())
                ++in_degree[it.slot()];
    }
    return in_degree;
}

// Relinks the live node at `slot` the way usearch relinks a reused slot: a
// fresh search from the entry point, new outgoing links on every level and
// reverse links under usearch's pruning heuristic. The fallback when
// link_in finds no reachable neighbour. Caller holds the exclusive gate.
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

// How many reached nodes link to each repaired one: more than one, so a
// later prune of one link does not cut it off again.
constexpr std::size_t repair_in_links = 2;

// Makes the unreached node `orphan` reachable without touching its own
// links (its out-links are often the only in-links of other unreached
// nodes, which then come back with it): finds its nearest reached nodes by a
// search from the entry point, adds some of them to its base-layer list if it
// has room, and adds it to theirs — appended where a list has room, else in
// place of the link whose target has the most in-links from reached nodes
// (at least two, so that target stays reachable). Then marks what the orphan
// reaches as reached. Caller holds the exclusive gate and the thread slot.
std::string link_in(Core& core, slot_t orphan, key_t key, std::vector<std::uint8_t>& seen, std::vector<std::uint32_t>& in_degree,
                    std::size_t expansion, std::size_t thread, bool& linked) {
    graph_t& g = graph_of(core);
    std::size_t base_limit = g.config().connectivity_base;
    key_t free_key = core.index.free_key();
    SlotMetric metric{&core};
    index_search_config_t config;
    config.expansion = expansion;
    config.thread = thread;
    auto live = [free_key](typename graph_t::member_cref_t const& m) { return static_cast<key_t>(m.key) != free_key; };
    auto found = g.search(vector_at(core, orphan), std::min<std::size_t>(expansion, 32), metric, config, live);
    if (!found)
        return found.error.release();
    std::vector<slot_t> hosts;
    for (std::size_t i = 0; i != found.size(); ++i) {
        slot_t s = static_cast<slot_t>(found[i].member.slot);
        if (s != orphan && s < seen.size() && seen[s])
            hosts.push_back(s);
    }
    linked = false;
    if (hosts.empty())
        return relink(core, orphan, key, expansion, thread);

    auto own = links_of(g, orphan, 0);
    for (std::size_t i = 0; i != hosts.size() && own.size() < base_limit && i < repair_in_links * 2; ++i) {
        bool present = false;
        for (std::size_t j = 0; j != own.size(); ++j)
            present = present || own[j] == hosts[i];
        if (!present)
            own.push_back(hosts[i]);
    }

    std::size_t in_links = 0;
    for (slot_t host : hosts) {
        if (in_links == repair_in_links)
            break;
        auto links = links_of(g, host, 0);
        bool present = false;
        for (std::size_t j = 0; j != links.size(); ++j)
            present = present || links[j] == orphan;
        if (present) {
            ++in_links;
            continue;
        }
        if (links.size() < base_limit) {
            links.push_back(orphan);
            ++in_degree[orphan];
            ++in_links;
            continue;
        }
        byte_t const* at = vector_at(core, host);
        std::size_t victim = links.size();
        std::uint32_t most = 1;
        distance_punned_t farthest = 0;
        for (std::size_t j = 0; j != links.size(); ++j) {
            slot_t t = links[j];
            if (t >= in_degree.size() || in_degree[t] < 2)
                continue;
            distance_punned_t d = metric.f(at, vector_at(core, t));
            if (in_degree[t] > most || (in_degree[t] == most && d > farthest))
                victim = j, most = in_degree[t], farthest = d;
        }
        if (victim == links.size())
            continue; // every link here is some node's last: try the next host
        slot_t evicted = links[victim];
        links.erase_if([evicted](slot_t s) { return s == evicted; });
        links.push_back(orphan);
        --in_degree[evicted];
        ++in_degree[orphan];
        ++in_links;
    }
    if (in_links == 0)
        return relink(core, orphan, key, expansion, thread);
    linked = true;
    mark_from(g, orphan, seen, &in_degree);
    return {};
}

struct RepairReport {
    std::size_t found = 0;     // unreachable live nodes at the first check
    std::size_t repaired = 0;  // nodes linked in (a node may take more than one round)
    std::size_t remaining = 0; // unreachable at the last check
    std::size_t rounds = 0;    // checks run
    std::size_t live = 0;
    std::vector<key_t> found_keys;
};

// Check, then (if `repair`) link in what is unreachable and check again, up
// to `max_rounds` repair rounds. Within a round, a node that an earlier
// repair already made reachable (through the out-links of the node just
// linked in) is skipped. The check holds the read gate (searches go on;
// writes are ordered around this call in JS); each link-in holds the
// exclusive gate briefly, so searches get in between.
std::string check_and_repair(Core& core, bool repair, std::size_t max_rounds, std::size_t expansion, RepairReport& report) {
    SlotHold thread(core.slots);
    for (std::size_t round = 0;; ++round) {
        Unreachable found;
        std::vector<std::uint32_t> in_degree;
        {
            ReadHold hold(core.gate);
            if (core.closed)
                return "closed";
            found = find_unreachable(core);
            if (repair && !found.keys.empty() && round != max_rounds)
                in_degree = reached_in_degree(graph_of(core), found.seen);
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
            slot_t slot = found.slots[i];
            if (found.seen[slot])
                continue; // reached through a node linked in before it
            ExclusiveHold hold(core.gate);
            if (core.closed)
                return "closed";
            graph_t& g = graph_of(core);
            // Defensive: JS orders this call after every write, so the node is as the check saw it.
            if (slot >= g.size() || (*g.citerator_at(slot)).key != found.keys[i])
                continue;
            bool linked = false;
            std::string error = link_in(core, slot, found.keys[i], found.seen, in_degree, expansion, thread.slot, linked);
            if (!error.empty())
                return error;
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
