// Pool tasks that move a whole index in or out as bytes: serialize (handed to
// JS without a copy) and load (validates the untrusted bytes first, see
// validate-bytes.h, then loads them in place from the snapshot chunks); and
// countPresent, which checks a loaded graph against the keys it should hold.
#pragma once

#include "promise-worker.h"
#include "validate-bytes.h"

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace {

// Counts how many of `keys` the index holds. After a snapshot load the caller
// checks that the graph holds exactly the live keys its table lists: one pool
// task for the whole set instead of one N-API call per key on the main thread.
class CountPresentWorker : public PromiseWorker {
  public:
    CountPresentWorker(Napi::Env env, std::shared_ptr<Core> core, std::vector<key_t> keys)
        : PromiseWorker(env, std::move(core)), keys_(std::move(keys)) {}

  private:
    void Run() override {
        ReadHold hold(core_->gate);
        if (core_->closed)
            return Fail(Failure::closed, "closed");
        for (key_t key : keys_)
            present_ += core_->index.contains(key) ? 1 : 0;
    }
    Napi::Value Result(Napi::Env env) override { return Napi::Number::New(env, static_cast<double>(present_)); }

    std::vector<key_t> keys_;
    std::size_t present_ = 0;
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
        core_->populated_bound = core_->index.size(); // a load builds the key table afresh
    }
    std::vector<Part> parts_;
    Napi::Reference<Napi::Object> keep_;
};

} // namespace
