// Searching: the result block handed to JS as one ArrayBuffer, search_one
// (graph, filtered or exact; shared by the pool lanes and the calling-thread
// searchSync in native-index.h) and a search call's lanes on the pool.
#pragma once

#include "promise-worker.h"

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

namespace {

struct SearchRequest {
    std::vector<float> queries; // the call's own copy (the caller may change its array meanwhile); lanes scale the rows they claim
    std::size_t count = 0;
    std::size_t k = 0;
    std::size_t expansion = 0;
    bool exact = false;
    bool filtered = false;
    std::vector<key_t> allowed; // sorted once, by the first lane to start (SearchLane)
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

// The query in the index's own scalar type, for distance_between. usearch
// 2.25's f32 overload of distance_between casts with `casts_.to.f32` (index →
// f32, meant for get) instead of `casts_.from.f32` (f32 → index, what add and
// search use): on f16 and i8 indexes it compared the wrong bytes (garbage
// distances, wrong order). Cast once here, with the cast add and search use,
// and call the overload of the index's own type, which casts nothing.
template <typename scalar_at>
void distances_as(Core& core, float const* query, std::size_t slot, std::vector<key_t> const& allowed,
                  std::vector<std::pair<float, key_t>>& hits) {
    std::size_t dims = core.config.dimensions;
    std::vector<byte_t> cast(core.index.metric().bytes_per_vector());
    scalar_at const* typed = reinterpret_cast<scalar_at const*>(query);
    auto casts = casts_punned_t::make(core.index.metric().scalar_kind());
    if (casts.from.f32(reinterpret_cast<byte_t const*>(query), dims, cast.data()))
        typed = reinterpret_cast<scalar_at const*>(cast.data());
    for (key_t key : allowed) {
        auto d = core.index.distance_between(key, typed, slot);
        if (d.count)
            hits.emplace_back(d.min, key);
    }
}

std::string exact_over_allowed(Core& core, SearchParams const& p, float const* query, std::size_t slot,
                               key_t* keys, float* distances, std::uint32_t& count) {
    std::vector<std::pair<float, key_t>> hits;
    hits.reserve(p.allowed->size());
    switch (core.index.metric().scalar_kind()) {
    case scalar_kind_t::f32_k: distances_as<f32_t>(core, query, slot, *p.allowed, hits); break;
    case scalar_kind_t::f16_k: distances_as<f16_t>(core, query, slot, *p.allowed, hits); break;
    case scalar_kind_t::i8_k: distances_as<i8_t>(core, query, slot, *p.allowed, hits); break;
    default: return "exact filtered search does not support this precision";
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

// One search call on the pool: the queries (its own copy), the result block,
// and the next rows to claim. Its lanes (one pool task each) claim a few rows
// at a time until none are left, so the call costs one hand-off per lane, not
// one per chunk, and a descheduled thread delays it by one claim at most.
// The last lane to settle settles the call's promise.
struct SearchBatch {
    // The block before the promise: if allocating it throws, no promise is left unsettled.
    SearchBatch(Napi::Env env, SearchRequest request, std::size_t lane_count)
        : req(std::move(request)), bytes(ResultBlock::bytes(req.count, req.k)),
          block(new std::uint8_t[bytes ? bytes : 1]()), lanes_left(lane_count),
          deferred(Napi::Promise::Deferred::New(env)) {
        // ~8 claims per lane: balance without contention on `next`.
        claim = std::max<std::size_t>(1, (req.count + lane_count * 8 - 1) / (lane_count * 8));
    }

    // Pool threads.
    void fail(Failure kind, std::string why) {
        std::lock_guard<std::mutex> lock(mutex);
        if (failure == Failure::none) {
            failure = kind;
            message = std::move(why);
        }
        failed.store(true, std::memory_order_relaxed);
    }

    // JS thread, once per lane.
    void lane_done(Napi::Env env) {
        if (--lanes_left != 0)
            return;
        if (failure != Failure::none)
            return deferred.Reject(coded_error(env, failure, message));
        Napi::ArrayBuffer result;
        try {
            result = Napi::ArrayBuffer::New(env, block.get(), bytes,
                                            [](Napi::Env, void* data) { delete[] static_cast<std::uint8_t*>(data); });
        } catch (Napi::Error const& e) {
            return deferred.Reject(e.Value()); // e.g. no external buffers allowed: the block stays ours, freed with us
        }
        block.release(); // the ArrayBuffer's finalizer frees it now
        deferred.Resolve(result);
    }

    SearchRequest req;
    std::size_t bytes;
    std::unique_ptr<std::uint8_t[]> block;
    std::size_t lanes_left; // JS thread only
    Napi::Promise::Deferred deferred;
    std::size_t claim = 1;
    std::atomic<std::size_t> next{0};
    std::atomic<bool> failed{false};
    std::once_flag prepared; // the allowed keys sorted, by whichever lane starts first
    std::mutex mutex;        // guards failure and message
    Failure failure = Failure::none;
    std::string message;
};

// One lane of a SearchBatch on a pool thread.
class SearchLane : public vecvault::SettlingTask {
  public:
    SearchLane(Napi::Env env, std::shared_ptr<Core> core, std::shared_ptr<SearchBatch> batch)
        : SettlingTask(env, "vecvault:native"), core_(std::move(core)), batch_(std::move(batch)) {}

  private:
    void Execute() override {
        run_guarded([this] { Run(); }, [this](char const* why) { batch_->fail(Failure::native, why); });
    }
    void Run() {
        SearchBatch& b = *batch_;
        SearchRequest& req = b.req;
        if (req.filtered) {
            std::call_once(b.prepared, [&req] {
                // Callers that reuse an allowed set pass it sorted: skip the O(n log n) then.
                if (!std::is_sorted(req.allowed.begin(), req.allowed.end()))
                    std::sort(req.allowed.begin(), req.allowed.end());
                req.allowed.erase(std::unique(req.allowed.begin(), req.allowed.end()), req.allowed.end());
            });
        }
        SearchParams params{req.k, req.expansion, req.exact, req.filtered, &req.allowed};
        ResultBlock out = ResultBlock::at(b.block.get(), req.count, req.k);
        std::size_t dims = core_->config.dimensions;
        bool scaled = normalizes(core_->config);
        SlotHold slot(core_->slots);
        while (!b.failed.load(std::memory_order_relaxed)) {
            std::size_t from = b.next.fetch_add(b.claim, std::memory_order_relaxed);
            if (from >= req.count)
                return;
            std::size_t to = std::min(req.count, from + b.claim);
            float* rows = req.queries.data() + from * dims;
            if (scaled)
                normalize_rows(rows, to - from, dims); // rows this lane claimed, in the batch's own copy (f32-kernels.h)
            for (std::size_t q = from; q != to; ++q) {
                ReadHold hold(core_->gate); // per query: pending inserts get in between queries
                if (core_->closed)
                    return b.fail(Failure::closed, "closed");
                std::string error = search_one(*core_, params, req.queries.data() + q * dims, slot.slot,
                                               out.keys + q * req.k, out.distances + q * req.k, out.counts[q]);
                if (!error.empty())
                    return b.fail(Failure::native, error);
            }
        }
    }
    void Settle(Napi::Env env) override { batch_->lane_done(env); }

    std::shared_ptr<Core> core_;
    std::shared_ptr<SearchBatch> batch_;
};

} // namespace
