// One index's shared state (config, gate, slots, the usearch index) and the
// helpers that create it and grow its capacity. Every worker and the JS
// wrapper hold it by shared_ptr, so it outlives whichever finishes last.
#pragma once

#include "usearch.h"

#include "gate.h"
#include "slot-pool.h"
#include "f32-kernels.h"

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>

namespace {

using namespace unum::usearch;
using index_t = index_dense_gt<std::uint64_t, std::uint32_t>;
using key_t = std::uint64_t;

struct Config {
    std::size_t dimensions = 0;
    metric_kind_t metric = metric_kind_t::l2sq_k;
    scalar_kind_t scalar = scalar_kind_t::f32_k;
    std::size_t connectivity = 16;
    std::size_t expansion_add = 128;
    std::size_t slots = 4;
};

// The index plus everything needed to use it from several pool threads.
// Shared by the JS wrapper and every in-flight worker (shared_ptr), so a
// garbage-collected wrapper never frees memory a worker still uses.
struct Core {
    Config config;
    Gate gate;
    SlotPool slots;
    index_t index;
    bool closed = false; // written under the exclusive gate
    // At most how many of the key table's slots hold an entry, live or erased
    // (see reindex_keys below). Adds raise it; a rebuild or a growth resets it.
    std::atomic<std::size_t> populated_bound{0};
    // Every stored vector is unit length and the unit-vector kernel is in use
    // (f32-kernels.h, use_own_kernel below). Set when the index is made or
    // loaded, before anything else sees it.
    bool unit = false;

    explicit Core(Config const& c) : config(c), slots(c.slots) {}
};

// usearch's own ef is pinned to 1: every search asks for max(k, ef) results
// instead, which is the same HNSW search with ef chosen per call and no
// shared state mutated (see native.ts).
constexpr std::size_t pinned_expansion_search = 1;

bool normalizes(Config const& c) { return normalizes(c.metric, c.scalar); }

// With `unit`: the unit-vector kernel; for float32 l2sq and ip our float32 kernel (both f32-kernels.h); else usearch's own.
metric_punned_t make_metric(Config const& c, bool unit = false) {
    if (unit)
        return unit_metric(c.dimensions);
    if (own_kernel(c.metric, c.scalar))
        return own_metric(c.dimensions, c.metric);
    return metric_punned_t::builtin(c.dimensions, c.metric, c.scalar);
}

// After a load (usearch takes the kernel from the header): the unit kernel
// when the caller vouches that every stored vector is unit length (the
// snapshot's authenticated `unitVectors`), our float32 kernel for a float32
// l2sq or ip index, else the index's own. False when the swap failed.
bool use_own_kernel(Core& core, bool unit) {
    core.unit = false; // the loaded header's kernel, until ours is in
    if (own_kernel(core.config.metric, core.config.scalar))
        return core.index.try_change_metric(make_metric(core.config)); // a failed swap fails the load
    if (!unit || !normalizes(core.config))
        return true;
    core.unit = core.index.try_change_metric(make_metric(core.config, true));
    return core.unit;
}

std::string make_index(Core& core) {
    core.unit = normalizes(core.config);
    metric_punned_t metric = make_metric(core.config, core.unit);
    if (metric.missing())
        return "usearch has no kernel for this metric and precision";
    index_dense_config_t config(core.config.connectivity, core.config.expansion_add, pinned_expansion_search);
    auto state = index_t::make(metric, config, default_free_value<key_t>(), index_limits_t(0, core.config.slots));
    if (!state)
        return state.error.release();
    core.index = std::move(state.index);
    return {};
}

std::size_t grow_target(std::size_t needed) {
    std::size_t target = 64;
    while (target < needed)
        target *= 2;
    return target;
}

// usearch 2.25 keeps key → slot in a flat hash set (`slot_lookup_`) whose
// erased entries stay behind as tombstones; it rehashes only when it grows,
// and decides that by live entries alone. Under churn (overwrites, deletes)
// adds keep landing in empty slots until none is left: a lookup then wraps
// the whole table, `equal_range` hands back a range at a slot that does not
// match, and a remove frees a live node (found by the model-based test: the
// free-slot ring overflowed, "Ring buffer is full", after 112 overwrites of
// 24 ids). `reindex_keys_` — private, what usearch runs after a load —
// rebuilds the table from the nodes. It is reached through the standard
// explicit-instantiation idiom (access checks do not apply to the template
// arguments of an explicit instantiation), and run before the table can fill.
template <typename Tag, typename Tag::type Member> struct expose_member {
    friend typename Tag::type member_of(Tag) { return Member; }
};
struct reindex_keys_tag {
    using type = void (index_t::*)();
    friend type member_of(reindex_keys_tag);
};
template struct expose_member<reindex_keys_tag, &index_t::reindex_keys_>;

// The key table has capacity() * 3/2 slots; rebuild once adds could fill 8/9 of them.
bool key_table_crowded(Core const& core, std::size_t adding) {
    std::size_t usable = core.index.capacity();
    return core.populated_bound + adding > usable + usable / 3;
}

// Grows capacity if `needed` members do not fit, and rebuilds the key table
// if `adding` more entries could crowd it (both under the exclusive gate).
std::string ensure_capacity(Core& core, std::size_t needed, std::size_t adding = 0) {
    {
        ReadHold hold(core.gate);
        if (core.closed)
            return "closed";
        if (needed <= core.index.capacity() && !key_table_crowded(core, adding)) {
            core.populated_bound += adding;
            return {};
        }
    }
    ExclusiveHold hold(core.gate);
    if (core.closed)
        return "closed";
    if (needed > core.index.capacity()) {
        if (!core.index.try_reserve(index_limits_t(grow_target(needed), core.config.slots)))
            return "out of memory while growing the index";
        core.populated_bound = core.index.size(); // growing rehashed the live entries only
    }
    if (key_table_crowded(core, adding)) {
        (core.index.*member_of(reindex_keys_tag{}))();
        core.populated_bound = core.index.size();
    }
    core.populated_bound += adding;
    return {};
}

} // namespace
