// Runs a pool task's heavy body on a lower-priority thread, so the JS thread
// wins the cores whenever it has work. On 2 cores, two graph-insert lanes at
// the JS thread's priority made every burst of main-thread work (a batch's
// decryption, V8's GC pauses) take about twice its CPU time in wall time: a
// 10 ms burst beside two busy threads took 20.7 ms (40 ms: 78.7); beside two
// at nice 10, 11.3 (44.9) (docs/performance.md, "Stalls at 1M, fifth round").
//
// Each libuv pool thread that asks gets one shadow thread of its own, created
// on first use and niced once (Linux: setpriority on a thread id is per
// thread). The pool thread waits while its shadow runs the body, so no more
// threads run at once than before and nothing queues behind another task.
// A pool thread cannot nice itself for the task and back: lowering a nice
// value again needs CAP_SYS_NICE, and the pool also runs Node's fs and
// LevelDB's work.
//
// VECVAULT_WORKER_NICE sets the nice value (0-19, read once; default 10);
// 0 runs every body inline on the pool thread, as before. Off Linux bodies
// always run inline.
#pragma once

#include <condition_variable>
#include <cstdlib>
#include <functional>
#include <mutex>
#include <system_error>
#include <thread>

#ifdef __linux__
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>
#endif

namespace vecvault {

// The nice value shadow threads take (0: none are made).
inline int worker_nice() {
#ifdef __linux__
    static int const nice = [] {
        char const* value = std::getenv("VECVAULT_WORKER_NICE");
        if (value == nullptr || *value == '\0')
            return 10;
        int n = std::atoi(value);
        return n < 0 ? 0 : n > 19 ? 19 : n;
    }();
    return nice;
#else
    return 0;
#endif
}

class NicedThread {
  public:
    // Runs `body` on the calling thread's shadow and returns once it finished (inline when niceness is off).
    // A shadow that cannot be started (the process is out of threads) runs the body inline: slower to yield, not lost.
    static void run(std::function<void()> const& body) {
        NicedThread* shadow = worker_nice() == 0 ? nullptr : shadow_of_this_thread();
        if (shadow == nullptr)
            return body();
        shadow->execute(body);
    }

    NicedThread(NicedThread const&) = delete;
    NicedThread& operator=(NicedThread const&) = delete;

  private:
    NicedThread() : thread_([this] { loop(); }) {}

    // This pool thread's shadow, made on first use; nullptr when std::thread could not start one (a later call retries).
    static NicedThread* shadow_of_this_thread() {
        try {
            thread_local NicedThread shadow;
            return &shadow;
        } catch (std::system_error const&) {
            return nullptr;
        }
    }

    // When the pool thread exits (process exit): stop the shadow and join it.
    ~NicedThread() {
        {
            std::lock_guard<std::mutex> lock(mutex_);
            stopping_ = true;
        }
        wake_.notify_one();
        thread_.join();
    }

    void execute(std::function<void()> const& body) {
        std::unique_lock<std::mutex> lock(mutex_);
        body_ = &body;
        wake_.notify_one();
        done_.wait(lock, [this] { return body_ == nullptr; });
    }

    void loop() {
#ifdef __linux__
        // Best effort: a failed setpriority leaves the shadow at the pool's priority, which is the old behaviour.
        setpriority(PRIO_PROCESS, static_cast<id_t>(syscall(SYS_gettid)), worker_nice());
#endif
        std::unique_lock<std::mutex> lock(mutex_);
        for (;;) {
            wake_.wait(lock, [this] { return body_ != nullptr || stopping_; });
            if (body_ == nullptr)
                return;
            auto const* body = body_;
            lock.unlock();
            (*body)(); // bodies catch their own exceptions (run_guarded)
            lock.lock();
            body_ = nullptr;
            done_.notify_one();
        }
    }

    std::mutex mutex_;
    std::condition_variable wake_;
    std::condition_variable done_;
    std::function<void()> const* body_ = nullptr;
    bool stopping_ = false;
    std::thread thread_;
};

} // namespace vecvault
