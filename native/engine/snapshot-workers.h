// Pool tasks that move a whole index in or out as bytes: serialize (handed to
// JS without a copy) and load (validates the untrusted bytes first, see
// validate-bytes.h, then loads them in place from the snapshot chunks); their
// streaming forms, which never hold more than a few chunks of the index
// outside usearch (serializeStream, loadStream); and countPresent, which
// checks a loaded graph against the keys it should hold.
#pragma once

#include "promise-worker.h"
#include "validate-bytes.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstddef>
#include <deque>
#include <mutex>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace {

// Counts how many of `keys` the index holds. After a snapshot load the caller
// checks that the graph holds exactly the live keys its table lists: one pool
// task for the whole set instead of one N-API call per key on the main thread.
// Keys given as numbers (a table's Float64Array key column) are checked here
// too, not on the main thread (~10 ms at 200k keys, ~16 ms at 1M, on the
// open's critical path): the result is -1 when one is not an integer in
// [0, 2^53).
class CountPresentWorker : public PromiseWorker {
  public:
    CountPresentWorker(Napi::Env env, std::shared_ptr<Core> core, std::vector<key_t> keys)
        : PromiseWorker(env, std::move(core)), keys_(std::move(keys)) {}
    CountPresentWorker(Napi::Env env, std::shared_ptr<Core> core, std::vector<double> numbers)
        : PromiseWorker(env, std::move(core)), numbers_(std::move(numbers)) {}

  private:
    void Run() override {
        ReadHold hold(core_->gate);
        if (core_->closed)
            return Fail(Failure::closed, "closed");
        for (key_t key : keys_)
            present_ += core_->index.contains(key) ? 1 : 0;
        for (double number : numbers_) {
            // Also false for NaN; below 2^53 every integer is exact, and the cast is defined.
            if (!(number >= 0 && number < 9007199254740992.0) || number != std::floor(number)) {
                invalid_ = true;
                return;
            }
            present_ += core_->index.contains(static_cast<key_t>(number)) ? 1 : 0;
        }
    }
    Napi::Value Result(Napi::Env env) override { return Napi::Number::New(env, invalid_ ? -1.0 : static_cast<double>(present_)); }

    std::vector<key_t> keys_;
    std::vector<double> numbers_;
    std::size_t present_ = 0;
    bool invalid_ = false;
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
    LoadWorker(Napi::Env env, std::shared_ptr<Core> core, Napi::Value bytes, bool unit)
        : PromiseWorker(env, std::move(core)), keep_(Napi::Persistent(bytes.As<Napi::Object>())), unit_(unit) {
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
        if (!use_own_kernel(*core_, unit_))
            return Fail(Failure::native, "out of memory while loading the index");
        std::size_t target = grow_target(core_->index.size() + 1);
        if (!core_->index.try_reserve(index_limits_t(std::max(target, core_->index.capacity()), core_->config.slots)))
            return Fail(Failure::native, "out of memory while loading the index");
        core_->populated_bound = core_->index.size(); // a load builds the key table afresh
    }
    std::vector<Part> parts_;
    Napi::Reference<Napi::Object> keep_;
    bool unit_;
};

// ---- streaming ----

// How long a pool thread waiting on JS sleeps before checking that JS is
// still there (a torn-down environment never answers).
constexpr auto stream_poll = std::chrono::milliseconds(200);

// Flow control between a pool thread and the JS thread for one stream.
struct StreamFlow {
    std::mutex mutex;
    std::condition_variable changed;
    bool cancelled = false; // JS gave up (a failed write or read): the pool thread stops
    // serializeStream: which of JS's buffers are free to fill.
    std::deque<std::uint32_t> free_buffers;
    // loadStream: chunks JS pushed (in order) and whether it has pushed its last.
    std::vector<Part> chunks;
    bool ended = false;
    // loadStream, JS thread only: references that keep the pushed chunks alive until used up.
    std::vector<Napi::ObjectReference> held;
    std::vector<void const*> bases; // each held chunk's ArrayBuffer memory
    std::size_t released = 0;
    bool detach = false;
};

