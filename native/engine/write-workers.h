// Pool tasks that change the index: prepareAdd (checks a whole batch and
// grows capacity before anything is written), one add chunk, a remove batch
// and reserve. JS runs them one write at a time, in call order.
#pragma once

#include "gc-yield.h"
#include "promise-worker.h"

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace {

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
        std::string error = ensure_capacity(*core_, size + keys_.size(), keys_.size());
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
        if (normalizes(core_->config))
            normalize_rows(vectors_.data(), keys_.size(), dims); // our own copy (f32-kernels.h)
        GcPause& gc = GcPause::instance();
        for (std::size_t i = 0; i != keys_.size(); ++i) {
            gc.yield(); // V8's mark-compact pause needs the cores for its helpers (gc-yield.h)
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

// Frees a closed index's memory. On the main thread this held the event loop
// for ~40 ms at 500k × 96 and ~80 ms at 1M (usearch returning its node and
// vector arenas to the OS): a close, and the swap at the end of a compaction.
class FreeWorker : public PromiseWorker {
  public:
    FreeWorker(Napi::Env env, std::shared_ptr<Core> core) : PromiseWorker(env, std::move(core)) {}

  private:
    void Run() override {
        ExclusiveHold hold(core_->gate);
        core_->index.reset();
    }
};

} // namespace
