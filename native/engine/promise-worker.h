// The base of every index task on the libuv pool: a PromiseTask holding the
// shared Core, whose rejections carry a `code` (CLOSED / INVALID / NATIVE)
// that native.ts maps onto vecvault errors. Plus copy_typed for arguments.
#pragma once

#include <napi.h>

#include "../niced-thread.h"
#include "../promise-task.h"
#include "core.h"

#include <exception>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace {

enum class Failure { none, closed, invalid, native };

char const* failure_code(Failure f) {
    switch (f) {
    case Failure::closed: return "CLOSED";
    case Failure::invalid: return "INVALID";
    default: return "NATIVE";
    }
}

// The rejection for a failed task: an Error whose `code` native.ts maps
// onto a vecvault error class, and `path` for an invalid argument.
Napi::Value coded_error(Napi::Env env, Failure kind, std::string const& message, char const* path = nullptr) {
    Napi::Error e = Napi::Error::New(env, message);
    e.Set("code", Napi::String::New(env, failure_code(kind)));
    if (path)
        e.Set("path", Napi::String::New(env, path));
    return e.Value();
}

// Runs `body` on a pool thread, turning C++ exceptions (bad_alloc, usearch
// raises) into `fail(message)`: shared by PromiseWorker and search lanes.
template <typename Body, typename OnFail> void run_guarded(Body&& body, OnFail&& fail) {
    try {
        body();
    } catch (std::exception const& e) {
        fail(e.what());
    } catch (...) {
        fail("unknown native failure");
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
    // Runs the body (run_guarded: C++ exceptions become rejections) on the pool thread's niced shadow
    // (niced-thread.h): graph work must not take the cores from the JS thread.
    void Execute() final {
        vecvault::NicedThread::run([this] { run_guarded([this] { Run(); }, [this](char const* why) { Fail(Failure::native, why); }); });
    }
    virtual void Run() = 0;
    virtual Napi::Value Result(Napi::Env env) { return env.Undefined(); }
    void Settle(Napi::Env env) final {
        if (failure_ == Failure::none)
            return deferred_.Resolve(Result(env));
        deferred_.Reject(coded_error(env, failure_, message_, path_));
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

} // namespace