// serializeStream(buffers[], onEvent) → { done: Promise<void>, ack(buffer), cancel() }
//
// Runs usearch's save_to_stream on the pool and hands its bytes to JS in the
// caller's own fixed buffers (reused: no allocation per chunk, nothing left
// for the GC): onEvent(0, total) first (the exact length, so JS knows which
// chunk is last), then onEvent(1, buffer, bytes) per chunk, every chunk full
// but the last, then onEvent(2) at the end. A buffer is refilled only after
// JS acks it, so at most buffers.length chunks exist outside usearch.
// `done` settles once the pool thread let go of the index; the events may
// arrive after it, so JS waits for event 2 as well.
class SerializeStreamWorker : public PromiseWorker {
  public:
    SerializeStreamWorker(Napi::Env env, std::shared_ptr<Core> core, Napi::Array buffers, Napi::Function on_event,
                          std::shared_ptr<StreamFlow> flow)
        : PromiseWorker(env, std::move(core)), flow_(std::move(flow)) {
        for (std::uint32_t i = 0; i != buffers.Length(); ++i) {
            Napi::Value item = buffers.Get(i);
            if (!item.IsTypedArray() || item.As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array)
                throw Napi::TypeError::New(env, "buffers must be Uint8Arrays");
            auto buffer = item.As<Napi::Uint8Array>();
            if (buffer.ByteLength() == 0 || (i > 0 && buffer.ByteLength() != spans_[0].second))
                throw Napi::RangeError::New(env, "buffers must be non-empty and of one size");
            spans_.emplace_back(buffer.Data(), buffer.ByteLength());
            keep_.push_back(Napi::Persistent(item.As<Napi::Object>()));
            flow_->free_buffers.push_back(i);
        }
        if (spans_.empty())
            throw Napi::RangeError::New(env, "at least one buffer is needed");
        tsfn_ = Napi::ThreadSafeFunction::New(env, on_event, "vecvault:serializeStream", 0, 1);
    }
    ~SerializeStreamWorker() override { release(); }

  private:
    struct Event {
        int kind;
        double a, b;
    };
    void release() {
        if (!released_) {
            released_ = true;
            tsfn_.Release();
        }
    }
    bool send(int kind, double a = 0, double b = 0) {
        auto* event = new Event{kind, a, b};
        napi_status status = tsfn_.BlockingCall(event, [](Napi::Env, Napi::Function callback, Event* e) {
            std::unique_ptr<Event> owned(e);
            if (callback)
                callback.Call({Napi::Number::New(callback.Env(), e->kind), Napi::Number::New(callback.Env(), e->a),
                               Napi::Number::New(callback.Env(), e->b)});
        });
        if (status != napi_ok) {
            delete event;
            return false;
        }
        return true;
    }
    // Waits for a free buffer; false when JS cancelled or went away.
    bool take_buffer() {
        std::unique_lock<std::mutex> lock(flow_->mutex);
        while (!flow_->cancelled && flow_->free_buffers.empty()) {
            if (flow_->changed.wait_for(lock, stream_poll) == std::cv_status::timeout) {
                lock.unlock();
                bool alive = send(3); // a no-op event: fails once the environment is closing
                lock.lock();
                if (!alive)
                    return false;
            }
        }
        if (flow_->cancelled)
            return false;
        current_ = flow_->free_buffers.front();
        flow_->free_buffers.pop_front();
        filled_ = 0;
        return true;
    }
    bool emit() {
        sent_ += filled_;
        bool ok = send(1, current_, static_cast<double>(filled_));
        current_ = npos;
        return ok;
    }
    void Run() override {
        struct Done { // events first, then the release: JS sees event 2 last
            SerializeStreamWorker& w;
            ~Done() { w.release(); }
        } done{*this};
        ReadHold hold(core_->gate);
        if (core_->closed)
            return Fail(Failure::closed, "closed");
        std::size_t total = core_->index.serialized_length();
        if (!send(0, static_cast<double>(total)))
            return Fail(Failure::native, "the serialize stream was abandoned");
        std::size_t chunk = spans_[0].second;
        auto output = [&](void const* data, std::size_t n) {
            auto p = static_cast<std::uint8_t const*>(data);
            while (n != 0) {
                if (current_ == npos && !take_buffer())
                    return false;
                std::size_t take = std::min(n, chunk - filled_);
                std::memcpy(const_cast<std::uint8_t*>(spans_[current_].first) + filled_, p, take); // JS's buffer, held by keep_
                filled_ += take;
                p += take;
                n -= take;
                if (filled_ == chunk && !emit())
                    return false;
            }
            return true;
        };
        auto result = core_->index.save_to_stream(output);
        if (!result) {
            std::lock_guard<std::mutex> lock(flow_->mutex);
            return Fail(Failure::native, flow_->cancelled ? "cancelled" : result.error.release());
        }
        if (current_ != npos && filled_ != 0 && !emit())
            return Fail(Failure::native, "the serialize stream was abandoned");
        if (sent_ != total)
            return Fail(Failure::native, "serialized length changed while streaming");
        send(2);
    }

