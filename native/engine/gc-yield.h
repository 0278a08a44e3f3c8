// Pool threads doing long graph work can step aside while V8 is inside the
// final (atomic) pause of a mark-compact. That pause waits for V8's own
// helper threads (parallel marking, evacuation) and, on a quiet machine at
// 1M, took 55–70 ms with the main thread on a CPU for ~2 ms of it while our
// add tasks kept both cores busy (bench/stalls.ts, docs/performance.md
// "Stalls at 1M"). Paired in one run at load 4–8 the pauses' mean fell from
// 19.7 to 11.3 ms and their worst from 130 to 25 ms; at load 8–16 the
// waits made no difference or worse tails (docs/performance.md, "Stalls at
// 1M, third round"). VECVAULT_GC_YIELD=0 turns it off.
//
// V8 calls GC prologue/epilogue callbacks on the isolate's own thread at the
// start and end of that pause. Node-API has no such hook; the Isolate
// methods are looked up by their Itanium-mangled names (as memoryPressure in
// addon.cc does), so a Node without them loads the addon and yields nothing.
// Every environment (main thread, worker_threads) registers its own pair;
// the state is process-wide: any isolate's pause holds every pool thread
// back, since they share the same cores.
//
// Waiting is bounded: a worker waits at most `max_wait` past the start of the
// latest pause, so a missed epilogue can never hang a write.
#pragma once

#include <napi.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <mutex>

#if (defined(__linux__) || defined(__APPLE__)) && (defined(__x86_64__) || defined(__aarch64__))
#include <dlfcn.h>
#define VECVAULT_GC_HOOKS 1
#endif

namespace {

class GcPause {
  public:
    using clock = std::chrono::steady_clock;
    static constexpr std::chrono::milliseconds max_wait{50};

    static GcPause& instance() {
        static GcPause* pause = new GcPause(); // never destroyed: pool threads may still read it at exit
        return *pause;
    }

    void begin() {
        std::lock_guard<std::mutex> lock(mutex_);
        started_ = clock::now();
        ++pauses_;
        active_.fetch_add(1, std::memory_order_release);
    }
    void end() {
        {
            std::lock_guard<std::mutex> lock(mutex_);
            if (active_.load(std::memory_order_relaxed) > 0)
                active_.fetch_sub(1, std::memory_order_release);
        }
        cv_.notify_all();
    }
    // Between two units of work on a pool thread: returns at once unless a
    // pause is in progress, else when it ends or `max_wait` after it began.
    void yield() {
        if (active_.load(std::memory_order_acquire) == 0 || !enabled_.load(std::memory_order_relaxed))
            return;
        std::unique_lock<std::mutex> lock(mutex_);
        auto deadline = started_ + max_wait;
        auto t0 = clock::now();
        if (t0 >= deadline)
            return;
        cv_.wait_until(lock, deadline, [&] { return active_.load(std::memory_order_relaxed) == 0; });
        ++yields_;
        waited_ns_ += static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(clock::now() - t0).count());
    }

    struct Stats {
        std::uint64_t pauses, yields, waited_ns;
        int hooked;
    };
    Stats stats() {
        std::lock_guard<std::mutex> lock(mutex_);
        return {pauses_, yields_, waited_ns_, hooked_.load()};
    }
    std::atomic<int> hooked_{0}; // environments whose callbacks are registered
    // Off: pauses are still counted, nobody waits (bench/stalls.ts --alternate-yield turns it on and off to pair the
    // two). On unless VECVAULT_GC_YIELD=0 (which registers no hooks at all).
    std::atomic<bool> enabled_{true};

  private:
    std::mutex mutex_;
    std::condition_variable cv_;
    std::atomic<int> active_{0};
    clock::time_point started_{};
    std::uint64_t pauses_ = 0, yields_ = 0, waited_ns_ = 0;
};

#if defined(VECVAULT_GC_HOOKS)
// v8::GCType::kGCTypeMarkSweepCompact (v8-callbacks.h; unchanged since V8 5).
constexpr int gc_type_mark_sweep_compact = 1 << 2;
using GcCallback = void (*)(void* isolate, int type, int flags, void* data);
using AddGcCallback = void (*)(void* isolate, GcCallback callback, void* data, int filter);
using RemoveGcCallback = void (*)(void* isolate, GcCallback callback, void* data);

void OnGcPrologue(void*, int, int, void*) { GcPause::instance().begin(); }
void OnGcEpilogue(void*, int, int, void*) { GcPause::instance().end(); }

