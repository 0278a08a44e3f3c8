// Long graph inserts (an upsert's chunks, the compaction's rebuild) run on a
// short-lived thread of their own at a lower CPU priority (nice + 10, Linux),
// while the libuv pool thread that took the task waits for it. Two insert
// lanes keep both cores of a small machine busy for minutes; at equal
// priority the main thread, woken by a timer or I/O, queues behind them, and
// so do V8's GC helpers that a mark-compact's final pause waits for
// (bench/stalls.ts attributes those stalls to the run queue). At nice + 10 a
// thread weighs ~1/10 of a nice-0 one in the scheduler's share, so the event
// loop gets a core within a fraction of a time slice; when nothing else
// wants the cores, the inserts run as fast as before.
//
// Why a thread of its own: a thread may raise its own nice value but, without
// CAP_SYS_NICE or RLIMIT_NICE, never lower it again, and the pool thread goes
// on to run the host's fs, crypto and zlib work. The helper ends with the
// chunk, its priority with it. VECVAULT_BACKGROUND_NICE=0 turns it off.
#pragma once

#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <system_error>
#include <thread>
#include <utility>

#if defined(__linux__)
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>
#define VECVAULT_BACKGROUND_NICE 1
#endif

namespace {

class BackgroundPriority {
  public:
    static constexpr int nice_offset = 10;

    static BackgroundPriority& instance() {
        static BackgroundPriority* priority = new BackgroundPriority(); // never destroyed: pool threads may use it at exit
        return *priority;
    }

    // Runs `body` on a helper thread at the lower priority and waits for it; exceptions cross over. Where that
    // cannot be (off, not Linux, no thread to be had), runs it here.
    template <typename Body> void run(Body&& body) {
#if defined(VECVAULT_BACKGROUND_NICE)
        if (enabled_.load(std::memory_order_relaxed)) {
            std::exception_ptr failure;
            std::thread helper;
            try {
                helper = std::thread([&] {
                    lower_this_thread();
                    try {
                        body();
                    } catch (...) {
                        failure = std::current_exception();
                    }
                });
            } catch (std::system_error const&) {
                body(); // no thread (a resource limit): at the pool thread's priority
                return;
            }
            helper.join();
            runs_.fetch_add(1, std::memory_order_relaxed);
            if (failure)
                std::rethrow_exception(failure);
            return;
        }
#endif
        body();
    }

    // Helper threads started, and how many of them got the lower priority (tests, benches).
    struct Stats {
        std::uint64_t runs, lowered;
    };
    Stats stats() const { return {runs_.load(), lowered_.load()}; }
    bool set_enabled(bool on) { return enabled_.exchange(on); }

  private:
    BackgroundPriority() {
        char const* setting = std::getenv("VECVAULT_BACKGROUND_NICE");
        enabled_.store(!(setting != nullptr && std::strcmp(setting, "0") == 0));
    }

#if defined(VECVAULT_BACKGROUND_NICE)
    // Linux keeps a nice value per thread (setpriority with a thread id). Relative to what the thread inherited, so
    // a process started under `nice` stays below it; raising it needs no privilege. A failure leaves it as it was.
    void lower_this_thread() {
        id_t tid = static_cast<id_t>(syscall(SYS_gettid));
        errno = 0;
        int current = getpriority(PRIO_PROCESS, tid);
        if (current == -1 && errno != 0)
            return;
        int target = current + nice_offset > 19 ? 19 : current + nice_offset;
        if (target > current && setpriority(PRIO_PROCESS, tid, target) == 0)
            lowered_.fetch_add(1, std::memory_order_relaxed);
    }
#endif

    std::atomic<bool> enabled_{true};
    std::atomic<std::uint64_t> runs_{0};
    std::atomic<std::uint64_t> lowered_{0};
};

} // namespace
