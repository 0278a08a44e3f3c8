// vecvault's native engine: a thin N-API layer over usearch's header-only
// HNSW core (index_dense_gt). All policy (argument checks, write ordering,
// chunking, close semantics) lives in src/engine/native.ts; this file only
// runs work on the libuv pool and keeps the index memory-safe.
//
// Concurrency inside one index (see also the comment in native.ts):
// - `Gate` has three modes: searches and serialize read together; inserts
//   (per row) and removes write together; capacity growth (usearch's reserve
//   must not overlap any add or search), load and close are exclusive.
// - Every operation that touches usearch's per-thread scratch (search, add,
//   exact distance) borrows a distinct "thread slot" from `SlotPool`, so two
//   pool threads never share a usearch context or cast buffer.
// - Ordering of adds/removes/serialize among themselves is done in JS.

#include <napi.h>

#include <usearch/index_dense.hpp>

#include "promise-task.h"

#include <algorithm>
#include <cmath>
#include <condition_variable>
#include <cstdint>
#include <cstring>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_set>
#include <vector>

namespace vecvault_crypto {
Napi::Object Define(Napi::Env env);  // native/crypto.cc: batched AES-GCM and HMAC
}

namespace {

using namespace unum::usearch;
using index_t = index_dense_gt<std::uint64_t, std::uint32_t>;
using key_t = std::uint64_t;

// ---------------------------------------------------------------- locking --

// Three-mode gate. Readers (searches, serialize) share it with readers,
// writers (inserting one row, removing a batch) with writers, and exclusive
// holders (reserve, load, close) with nobody.
//
// Why writers and readers never overlap: usearch's search takes no locks by
// design, so a search racing an insert can walk into the new node before its
// base-layer links exist and come back with a single hit. Writers hold the
// gate per row, so a waiting search gets in after at most one insert.
//
// Fairness: while another mode waits, no newcomer joins the current mode;
// when the gate empties it goes to the waiting mode that did not run last,
// exclusive first. Nothing can starve.
class Gate {
  public:
    enum class Mode { none, read, write, exclusive };

    void enter(Mode m) {
        std::unique_lock<std::mutex> lock(mutex_);
        ++waiting_[index(m)];
        cv_.wait(lock, [&] { return admits(m); });
        --waiting_[index(m)];
        mode_ = m;
        ++holders_;
    }
    // Enters only if that needs no wait (the calling-thread search must never block the event loop).
    bool try_enter(Mode m) {
        std::lock_guard<std::mutex> lock(mutex_);
        if (!admits(m))
            return false;
        mode_ = m;
        ++holders_;
        return true;
    }
    void leave() {
        std::lock_guard<std::mutex> lock(mutex_);
        if (--holders_ == 0) {
            last_ = mode_;
            mode_ = Mode::none;
            cv_.notify_all();
        }
    }

  private:
    static std::size_t index(Mode m) { return static_cast<std::size_t>(m); }
    Mode other(Mode m) const { return m == Mode::read ? Mode::write : Mode::read; }

    bool admits(Mode m) const {
        bool exclusive_waits = waiting_[index(Mode::exclusive)] > 0;
        if (m == Mode::exclusive)
            return mode_ == Mode::none;
        bool other_waits = waiting_[index(other(m))] > 0;
        if (mode_ == m)
            return !exclusive_waits && !other_waits;
        if (mode_ != Mode::none || exclusive_waits)
            return false;
        // Gate is free and both shared modes may wait: alternate.
        return !(other_waits && last_ == m);
    }

    std::mutex mutex_;
    std::condition_variable cv_;
    Mode mode_ = Mode::none;
    Mode last_ = Mode::none;
    std::size_t holders_ = 0;
    std::size_t waiting_[4] = {0, 0, 0, 0};
};

struct GateHold {
    Gate& gate;
    GateHold(Gate& g, Gate::Mode m) : gate(g) { gate.enter(m); }
    ~GateHold() { gate.leave(); }
    GateHold(GateHold const&) = delete;
    GateHold& operator=(GateHold const&) = delete;
};

struct ReadHold : GateHold {
    explicit ReadHold(Gate& g) : GateHold(g, Gate::Mode::read) {}
};
struct WriteHold : GateHold {
    explicit WriteHold(Gate& g) : GateHold(g, Gate::Mode::write) {}
};
struct ExclusiveHold : GateHold {
    explicit ExclusiveHold(Gate& g) : GateHold(g, Gate::Mode::exclusive) {}
};

// Thread slots 0..n-1 handed to usearch explicitly; waits if all are busy
// (only possible when more pool threads exist than slots were reserved for).
class SlotPool {
  public:
    explicit SlotPool(std::size_t n) {
        for (std::size_t i = n; i > 0; --i)
            free_.push_back(i - 1);
    }
    std::size_t acquire() {
        std::unique_lock<std::mutex> lock(mutex_);
        cv_.wait(lock, [&] { return !free_.empty(); });
        std::size_t slot = free_.back();
        free_.pop_back();
        return slot;
    }
    bool try_acquire(std::size_t& slot) {
        std::lock_guard<std::mutex> lock(mutex_);
        if (free_.empty())
            return false;
        slot = free_.back();
        free_.pop_back();
        return true;
    }
    void release(std::size_t slot) {
        {
            std::lock_guard<std::mutex> lock(mutex_);
            free_.push_back(slot);
        }
        cv_.notify_one();
    }