struct GcHooks {
    using GetCurrent = void* (*)();
    GetCurrent get_current;
    AddGcCallback add_prologue, add_epilogue;
    RemoveGcCallback remove_prologue, remove_epilogue;
    bool ok() const { return get_current && add_prologue && add_epilogue && remove_prologue && remove_epilogue; }

    static GcHooks const& find() {
        static GcHooks const hooks{
            reinterpret_cast<GetCurrent>(dlsym(RTLD_DEFAULT, "_ZN2v87Isolate10GetCurrentEv")),
            reinterpret_cast<AddGcCallback>(
                dlsym(RTLD_DEFAULT, "_ZN2v87Isolate21AddGCPrologueCallbackEPFvPS0_NS_6GCTypeENS_15GCCallbackFlagsEPvES4_S2_")),
            reinterpret_cast<AddGcCallback>(
                dlsym(RTLD_DEFAULT, "_ZN2v87Isolate21AddGCEpilogueCallbackEPFvPS0_NS_6GCTypeENS_15GCCallbackFlagsEPvES4_S2_")),
            reinterpret_cast<RemoveGcCallback>(
                dlsym(RTLD_DEFAULT, "_ZN2v87Isolate24RemoveGCPrologueCallbackEPFvPS0_NS_6GCTypeENS_15GCCallbackFlagsEPvES4_")),
            reinterpret_cast<RemoveGcCallback>(
                dlsym(RTLD_DEFAULT, "_ZN2v87Isolate24RemoveGCEpilogueCallbackEPFvPS0_NS_6GCTypeENS_15GCCallbackFlagsEPvES4_")),
        };
        return hooks;
    }
};

void UnhookGc(void* isolate) {
    GcHooks const& hooks = GcHooks::find();
    hooks.remove_prologue(isolate, OnGcPrologue, nullptr);
    hooks.remove_epilogue(isolate, OnGcEpilogue, nullptr);
    GcPause::instance().hooked_.fetch_sub(1);
}
#endif

// Registers this environment's isolate (once per environment: the addon's
// Init runs once per env). VECVAULT_GC_YIELD=0 registers nothing.
void HookGcPauses(Napi::Env env) {
#if defined(VECVAULT_GC_HOOKS)
    char const* setting = std::getenv("VECVAULT_GC_YIELD");
    if (setting != nullptr && std::strcmp(setting, "0") == 0)
        return;
    GcHooks const& hooks = GcHooks::find();
    if (!hooks.ok())
        return;
    void* isolate = hooks.get_current();
    if (isolate == nullptr)
        return;
    hooks.add_prologue(isolate, OnGcPrologue, nullptr, gc_type_mark_sweep_compact);
    hooks.add_epilogue(isolate, OnGcEpilogue, nullptr, gc_type_mark_sweep_compact);
    GcPause::instance().hooked_.fetch_add(1);
    napi_add_env_cleanup_hook(env, UnhookGc, isolate);
#else
    (void)env;
#endif
}

// gcYieldStats() → { hooked, pauses, yields, waitedMs }: how many
// environments are hooked, mark-compact pauses seen, and how often and how
// long pool threads stepped aside for them (process-wide, since load).
Napi::Value GcYieldStats(Napi::CallbackInfo const& info) {
    GcPause::Stats s = GcPause::instance().stats();
    auto out = Napi::Object::New(info.Env());
    out.Set("hooked", s.hooked);
    out.Set("pauses", static_cast<double>(s.pauses));
    out.Set("yields", static_cast<double>(s.yields));
    out.Set("waitedMs", static_cast<double>(s.waited_ns) / 1e6);
    return out;
}

// setGcYield(enabled) → the previous setting: whether pool threads wait out
// the pauses (the hooks stay registered either way). For paired benches.
Napi::Value SetGcYield(Napi::CallbackInfo const& info) {
    bool previous = GcPause::instance().enabled_.exchange(info[0].ToBoolean().Value());
    return Napi::Boolean::New(info.Env(), previous);
}

// gcPauseForTesting(inPause): begins or ends a pretend mark-compact pause,
// so a test can hold pool threads back (or leave a pause unended) at will.
Napi::Value GcPauseForTesting(Napi::CallbackInfo const& info) {
    if (info[0].ToBoolean().Value())
        GcPause::instance().begin();
    else
        GcPause::instance().end();
    return info.Env().Undefined();
}

} // namespace
