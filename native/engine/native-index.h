// The JS-facing NativeIndex class (Napi::ObjectWrap): its method table, which
// src/engine/native.ts mirrors as NativeIndexHandle (test/native-surface.test.ts
// checks the two match), and the argument parsing that starts each task.
#pragma once

#include <napi.h>

#include "../promise-task.h"
#include "core.h"
#include "promise-worker.h"
#include "reachability.h"
#include "search.h"
#include "snapshot-workers.h"
#include "write-workers.h"

#include <algorithm>
#include <cstddef>
#include <exception>
#include <memory>
#include <string>
#include <utility>

namespace {

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
                               InstanceMethod("countPresent", &NativeIndex::CountPresent),
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
                               InstanceMethod("serializeStream", &NativeIndex::SerializeStream),
                               InstanceMethod("loadStream", &NativeIndex::LoadStream),
                               InstanceMethod("unitVectors", &NativeIndex::UnitVectors),
                               InstanceMethod("checkGraph", &NativeIndex::CheckGraph),
                               InstanceMethod("unlinkForTesting", &NativeIndex::UnlinkForTesting),
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
        Core& core = live(info.Env());
        bool ours = core.unit || own_kernel(core.config.metric, core.config.scalar); // a live engine of that kind runs ours
        return Napi::String::New(info.Env(), ours ? own_kernel_isa() : core.index.metric().isa_name());
    }

    template <typename Worker, typename... Args> Napi::Value Start(Napi::Env env, Args&&... args) {
        live(env);
        return vecvault::queue_task<Worker>(env, core_, std::forward<Args>(args)...);
    }

    Napi::Value PrepareAdd(Napi::CallbackInfo const& info) {
        return Start<PrepareAddWorker>(info.Env(), copy_typed<key_t>(info[0]), info[1].As<Napi::Float32Array>());
    }
    // Keys as a BigUint64Array, or as a Float64Array of integers below 2^53 (a
    // snapshot table's key column as is: no BigInt per key on the main thread).
    // The numbers are checked and converted on the pool (see CountPresentWorker).
    Napi::Value CountPresent(Napi::CallbackInfo const& info) {
        if (info[0].As<Napi::TypedArray>().TypedArrayType() == napi_float64_array)
            return Start<CountPresentWorker>(info.Env(), copy_typed<double>(info[0]));
        return Start<CountPresentWorker>(info.Env(), copy_typed<key_t>(info[0]));
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
    // search(queries, k, expansion, allowedKeys | null, exact, lanes) → Promise<ArrayBuffer> (a ResultBlock),
    // on `lanes` pool threads (search.h SearchBatch). The queries and keys are copied here.
    Napi::Value Search(Napi::CallbackInfo const& info) {
        Napi::Env env = info.Env();
        live(env);
        SearchRequest req = search_request(info);
        std::size_t lanes = std::max<std::size_t>(1, std::min(info[5].IsNumber() ? as_size(info[5]) : 1, req.count));
        auto batch = std::make_shared<SearchBatch>(env, std::move(req), lanes);
        Napi::Promise promise = batch->deferred.Promise();
        // Every lane is counted only once it is queued: if making or queuing one throws, the lanes already
        // queued settle the call (failed), or it is rejected here when none was, so the promise always settles.
        std::size_t queued = 0;
        try {
            for (; queued != lanes; ++queued) {
                auto lane = std::make_unique<SearchLane>(env, core_, batch);
                lane->Queue();
                lane.release(); // the pool owns it now: it deletes itself once settled
            }
        } catch (std::exception const& e) { // Napi::Error too
            batch->lanes_left = queued;
            if (queued == 0)
                batch->deferred.Reject(coded_error(env, Failure::native, e.what()));
            else
                batch->fail(Failure::native, e.what());
        }
        return promise;
    }

    // searchSync(queries, k, expansion[, exact]) → ArrayBuffer (a ResultBlock)
    // computed on the calling thread, or null when it could not start without
    // waiting (an insert row, a remove batch or a growth holds the index;
    // native.ts then uses the pool). No filter; exact only when native.ts
    // bounded its cost (a small index).
    // Reads the caller's queries in place (nothing else runs meanwhile) and
    // writes the results straight into the returned buffer: no copies.
    Napi::Value SearchSync(Napi::CallbackInfo const& info) {
        Napi::Env env = info.Env();
        Core& core = live(env);
        auto queries = info[0].As<Napi::Float32Array>();
        SearchParams params;
        params.k = as_size(info[1]);
        params.expansion = as_size(info[2]);
        params.exact = info.Length() > 3 && info[3].ToBoolean().Value();
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
                bool scaled = normalizes(core.config); // the caller's array stays as it is: one query at a time, scaled here
                thread_local std::vector<float> query;
                for (std::size_t q = 0; q != count && error.empty(); ++q) {
                    float const* row = data + q * dims;
                    if (scaled) {
                        query.assign(row, row + dims);
                        normalize_rows(query.data(), 1, dims);
                        row = query.data();
                    }
                    error = search_one(core, params, row, slot, out.keys + q * params.k,
                                       out.distances + q * params.k, out.counts[q]);
                }
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
    // checkGraph(repair, maxRounds, expansion) → Promise<{ found, repaired, remaining, rounds, live, keys }> (reachability.h)
    Napi::Value CheckGraph(Napi::CallbackInfo const& info) {
        return Start<ReachabilityWorker>(info.Env(), info[0].ToBoolean().Value(), as_size(info[1]), std::max<std::size_t>(1, as_size(info[2])));
    }
    // unlinkForTesting(key) → Promise<number>: cuts every link into the key's node (tests of the repair only).
    Napi::Value UnlinkForTesting(Napi::CallbackInfo const& info) {
        bool lossless = false;
        key_t key = info[0].As<Napi::BigInt>().Uint64Value(&lossless);
        if (!lossless)
            throw Napi::RangeError::New(info.Env(), "bad key");
        return Start<UnlinkWorker>(info.Env(), key);
    }
    // load(bytes, unitVectors) → Promise<void>
    Napi::Value Load(Napi::CallbackInfo const& info) {
        return Start<LoadWorker>(info.Env(), info[0], info[1].ToBoolean().Value());
    }
    // unitVectors() → whether every stored vector is unit length and the unit-vector kernel is in use (f32-kernels.h)
    Napi::Value UnitVectors(Napi::CallbackInfo const& info) {
        return Napi::Boolean::New(info.Env(), live(info.Env()).unit);
    }

    // Starts a stream task and returns { done, ...controls } (see snapshot-workers.h).
    template <typename Worker, typename... Args>
    Napi::Object StartStream(Napi::Env env, std::shared_ptr<StreamFlow> const& flow, Args&&... args) {
        live(env);
        auto* task = new Worker(env, core_, std::forward<Args>(args)..., flow);
        Napi::Promise promise = task->Promise();
        task->Queue();
        auto control = Napi::Object::New(env);
        control.Set("done", promise);
        control.Set("cancel", Napi::Function::New(env, [flow](Napi::CallbackInfo const& i) {
                        {
                            std::lock_guard<std::mutex> lock(flow->mutex);
                            flow->cancelled = true;
                        }
                        flow->changed.notify_all();
                        return i.Env().Undefined();
                    }));
        return control;
    }
    // serializeStream(buffers[], onEvent) → { done, ack(buffer), cancel() }
    Napi::Value SerializeStream(Napi::CallbackInfo const& info) {
        Napi::Env env = info.Env();
        if (!info[0].IsArray() || !info[1].IsFunction())
            throw Napi::TypeError::New(env, "serializeStream(buffers, onEvent)");
        auto flow = std::make_shared<StreamFlow>();
        std::uint32_t count = info[0].As<Napi::Array>().Length();
        Napi::Object control = StartStream<SerializeStreamWorker>(env, flow, info[0].As<Napi::Array>(), info[1].As<Napi::Function>());
        control.Set("ack", Napi::Function::New(env, [flow, count](Napi::CallbackInfo const& i) {
                        std::uint32_t buffer = i[0].As<Napi::Number>().Uint32Value();
                        if (buffer >= count)
                            throw Napi::RangeError::New(i.Env(), "no such buffer");
                        {
                            std::lock_guard<std::mutex> lock(flow->mutex);
                            flow->free_buffers.push_back(buffer);
                        }
                        flow->changed.notify_all();
                        return i.Env().Undefined();
                    }));
        return control;
    }
    // loadStream(bound, onConsumed, detach, digestKey?, unitVectors?) → { done, push(chunk), end(), cancel() }; for a fresh index only.
    Napi::Value LoadStream(Napi::CallbackInfo const& info) {
        Napi::Env env = info.Env();
        if (!info[0].IsNumber() || !info[1].IsFunction())
            throw Napi::TypeError::New(env, "loadStream(bound, onConsumed, detach)");
        auto flow = std::make_shared<StreamFlow>();
        flow->detach = info[2].ToBoolean().Value();
        auto bound = static_cast<std::uint64_t>(info[0].As<Napi::Number>().Int64Value());
        Napi::Object control = StartStream<LoadStreamWorker>(env, flow, bound, info[1].As<Napi::Function>(), info[3],
                                                               info[4].ToBoolean().Value());
        control.Set("push", Napi::Function::New(env, [flow](Napi::CallbackInfo const& i) {
                        Napi::Value item = i[0];
                        if (!item.IsTypedArray() || item.As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array)
                            throw Napi::TypeError::New(i.Env(), "chunks must be Uint8Arrays");
                        auto chunk = item.As<Napi::Uint8Array>();
                        flow->held.push_back(Napi::Persistent(item.As<Napi::Object>()));
                        flow->bases.push_back(chunk.ArrayBuffer().Data());
                        {
                            std::lock_guard<std::mutex> lock(flow->mutex);
                            flow->chunks.emplace_back(chunk.Data(), chunk.ByteLength());
                        }
                        flow->changed.notify_all();
                        return i.Env().Undefined();
                    }));
        control.Set("end", Napi::Function::New(env, [flow](Napi::CallbackInfo const& i) {
                        {
                            std::lock_guard<std::mutex> lock(flow->mutex);
                            flow->ended = true;
                        }
                        flow->changed.notify_all();
                        return i.Env().Undefined();
                    }));
        return control;
    }

    // close() → Promise: refuses further calls at once, then frees the index
    // on the pool (FreeWorker). native.ts calls this only once no work is in
    // flight; the exclusive gate makes it safe even if some still were.
    Napi::Value Close(Napi::CallbackInfo const& info) {
        Napi::Env env = info.Env();
        if (!core_) {
            auto done = Napi::Promise::Deferred::New(env);
            done.Resolve(env.Undefined());
            return done.Promise();
        }
        std::shared_ptr<Core> core = std::move(core_);
        {
            ExclusiveHold hold(core->gate);
            core->closed = true;
        }
        return vecvault::queue_task<FreeWorker>(env, std::move(core));
    }

    std::shared_ptr<Core> core_;
};

} // namespace
