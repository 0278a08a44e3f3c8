// The pool of usearch "thread slots" (search context and cast buffer): each
// operation borrows a distinct slot, so two pool threads never share one.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <mutex>
#include <vector>

namespace {

// Thread slots 0..n-1 handed to usearch explicitly; waits if all are busy
// (only possible when more pool threads exist than slots were reserved for).
class SlotPool {
  public:
    explicit SlotPool(std::size_t n) {
        for (std::size_t i = n; i > 0; --i)
            free_.push_back(i - 1);
    }
    std::size_t acquire() {
        std::unique_lock<std::mutex> lock(mutex_);
        cv_.wait(lock, [&] { return !free_.empty(); });
        std::size_t slot = free_.back();
        free_.pop_back();
        return slot;
    }
    bool try_acquire(std::size_t& slot) {
        std::lock_guard<std::mutex> lock(mutex_);
        if (free_.empty())
            return false;
        slot = free_.back();
        free_.pop_back();
        return true;
    }
    void release(std::size_t slot) {
        {
            std::lock_guard<std::mutex> lock(mutex_);
            free_.push_back(slot);
        }
        cv_.notify_one();
    }

  private:
    std::mutex mutex_;
    std::condition_variable cv_;
    std::vector<std::size_t> free_;
};

struct SlotHold {
    SlotPool& pool;
    std::size_t slot;
    explicit SlotHold(SlotPool& p) : pool(p), slot(p.acquire()) {}
    ~SlotHold() { pool.release(slot); }
};

} // namespace