    static constexpr std::uint32_t npos = static_cast<std::uint32_t>(-1);
    std::shared_ptr<StreamFlow> flow_;
    std::vector<Part> spans_;
    std::vector<Napi::ObjectReference> keep_;
    Napi::ThreadSafeFunction tsfn_;
    bool released_ = false;
    std::uint32_t current_ = npos;
    std::size_t filled_ = 0;
    std::size_t sent_ = 0;
};

// loadStream(bound, onConsumed, detach, digestKey?) → { done: Promise<Buffer | undefined>, push(chunk), end(), cancel() }
//
// Loads a fresh core from chunks JS pushes in order (the decrypted snapshot
// chunks, authenticated before they are pushed), while JS reads and decrypts
// the next ones: usearch pulls from them in place, through StreamValidator,
// which checks every unit before the read that delivers it returns. After
// each chunk is used up, onConsumed(count) runs on the JS thread (with the
// chunk's ArrayBuffer detached when `detach`, so its memory goes back at once
// instead of at some later GC); JS keeps only a few chunks pushed ahead.
// `bound` is an upper bound on the total length. With a 32-byte digest key,
// `done` resolves to the KeyDigest (key-digest.h) of the graph's live keys,
// taken as they stream past. `unit`: every vector in the bytes is unit length
// (use_own_kernel in core.h).
class LoadStreamWorker : public PromiseWorker {
  public:
    LoadStreamWorker(Napi::Env env, std::shared_ptr<Core> core, std::uint64_t bound, Napi::Function on_consumed,
                     Napi::Value digest_key, bool unit, std::shared_ptr<StreamFlow> flow)
        : PromiseWorker(env, std::move(core)), flow_(std::move(flow)), validator_(core_->config, bound), unit_(unit) {
        if (!digest_key.IsUndefined()) {
            if (!digest_key.IsTypedArray() || digest_key.As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array ||
                digest_key.As<Napi::Uint8Array>().ByteLength() != KeyDigest::key_bytes)
                throw Napi::TypeError::New(env, "the key digest's key must be a 32-byte Uint8Array");
            keys_ = std::make_unique<KeyDigest>(digest_key.As<Napi::Uint8Array>().Data()); // copied into OpenSSL's context here
            validator_.digest_keys(keys_.get());
        }
        tsfn_ = Napi::ThreadSafeFunction::New(env, on_consumed, "vecvault:loadStream", 0, 1);
    }
    ~LoadStreamWorker() override { release(); }