  private:
    std::mutex mutex_;
    std::condition_variable cv_;
    std::vector<std::size_t> free_;
};

struct SlotHold {
    SlotPool& pool;
    std::size_t slot;
    explicit SlotHold(SlotPool& p) : pool(p), slot(p.acquire()) {}
    ~SlotHold() { pool.release(slot); }
};

// ------------------------------------------------------------------- core --

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

    explicit Core(Config const& c) : config(c), slots(c.slots) {}
};

// usearch's own ef is pinned to 1: every search asks for max(k, ef) results
// instead, which is the same HNSW search with ef chosen per call and no
// shared state mutated (see native.ts).
constexpr std::size_t pinned_expansion_search = 1;

metric_punned_t make_metric(Config const& c) {
    return metric_punned_t::builtin(c.dimensions, c.metric, c.scalar);
}

std::string make_index(Core& core) {
    metric_punned_t metric = make_metric(core.config);
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

// Grows capacity (exclusive gate) if `needed` members do not fit.
std::string ensure_capacity(Core& core, std::size_t needed) {
    {
        ReadHold hold(core.gate);
        if (core.closed)
            return "closed";
        if (needed <= core.index.capacity())
            return {};
    }
    ExclusiveHold hold(core.gate);
    if (core.closed)
        return "closed";
    if (needed <= core.index.capacity())
        return {};
    if (!core.index.try_reserve(index_limits_t(grow_target(needed), core.config.slots)))
        return "out of memory while growing the index";
    return {};
}

// ------------------------------------------------------- serialized bytes --
// usearch buffers carry no checksum and its loader trusts them; a bad slot
// id or level later crashes a search. So every structural field is checked
// here before usearch sees the bytes (the caller has authenticated them, but
// a wrong or truncated buffer must fail cleanly).

using Part = std::pair<std::uint8_t const*, std::size_t>;

// Reads a byte stream held in consecutive parts (the decrypted snapshot
// chunks), so loading never needs them joined into one copy first.
class Reader {
  public:
    explicit Reader(std::vector<Part> const& parts) : parts_(parts) {
        for (auto const& part : parts)
            length_ += part.second;
    }
    bool read(void* out, std::size_t n) {
        if (n > remaining())
            return false;
        auto* to = static_cast<std::uint8_t*>(out);
        while (n != 0) {
            std::size_t take = std::min(n, parts_[part_].second - in_part_);
            std::memcpy(to, parts_[part_].first + in_part_, take);
            to += take;
            n -= take;
            advance(take);
        }
        return true;
    }
    bool skip(std::size_t n) {
        if (n > remaining())
            return false;
        while (n != 0) {
            std::size_t take = std::min(n, parts_[part_].second - in_part_);
            n -= take;
            advance(take);
        }
        return true;
    }
    std::size_t remaining() const { return length_ - offset_; }

  private:
    void advance(std::size_t n) {
        offset_ += n;
        in_part_ += n;
        while (part_ < parts_.size() && in_part_ == parts_[part_].second) {
            ++part_;
            in_part_ = 0;
        }
    }
    std::vector<Part> const& parts_;
    std::size_t length_ = 0;
    std::size_t offset_ = 0;
    std::size_t part_ = 0;
    std::size_t in_part_ = 0;
};

using level_t = std::int16_t;
using slot_t = std::uint32_t;
constexpr std::size_t max_levels = 64;

std::string check_dense_head(Reader& r, Config const& c, std::uint64_t rows, std::uint64_t& deleted) {
    index_dense_head_buffer_t buffer;
    if (!r.read(buffer, sizeof(buffer)))
        return "truncated: missing the index header";
    index_dense_head_t head{buffer};
    if (std::memcmp(buffer, default_magic(), std::strlen(default_magic())) != 0)
        return "not a usearch index (magic mismatch)";
    if (head.version_major != USEARCH_VERSION_MAJOR)
        return "usearch format version mismatch";
    if (head.kind_metric != c.metric)
        return "metric in the bytes does not match the options";
    if (head.kind_scalar != c.scalar)
        return "precision in the bytes does not match the options";
    if (head.kind_key != scalar_kind_t::u64_k || head.kind_compressed_slot != scalar_kind_t::u32_k)
        return "key or slot type mismatch";
    if (static_cast<std::uint64_t>(head.dimensions) != c.dimensions)
        return "dimension in the bytes does not match the options";
    if (head.multi)
        return "multi-vector indexes are not supported";
    std::uint64_t present = head.count_present;
    deleted = head.count_deleted;
    if (present > rows || deleted != rows - present)
        return "header counts do not match the number of vectors";
    return {};
}

struct GraphHead {
    std::uint64_t size, connectivity, connectivity_base, max_level, entry_slot;
};

std::string check_graph_head(GraphHead const& g, std::uint64_t rows, Config const& c) {
    if (g.size != rows)
        return "graph size does not match the number of vectors";
    if (g.connectivity != c.connectivity)
        return "connectivity in the bytes does not match the options";
    if (g.connectivity < 2 || g.connectivity > 4096 || g.connectivity_base < g.connectivity ||
        g.connectivity_base > 8192)
        return "implausible graph connectivity";
    if (g.size && (g.max_level >= max_levels || g.entry_slot >= g.size))
        return "implausible graph entry point";
    return {};
}

std::string check_node(std::uint8_t const* node, std::size_t slot, std::vector<level_t> const& levels,
                       GraphHead const& g, std::uint64_t& free_nodes) {
    key_t key;
    level_t level;
    std::memcpy(&key, node, sizeof(key));
    std::memcpy(&level, node + sizeof(key), sizeof(level));
    if (level != levels[slot])
        return "node level disagrees with the level table";
    if (key == default_free_value<key_t>())
        ++free_nodes;
    std::uint8_t const* block = node + sizeof(key) + sizeof(level);
    for (level_t l = 0; l <= level; ++l) {
        std::uint32_t count;
        std::memcpy(&count, block, sizeof(count));
        std::size_t room = l == 0 ? g.connectivity_base : g.connectivity;
        if (count > room)
            return "neighbour list longer than the connectivity";
        for (std::uint32_t i = 0; i != count; ++i) {
            slot_t neighbour;
            std::memcpy(&neighbour, block + sizeof(count) + i * sizeof(slot_t), sizeof(neighbour));
            // A neighbour linked at level l must itself reach level l, or a
            // search would read past the end of its node.
            if (neighbour >= g.size || levels[neighbour] < l)
                return "neighbour slot out of range";
        }
        block += sizeof(count) + room * sizeof(slot_t);
    }
    return {};
}

std::string validate_bytes(std::vector<Part> const& parts, Config const& c) {
    Reader r(parts);
    std::uint32_t matrix[2];
    if (!r.read(matrix, sizeof(matrix)))
        return "truncated: missing the vector matrix header";
    std::uint64_t rows = matrix[0], cols = matrix[1];
    if (cols != make_metric(c).bytes_per_vector())
        return "vector width in the bytes does not match the options";
    if (rows > r.remaining() / (cols ? cols : 1) || !r.skip(rows * cols))
        return "truncated: vectors missing";
    std::uint64_t deleted = 0;
    std::string error = check_dense_head(r, c, rows, deleted);
    if (!error.empty())
        return error;
    GraphHead g;
    if (!r.read(&g, sizeof(g)))
        return "truncated: missing the graph header";
    error = check_graph_head(g, rows, c);
    if (!error.empty())
        return error;
    if (g.size > r.remaining() / sizeof(level_t))
        return "truncated: level table missing";
    std::vector<level_t> levels(g.size);
    r.read(levels.data(), g.size * sizeof(level_t));
    std::size_t base_bytes = sizeof(std::uint32_t) + g.connectivity_base * sizeof(slot_t);
    std::size_t upper_bytes = sizeof(std::uint32_t) + g.connectivity * sizeof(slot_t);
    bool entry_on_top = g.size == 0;
    for (std::size_t i = 0; i != g.size; ++i) {
        if (levels[i] < 0 || static_cast<std::uint64_t>(levels[i]) > g.max_level)
            return "node level out of range";
        if (i == g.entry_slot)
            entry_on_top = static_cast<std::uint64_t>(levels[i]) == g.max_level;
    }
    if (!entry_on_top)
        return "graph entry point is not on the top level";
    std::uint64_t free_nodes = 0;
    std::vector<std::uint8_t> node;  // one node at a time: it may straddle two parts
    for (std::size_t i = 0; i != g.size; ++i) {
        std::size_t node_bytes = sizeof(key_t) + sizeof(level_t) + base_bytes + upper_bytes * levels[i];
        node.resize(node_bytes);
        if (!r.read(node.data(), node_bytes))
            return "truncated: graph nodes missing";
        error = check_node(node.data(), i, levels, g, free_nodes);
        if (!error.empty())
            return error;
    }
    if (free_nodes != deleted)
        return "deleted-node count does not match the header";
    if (r.remaining() != 0)
        return "trailing bytes after the index";
    return {};
}

// ---------------------------------------------------------------- workers --

enum class Failure { none, closed, invalid, native };

char const* failure_code(Failure f) {
    switch (f) {
    case Failure::closed: return "CLOSED";
    case Failure::invalid: return "INVALID";
    default: return "NATIVE";
    }
}

// An AsyncWorker bound to a Promise, whose rejection carries a `code`
// (CLOSED / INVALID / NATIVE) for native.ts to map onto vecvault errors.
class PromiseWorker : public vecvault::PromiseTask {
  public:
    PromiseWorker(Napi::Env env, std::shared_ptr<Core> core) : PromiseTask(env, "vecvault:native"), core_(std::move(core)) {}

  protected:
    void Fail(Failure kind, std::string message, char const* path = nullptr) {
        failure_ = kind;
        path_ = path;
        message_ = std::move(message);
    }
    // Runs the body; turns C++ exceptions (bad_alloc, usearch raises) into rejections.
    void Execute() final {
        try {
            Run();
        } catch (std::exception const& e) {
            Fail(Failure::native, e.what());
        } catch (...) {
            Fail(Failure::native, "unknown native failure");
        }
    }
    virtual void Run() = 0;
    virtual Napi::Value Result(Napi::Env env) { return env.Undefined(); }
    void Settle(Napi::Env env) final {
        if (failure_ == Failure::none)
            return deferred_.Resolve(Result(env));
        Napi::Error e = Napi::Error::New(env, message_);
        e.Set("code", Napi::String::New(env, failure_code(failure_)));
        if (path_)
            e.Set("path", Napi::String::New(env, path_));
        deferred_.Reject(e.Value());
    }

    std::shared_ptr<Core> core_;
    Failure failure_ = Failure::none;
    std::string message_;
    char const* path_ = nullptr; // which argument was invalid, for ValidationError.path
};

template <typename T> std::vector<T> copy_typed(Napi::Value value) {
    auto array = value.As<Napi::TypedArrayOf<T>>();
    return std::vector<T>(array.Data(), array.Data() + array.ElementLength());
}

// Checks a whole batch before any of it is written, off the main thread:
// every number finite, no reserved or repeated key, none already present;
// then grows capacity. Reads the caller's vectors in place (no copy): JS
// keeps them referenced and documents that they must not change meanwhile.
class PrepareAddWorker : public PromiseWorker {
  public:
    PrepareAddWorker(Napi::Env env, std::shared_ptr<Core> core, std::vector<key_t> keys, Napi::Float32Array vectors)
        : PromiseWorker(env, std::move(core)), keys_(std::move(keys)), vectors_(vectors.Data()),
          length_(vectors.ElementLength()), keep_(Napi::Persistent(vectors)) {}

  private:
    void Run() override {
        char const* path = "keys";
        if (std::string e = check_batch(path); !e.empty())
            return Fail(Failure::invalid, e, path);
        std::size_t size;
        {
            ReadHold hold(core_->gate);
            if (core_->closed)
                return Fail(Failure::closed, "closed");
            for (std::size_t i = 0; i != keys_.size(); ++i)
                if (core_->index.contains(keys_[i]))
                    return Fail(Failure::invalid, "the key at row " + std::to_string(i) + " is already present", "keys");
            size = core_->index.size();
        }
        std::string error = ensure_capacity(*core_, size + keys_.size());
        if (!error.empty())
            Fail(error == "closed" ? Failure::closed : Failure::native, error);
    }

    std::string check_batch(char const*& path) {
        std::size_t dims = core_->config.dimensions;
        path = "vectors";
        if (length_ != keys_.size() * dims)
            return "vectors do not match keys";
        for (std::size_t i = 0; i != length_; ++i)
            if (!std::isfinite(vectors_[i])) // NaN or inf would poison distance comparisons
                return "the vector at row " + std::to_string(i / dims) + " holds NaN or Infinity";
        path = "keys";
        for (std::size_t i = 0; i != keys_.size(); ++i)
            if (keys_[i] == default_free_value<key_t>())
                return "the key at row " + std::to_string(i) + " is 2^64-1, which is reserved";
        std::vector<key_t> sorted(keys_);
        std::sort(sorted.begin(), sorted.end());
        if (std::adjacent_find(sorted.begin(), sorted.end()) != sorted.end())
            return "the batch holds the same key twice";
        return {};
    }

    std::vector<key_t> keys_;
    float const* vectors_;
    std::size_t length_;
    Napi::Reference<Napi::Float32Array> keep_;
};

// Adds one chunk (capacity already reserved by PrepareAddWorker).
class AddWorker : public PromiseWorker {
  public:
    AddWorker(Napi::Env env, std::shared_ptr<Core> core, std::vector<key_t> keys, std::vector<float> vectors)
        : PromiseWorker(env, std::move(core)), keys_(std::move(keys)), vectors_(std::move(vectors)) {}

  private:
    void Run() override {
        SlotHold slot(core_->slots);
        std::size_t dims = core_->config.dimensions;
        for (std::size_t i = 0; i != keys_.size(); ++i) {
            WriteHold hold(core_->gate); // per row: a waiting search gets in between rows
            if (core_->closed)
                return Fail(Failure::closed, "closed");
            auto result = core_->index.add(keys_[i], vectors_.data() + i * dims, slot.slot);
            if (!result)
                return Fail(Failure::native, result.error.release());
        }
    }
    std::vector<key_t> keys_;
    std::vector<float> vectors_;
};

class RemoveWorker : public PromiseWorker {
  public:
    RemoveWorker(Napi::Env env, std::shared_ptr<Core> core, std::vector<key_t> keys)
        : PromiseWorker(env, std::move(core)), keys_(std::move(keys)) {}

  private:
    void Run() override {
        WriteHold hold(core_->gate); // searches see a remove batch all or nothing
        if (core_->closed)
            return Fail(Failure::closed, "closed");
        auto result = core_->index.remove(keys_.begin(), keys_.end());
        if (!result)
            return Fail(Failure::native, result.error.release());
        removed_ = result.completed;
    }
    Napi::Value Result(Napi::Env env) override { return Napi::Number::New(env, static_cast<double>(removed_)); }
    std::vector<key_t> keys_;
    std::size_t removed_ = 0;
};

class ReserveWorker : public PromiseWorker {
  public:
    ReserveWorker(Napi::Env env, std::shared_ptr<Core> core, std::size_t members)
        : PromiseWorker(env, std::move(core)), members_(members) {}

  private:
    void Run() override {
        std::string error = ensure_capacity(*core_, members_);
        if (!error.empty())
            Fail(error == "closed" ? Failure::closed : Failure::native, error);
    }
    std::size_t members_;
};

struct SearchRequest {
    std::vector<float> queries; // the pool path's own copy (the caller may change its array meanwhile)
    std::size_t count = 0;
    std::size_t k = 0;
    std::size_t expansion = 0;
    bool exact = false;
    bool filtered = false;
    std::vector<key_t> allowed; // sorted in the worker
};

// Results of `count` queries × k in one block, handed to JS as a single
// ArrayBuffer that native.ts views as three typed arrays: one allocation per
// call instead of three arrays plus a holder array (a single query at small
// ef costs ~25 µs, so each ~0.3 µs allocation shows).
//   [keys: u64 × count·k][distances: f32 × count·k][counts: u32 × count]
struct ResultBlock {
    key_t* keys;
    float* distances;
    std::uint32_t* counts;

    static std::size_t bytes(std::size_t count, std::size_t k) {
        return count * k * (sizeof(key_t) + sizeof(float)) + count * sizeof(std::uint32_t);
    }
    static ResultBlock at(void* base, std::size_t count, std::size_t k) {
        auto* bytes = static_cast<std::uint8_t*>(base);
        return {reinterpret_cast<key_t*>(bytes), reinterpret_cast<float*>(bytes + count * k * sizeof(key_t)),
                reinterpret_cast<std::uint32_t*>(bytes + count * k * (sizeof(key_t) + sizeof(float)))};
    }
};

// Searches `count` queries into `out` (rows of k; unused entries stay as
// they were, zero). The caller holds a thread slot and the read gate. Plain
// functions of their arguments, so the calling-thread path (searchSync) can
// run them straight on the caller's array without building a request.
struct SearchParams {
    std::size_t k = 0;
    std::size_t expansion = 0;
    bool exact = false;
    bool filtered = false;
    std::vector<key_t> const* allowed = nullptr; // sorted, unique; only when filtered
};

std::string exact_over_allowed(Core& core, SearchParams const& p, float const* query, std::size_t slot,
                               key_t* keys, float* distances, std::uint32_t& count) {
    std::vector<std::pair<float, key_t>> hits;
    hits.reserve(p.allowed->size());
    for (key_t key : *p.allowed) {
        auto d = core.index.distance_between(key, query, slot);
        if (d.count)
            hits.emplace_back(d.min, key);
    }
    std::size_t found = std::min(hits.size(), p.k);
    std::partial_sort(hits.begin(), hits.begin() + found, hits.end());
    for (std::size_t i = 0; i != found; ++i) {
        keys[i] = hits[i].second;
        distances[i] = hits[i].first;
    }
    count = static_cast<std::uint32_t>(found);
    return {};
}

std::string search_one(Core& core, SearchParams const& p, float const* query, std::size_t slot, key_t* keys,
                       float* distances, std::uint32_t& count) {
    // Filtered + exact: a distance per allowed key when few are allowed,
    // else usearch's exact scan over all members with the predicate.
    // (Per-key lookups cost a hash probe each: keep keys spread out — usearch's
    // linear probing degrades to a scan of the table with sequential keys.)
    if (p.filtered && p.exact && p.allowed->size() * 8 <= core.index.size())
        return exact_over_allowed(core, p, query, slot, keys, distances, count);
    // Per-call ef: usearch's own ef is pinned at 1, so asking for max(k, ef)
    // results runs exactly its search at that ef; the best k are kept.
    std::size_t wanted = p.exact ? p.k : std::max(p.k, p.expansion);
    auto result = [&] {
        if (!p.filtered)
            return core.index.search(query, wanted, slot, p.exact);
        auto const& allowed = *p.allowed;
        auto predicate = [&allowed](key_t key) noexcept {
            return std::binary_search(allowed.begin(), allowed.end(), key);
        };
        return core.index.filtered_search(query, wanted, predicate, slot, p.exact);
    }();
    if (!result)
        return result.error.release();
    std::size_t found = std::min(result.count, p.k);
    for (std::size_t i = 0; i != found; ++i) {
        auto match = result[i];
        keys[i] = static_cast<key_t>(match.member.key);
        distances[i] = match.distance;
    }
    count = static_cast<std::uint32_t>(found);
    return {};
}

// A search request on a pool thread: results go to a block of its own,
// handed to JS without a copy when the promise settles.
class SearchWorker : public PromiseWorker {
  public:
    SearchWorker(Napi::Env env, std::shared_ptr<Core> core, SearchRequest request)
        : PromiseWorker(env, std::move(core)), req_(std::move(request)),
          bytes_(ResultBlock::bytes(req_.count, req_.k)), block_(new std::uint8_t[bytes_ ? bytes_ : 1]()) {}

  private:
    void Run() override {
        if (req_.filtered) {
            // Callers that reuse an allowed set pass it sorted: skip the O(n log n) per query.
            if (!std::is_sorted(req_.allowed.begin(), req_.allowed.end()))
                std::sort(req_.allowed.begin(), req_.allowed.end());
            req_.allowed.erase(std::unique(req_.allowed.begin(), req_.allowed.end()), req_.allowed.end());
        }
        SearchParams params{req_.k, req_.expansion, req_.exact, req_.filtered, &req_.allowed};
        ResultBlock out = ResultBlock::at(block_.get(), req_.count, req_.k);
        std::size_t dims = core_->config.dimensions;
        SlotHold slot(core_->slots);
        for (std::size_t q = 0; q != req_.count; ++q) {
            ReadHold hold(core_->gate); // per query: pending inserts get in between queries
            if (core_->closed)
                return Fail(Failure::closed, "closed");
            std::string error = search_one(*core_, params, req_.queries.data() + q * dims, slot.slot,
                                           out.keys + q * req_.k, out.distances + q * req_.k, out.counts[q]);
            if (!error.empty())
                return Fail(Failure::native, error);
        }
    }
    Napi::Value Result(Napi::Env env) override {
        auto* owned = block_.release();
        return Napi::ArrayBuffer::New(
            env, owned, bytes_, [](Napi::Env, void* data) { delete[] static_cast<std::uint8_t*>(data); });
    }

    SearchRequest req_;
    std::size_t bytes_;
    std::unique_ptr<std::uint8_t[]> block_;
};

class SerializeWorker : public PromiseWorker {
  public:
    SerializeWorker(Napi::Env env, std::shared_ptr<Core> core) : PromiseWorker(env, std::move(core)) {}

  private:
    void Run() override {
        ReadHold hold(core_->gate);
        if (core_->closed)
            return Fail(Failure::closed, "closed");
        bytes_ = std::make_unique<std::vector<std::uint8_t>>();
        bytes_->reserve(core_->index.serialized_length());
        auto output = [this](void const* data, std::size_t n) {
            auto p = static_cast<std::uint8_t const*>(data);
            bytes_->insert(bytes_->end(), p, p + n);
            return true;
        };
        auto result = core_->index.save_to_stream(output);
        if (!result)
            Fail(Failure::native, result.error.release());
    }
    // Hands the bytes to JS without a copy; the finalizer frees them.
    Napi::Value Result(Napi::Env env) override {
        auto* owned = bytes_.release();
        if (owned->empty()) {
            delete owned;
            return Napi::Uint8Array::New(env, 0);
        }
        auto buffer = Napi::ArrayBuffer::New(env, owned->data(), owned->size(),
                                             [](Napi::Env, void*, std::vector<std::uint8_t>* v) { delete v; }, owned);
        return Napi::Uint8Array::New(env, owned->size(), buffer, 0);
    }
    std::unique_ptr<std::vector<std::uint8_t>> bytes_;
};

// Validates then loads `bytes` into a fresh core. `bytes` is one Uint8Array
// or an array of them (the decrypted snapshot chunks, in order), read in
// place: no joined copy of the whole graph.
// The JS caller keeps the bytes alive (reference held here) and must not
// mutate them meanwhile.
class LoadWorker : public PromiseWorker {
  public:
    LoadWorker(Napi::Env env, std::shared_ptr<Core> core, Napi::Value bytes)
        : PromiseWorker(env, std::move(core)), keep_(Napi::Persistent(bytes.As<Napi::Object>())) {
        if (bytes.IsTypedArray()) {
            auto part = bytes.As<Napi::Uint8Array>();
            parts_.emplace_back(part.Data(), part.ByteLength());
            return;
        }
        auto list = bytes.As<Napi::Array>();
        for (std::uint32_t i = 0; i != list.Length(); ++i) {
            Napi::Value item = list.Get(i);
            if (!item.IsTypedArray() || item.As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array)
                throw Napi::TypeError::New(env, "bytes must be a Uint8Array or an array of them");
            auto part = item.As<Napi::Uint8Array>();
            parts_.emplace_back(part.Data(), part.ByteLength());
        }
    }

  private:
    void Run() override {
        std::string error = validate_bytes(parts_, core_->config);
        if (!error.empty())
            return Fail(Failure::native, "invalid index bytes: " + error);
        ExclusiveHold hold(core_->gate);
        if (core_->closed)
            return Fail(Failure::closed, "closed");
        Reader reader(parts_);
        auto input = [&reader](void* out, std::size_t n) { return reader.read(out, n); };
        auto result = core_->index.load_from_stream(input);
        if (!result)
            return Fail(Failure::native, std::string("invalid index bytes: ") + result.error.release());
        if (reader.remaining() != 0)
            return Fail(Failure::native, "invalid index bytes: trailing data");
        std::size_t target = grow_target(core_->index.size() + 1);
        if (!core_->index.try_reserve(index_limits_t(std::max(target, core_->index.capacity()), core_->config.slots)))
            return Fail(Failure::native, "out of memory while loading the index");
    }
    std::vector<Part> parts_;
    Napi::Reference<Napi::Object> keep_;
};

// ---------------------------------------------------------------- wrapper --

metric_kind_t parse_metric(std::string const& name) {
    if (name == "l2sq")
        return metric_kind_t::l2sq_k;
    if (name == "cos")
        return metric_kind_t::cos_k;
    if (name == "ip")
        return metric_kind_t::ip_k;
    return metric_kind_t::unknown_k;
}

scalar_kind_t parse_scalar(std::string const& name) {
    if (name == "f32")
        return scalar_kind_t::f32_k;
    if (name == "f16")
        return scalar_kind_t::f16_k;
    if (name == "i8")
        return scalar_kind_t::i8_k;
    return scalar_kind_t::unknown_k;
}

std::size_t as_size(Napi::Value v) { return static_cast<std::size_t>(v.As<Napi::Number>().Int64Value()); }

// JS-facing handle. Arguments arrive already validated by native.ts; the
// checks here only keep a misuse from corrupting memory.
class NativeIndex : public Napi::ObjectWrap<NativeIndex> {
  public:
    static Napi::Function Define(Napi::Env env) {
        return DefineClass(env, "NativeIndex",
                           {
                               InstanceMethod("size", &NativeIndex::Size),
                               InstanceMethod("capacity", &NativeIndex::Capacity),
                               InstanceMethod("contains", &NativeIndex::Contains),
                               InstanceMethod("memoryUsage", &NativeIndex::MemoryUsage),
                               InstanceMethod("isa", &NativeIndex::Isa),
                               InstanceMethod("prepareAdd", &NativeIndex::PrepareAdd),
                               InstanceMethod("addChunk", &NativeIndex::AddChunk),
                               InstanceMethod("remove", &NativeIndex::Remove),
                               InstanceMethod("reserve", &NativeIndex::Reserve),
                               InstanceMethod("search", &NativeIndex::Search),
                               InstanceMethod("searchSync", &NativeIndex::SearchSync),
                               InstanceMethod("serialize", &NativeIndex::Serialize),
                               InstanceMethod("load", &NativeIndex::Load),
                               InstanceMethod("close", &NativeIndex::Close),
                           });
    }

    // new NativeIndex(dimensions, metric, precision, connectivity, expansionAdd, slots)
    NativeIndex(Napi::CallbackInfo const& info) : Napi::ObjectWrap<NativeIndex>(info) {
        Config c;
        c.dimensions = as_size(info[0]);
        c.metric = parse_metric(info[1].As<Napi::String>().Utf8Value());
        c.scalar = parse_scalar(info[2].As<Napi::String>().Utf8Value());
        c.connectivity = as_size(info[3]);
        c.expansion_add = as_size(info[4]);
        c.slots = std::max<std::size_t>(1, as_size(info[5]));
        if (c.metric == metric_kind_t::unknown_k || c.scalar == scalar_kind_t::unknown_k || !c.dimensions)
            throw Napi::TypeError::New(info.Env(), "bad engine configuration");
        core_ = std::make_shared<Core>(c);
        std::string error = make_index(*core_);
        if (!error.empty())
            throw Napi::Error::New(info.Env(), error);
    }

  private:
    Core& live(Napi::Env env) {
        if (!core_ || core_->closed)
            throw Napi::Error::New(env, "closed");
        return *core_;
    }

    Napi::Value Size(Napi::CallbackInfo const& info) {
        return Napi::Number::New(info.Env(), static_cast<double>(live(info.Env()).index.size()));
    }
    Napi::Value Capacity(Napi::CallbackInfo const& info) {
        return Napi::Number::New(info.Env(), static_cast<double>(live(info.Env()).index.capacity()));
    }
    Napi::Value Contains(Napi::CallbackInfo const& info) {
        bool lossless = false;
        key_t key = info[0].As<Napi::BigInt>().Uint64Value(&lossless);
        return Napi::Boolean::New(info.Env(), lossless && live(info.Env()).index.contains(key));
    }
    Napi::Value MemoryUsage(Napi::CallbackInfo const& info) {
        return Napi::Number::New(info.Env(), static_cast<double>(live(info.Env()).index.memory_usage()));
    }
    Napi::Value Isa(Napi::CallbackInfo const& info) {
        return Napi::String::New(info.Env(), live(info.Env()).index.metric().isa_name());
    }

    template <typename Worker, typename... Args> Napi::Value Start(Napi::Env env, Args&&... args) {
        live(env);
        return vecvault::queue_task<Worker>(env, core_, std::forward<Args>(args)...);
    }

    Napi::Value PrepareAdd(Napi::CallbackInfo const& info) {
        return Start<PrepareAddWorker>(info.Env(), copy_typed<key_t>(info[0]), info[1].As<Napi::Float32Array>());
    }
    Napi::Value AddChunk(Napi::CallbackInfo const& info) {
        std::size_t dims = live(info.Env()).config.dimensions;
        auto keys = copy_typed<key_t>(info[0]);
        auto vectors = copy_typed<float>(info[1]);
        if (vectors.size() != keys.size() * dims)
            throw Napi::RangeError::New(info.Env(), "vectors do not match keys");
        return Start<AddWorker>(info.Env(), std::move(keys), std::move(vectors));
    }
    Napi::Value Remove(Napi::CallbackInfo const& info) {
        return Start<RemoveWorker>(info.Env(), copy_typed<key_t>(info[0]));
    }
    Napi::Value Reserve(Napi::CallbackInfo const& info) {
        return Start<ReserveWorker>(info.Env(), as_size(info[0]));
    }
    // search(queries, k, expansion, allowedKeys | null, exact) → Promise<ArrayBuffer> (a ResultBlock)
    Napi::Value Search(Napi::CallbackInfo const& info) {
        return Start<SearchWorker>(info.Env(), search_request(info));
    }

    // searchSync(queries, k, expansion) → ArrayBuffer (a ResultBlock) computed
    // on the calling thread, or null when it could not start without waiting
    // (an insert row, a remove batch or a growth holds the index; native.ts
    // then uses the pool). Plain graph search only: no filter, not exact.
    // Reads the caller's queries in place (nothing else runs meanwhile) and
    // writes the results straight into the returned buffer: no copies.
    Napi::Value SearchSync(Napi::CallbackInfo const& info) {
        Napi::Env env = info.Env();
        Core& core = live(env);
        auto queries = info[0].As<Napi::Float32Array>();
        SearchParams params;
        params.k = as_size(info[1]);
        params.expansion = as_size(info[2]);
        std::size_t dims = core.config.dimensions;
        std::size_t count = queries.ElementLength() / dims;
        if (params.k == 0 || count * dims != queries.ElementLength())
            throw Napi::RangeError::New(env, "bad search arguments");
        // Allocated before taking the gate, so no JS allocation (or GC) happens while it is held.
        auto buffer = Napi::ArrayBuffer::New(env, ResultBlock::bytes(count, params.k));
        std::size_t slot;
        if (!core.slots.try_acquire(slot))
            return env.Null();
        if (!core.gate.try_enter(Gate::Mode::read)) {
            core.slots.release(slot);
            return env.Null();
        }
        std::string error;
        {
            struct Release { // the gate and slot go back even if usearch throws
                Core& core;
                std::size_t slot;
                ~Release() {
                    core.gate.leave();
                    core.slots.release(slot);
                }
            } release{core, slot};
            if (core.closed) {
                error = "closed";
            } else {
                ResultBlock out = ResultBlock::at(buffer.Data(), count, params.k);
                float const* data = queries.Data();
                for (std::size_t q = 0; q != count && error.empty(); ++q)
                    error = search_one(core, params, data + q * dims, slot, out.keys + q * params.k,
                                       out.distances + q * params.k, out.counts[q]);
            }
        }
        if (!error.empty()) {
            Napi::Error e = Napi::Error::New(env, error);
            e.Set("code", Napi::String::New(env, failure_code(core.closed ? Failure::closed : Failure::native)));
            throw e;
        }
        return buffer;
    }

    SearchRequest search_request(Napi::CallbackInfo const& info) {
        SearchRequest req;
        req.queries = copy_typed<float>(info[0]);
        req.k = as_size(info[1]);
        req.expansion = as_size(info[2]);
        req.filtered = info[3].IsTypedArray();
        if (req.filtered)
            req.allowed = copy_typed<key_t>(info[3]);
        req.exact = info[4].ToBoolean().Value();
        std::size_t dims = live(info.Env()).config.dimensions;
        if (req.k == 0 || req.queries.size() % dims != 0)
            throw Napi::RangeError::New(info.Env(), "bad search arguments");
        req.count = req.queries.size() / dims;
        return req;
    }
    Napi::Value Serialize(Napi::CallbackInfo const& info) { return Start<SerializeWorker>(info.Env()); }
    Napi::Value Load(Napi::CallbackInfo const& info) {
        return Start<LoadWorker>(info.Env(), info[0]);
    }

    // Frees the index now. native.ts calls this only once no work is in
    // flight; the exclusive gate makes it safe even if some still were.
    Napi::Value Close(Napi::CallbackInfo const& info) {
        if (core_) {
            std::shared_ptr<Core> core = std::move(core_);
            ExclusiveHold hold(core->gate);
            core->closed = true;
            core->index.reset();
        }
        return info.Env().Undefined();
    }

    std::shared_ptr<Core> core_;
};

Napi::Value SimdInfo(Napi::CallbackInfo const& info) {
    auto out = Napi::Object::New(info.Env());
    out.Set("compiled", hardware_acceleration_compiled());
    out.Set("available", hardware_acceleration_available());
    return out;
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
    exports.Set("NativeIndex", NativeIndex::Define(env));
    exports.Set("crypto", vecvault_crypto::Define(env));
    exports.Set("simdInfo", Napi::Function::New(env, SimdInfo));
    exports.Set("usearchVersion", Napi::String::New(env, std::to_string(USEARCH_VERSION_MAJOR) + "." +
                                                             std::to_string(USEARCH_VERSION_MINOR) + "." +
                                                             std::to_string(USEARCH_VERSION_PATCH)));
    return exports;
}

} // namespace

NODE_API_MODULE(vecvault_native, Init)
