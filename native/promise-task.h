// A libuv pool task bound to a Promise, shared by the engine (addon.cc) and
// the batched crypto (crypto.cc).
#pragma once

#include <napi.h>

#include <utility>

namespace vecvault {

class PromiseTask : public Napi::AsyncWorker {
  public:
    PromiseTask(Napi::Env env, char const* name)
        : Napi::AsyncWorker(env, name), deferred_(Napi::Promise::Deferred::New(env)) {}
    Napi::Promise Promise() { return deferred_.Promise(); }

  protected:
    // Resolves or rejects `deferred_`; runs on the JS thread after Execute().
    virtual void Settle(Napi::Env env) = 0;

    // Replaces node-addon-api's completion: when a worker thread's
    // environment is torn down with this task in flight, every N-API call
    // fails, and its default path rethrows inside a catch handler, which
    // terminates the whole process. Nobody awaits the promise then; drop it.
    void OnWorkComplete(Napi::Env env, napi_status status) final {
        if (status != napi_cancelled) {
            try {
                Napi::HandleScope scope(env);
                Settle(env);
            } catch (...) {
            }
        }
        Destroy();
    }

    Napi::Promise::Deferred deferred_;
};

// Creates a task, queues it on the pool and returns its promise.
template <typename Task, typename... Args> Napi::Value queue_task(Napi::Env env, Args&&... args) {
    auto* task = new Task(env, std::forward<Args>(args)...);
    Napi::Promise promise = task->Promise();
    task->Queue();
    return promise;
}

}  // namespace vecvault