  private:
    void release() {
        if (!released_) {
            released_ = true;
            tsfn_.Release();
        }
    }
    struct Consumed {
        std::shared_ptr<StreamFlow> flow;
        std::size_t count;
    };
    bool notify_consumed(std::size_t count) {
        auto* n = new Consumed{flow_, count};
        napi_status status = tsfn_.BlockingCall(n, [](Napi::Env env, Napi::Function callback, Consumed* c) {
            std::unique_ptr<Consumed> owned(c);
            StreamFlow& flow = *c->flow;
            for (; flow.released < std::min(c->count, flow.held.size()); ++flow.released) {
                Napi::ObjectReference& ref = flow.held[flow.released];
                // Never detach memory a chunk still waiting to be read lives in (views of one buffer).
                bool shared = false;
                for (std::size_t later = flow.released + 1; later < flow.bases.size() && !shared; ++later)
                    shared = flow.bases[later] == flow.bases[flow.released];
                if (flow.detach && !shared && !ref.IsEmpty()) {
                    Napi::Value chunk = ref.Value();
                    if (chunk.IsTypedArray())
                        napi_detach_arraybuffer(env, chunk.As<Napi::TypedArray>().ArrayBuffer()); // best effort
                }
                ref.Reset();
            }
            if (callback)
                callback.Call({Napi::Number::New(env, static_cast<double>(c->count))});
        });
        if (status != napi_ok) {
            delete n;
            return false;
        }
        return true;
    }
    // Moves to the next pushed chunk; false at the end of the stream, on cancel, or if JS went away.
    bool next_chunk() {
        if (at_ != npos && !notify_consumed(at_ + 1))
            return false;
        std::size_t want = at_ == npos ? 0 : at_ + 1;
        std::unique_lock<std::mutex> lock(flow_->mutex);
        while (!flow_->cancelled && flow_->chunks.size() <= want && !flow_->ended) {
            if (flow_->changed.wait_for(lock, stream_poll) == std::cv_status::timeout) {
                lock.unlock();
                bool alive = notify_consumed(want); // repeats the count: harmless, and fails once JS is gone
                lock.lock();
                if (!alive)
                    return false;
            }
        }
        if (flow_->cancelled || flow_->chunks.size() <= want)
            return false;
        at_ = want;
        chunk_ = flow_->chunks[at_];
        in_chunk_ = 0;
        return true;
    }
    bool read(void* out, std::size_t n) {
        auto* to = static_cast<std::uint8_t*>(out);
        std::size_t left = n;
        while (left != 0) {
            if ((at_ == npos || in_chunk_ == chunk_.second) && !next_chunk())
                return false;
            std::size_t take = std::min(left, chunk_.second - in_chunk_);
            std::memcpy(to, chunk_.first + in_chunk_, take);
            in_chunk_ += take;
            to += take;
            left -= take;
        }
        // Checked before usearch sees the bytes: a unit that fails makes this read fail.
        return validator_.feed(static_cast<std::uint8_t const*>(out), n);
    }
    // True when no byte is left: the current chunk is used up and JS ended the stream after it.
    bool at_end() {
        while (at_ == npos || in_chunk_ == chunk_.second) {
            if (!next_chunk()) {
                std::lock_guard<std::mutex> lock(flow_->mutex);
                return !flow_->cancelled && flow_->ended;
            }
        }
        return false;
    }
    void Run() override {
        struct Done {
            LoadStreamWorker& w;
            ~Done() { w.release(); }
        } done{*this};
        ExclusiveHold hold(core_->gate);
        if (core_->closed)
            return Fail(Failure::closed, "closed");
        auto input = [this](void* out, std::size_t n) { return read(out, n); };
        auto result = core_->index.load_from_stream(input);
        bool cancelled;
        {
            std::lock_guard<std::mutex> lock(flow_->mutex);
            cancelled = flow_->cancelled;
        }
        std::string error;
        if (cancelled)
            error = "cancelled";
        else if (!validator_.error().empty())
            error = "invalid index bytes: " + validator_.error();
        else if (!result)
            error = std::string("invalid index bytes: ") + result.error.release();
        else if (!at_end())
            error = cancelled ? "cancelled" : "invalid index bytes: trailing bytes after the index";
        else if (!validator_.finish())
            error = "invalid index bytes: " + validator_.error();
        if (!error.empty()) {
            core_->index.reset(); // nothing half-loaded stays behind
            return Fail(Failure::native, error);
        }
        if (keys_ && !keys_->finish(digest_))
            return Fail(Failure::native, "AES-256 setup failed");
        if (!use_own_kernel(*core_, unit_))
            return Fail(Failure::native, "out of memory while loading the index");
        std::size_t target = grow_target(core_->index.size() + 1);
        if (!core_->index.try_reserve(index_limits_t(std::max(target, core_->index.capacity()), core_->config.slots)))
            return Fail(Failure::native, "out of memory while loading the index");
        core_->populated_bound = core_->index.size();
    }
    // With a digest key: the KeyDigest of the live keys the loaded graph holds.
    Napi::Value Result(Napi::Env env) override {
        if (!keys_)
            return env.Undefined();
        return Napi::Buffer<std::uint8_t>::Copy(env, digest_, KeyDigest::digest_bytes);
    }

    static constexpr std::size_t npos = static_cast<std::size_t>(-1);
    std::shared_ptr<StreamFlow> flow_;
    StreamValidator validator_;
    std::unique_ptr<KeyDigest> keys_;
    std::uint8_t digest_[KeyDigest::digest_bytes] = {};
    Napi::ThreadSafeFunction tsfn_;
    bool unit_;
    bool released_ = false;
    std::size_t at_ = npos;
    Part chunk_{nullptr, 0};
    std::size_t in_chunk_ = 0;
};

} // namespace
