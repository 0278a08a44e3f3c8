// A libuv pool task bound to a Promise, shared by the engine (addon.cc) and
// the batched crypto (crypto.cc).
#pragma once

#include <napi.h>

#include <utility>

namespace vecvault {

// A libuv pool task whose completion calls Settle on the JS thread.
// Replaces node-addon-api's completion: when a worker thread's environment is
// torn down with this task in flight, every N-API call fails, and its default
// path rethrows inside a catch handler, which terminates the whole process.
// Nobody awaits the result then; drop it.
class SettlingTask : public Napi::AsyncWorker {
  public:
    SettlingTask(Napi::Env env, char const* name) : Napi::AsyncWorker(env, name) {}

  protected:
    // Runs on the JS thread after Execute(), unless the environment is going away.
    virtual void Settle(Napi::Env env) = 0;

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
};

// A SettlingTask bound to a Promise of its own.
class PromiseTask : public SettlingTask {
  public:
    PromiseTask(Napi::Env env, char const* name)
        : SettlingTask(env, name), deferred_(Napi::Promise::Deferred::New(env)) {}
    Napi::Promise Promise() { return deferred_.Promise(); }

  protected:
    // Resolves or rejects `deferred_`.
    void Settle(Napi::Env env) override = 0;

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
