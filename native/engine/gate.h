// The three-mode gate that keeps usearch's lock-free search away from inserts
// and removes, and the RAII holds every worker takes on it. No usearch or N-API
// here: the concurrency rules for one index, in one place.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <mutex>

namespace {

// Three-mode gate. Readers (searches, serialize) share it with readers,
// writers (inserting one row, removing a batch) with writers, and exclusive
// holders (reserve, load, close) with nobody.
//
// Why writers and readers never overlap: usearch's search takes no locks by
// design, so a search racing an insert can walk into the new node before its
// base-layer links exist and come back with a single hit. Writers hold the
// gate per row, so a waiting search gets in after at most one insert.
//
// Fairness: while another mode waits, no newcomer joins the current mode;
// when the gate empties it goes to the waiting mode that did not run last,
// exclusive first. Nothing can starve.
class Gate {
  public:
    enum class Mode { none, read, write, exclusive };

    void enter(Mode m) {
        std::unique_lock<std::mutex> lock(mutex_);
        ++waiting_[index(m)];
        cv_.wait(lock, [&] { return admits(m); });
        --waiting_[index(m)];
        mode_ = m;
        ++holders_;
    }
    // Enters only if that needs no wait (the calling-thread search must never block the event loop).
    bool try_enter(Mode m) {
        std::lock_guard<std::mutex> lock(mutex_);
        if (!admits(m))
            return false;
        mode_ = m;
        ++holders_;
        return true;
    }
    void leave() {
        std::lock_guard<std::mutex> lock(mutex_);
        if (--holders_ == 0) {
            last_ = mode_;
            mode_ = Mode::none;
            cv_.notify_all();
        }
    }

  private:
    static std::size_t index(Mode m) { return static_cast<std::size_t>(m); }
    Mode other(Mode m) const { return m == Mode::read ? Mode::write : Mode::read; }

    bool admits(Mode m) const {
        bool exclusive_waits = waiting_[index(Mode::exclusive)] > 0;
        if (m == Mode::exclusive)
            return mode_ == Mode::none;
        bool other_waits = waiting_[index(other(m))] > 0;
        if (mode_ == m)
            return !exclusive_waits && !other_waits;
        if (mode_ != Mode::none || exclusive_waits)
            return false;
        // Gate is free and both shared modes may wait: alternate.
        return !(other_waits && last_ == m);
    }

    std::mutex mutex_;
    std::condition_variable cv_;
    Mode mode_ = Mode::none;
    Mode last_ = Mode::none;
    std::size_t holders_ = 0;
    std::size_t waiting_[4] = {0, 0, 0, 0};
};

struct GateHold {
    Gate& gate;
    GateHold(Gate& g, Gate::Mode m) : gate(g) { gate.enter(m); }
    ~GateHold() { gate.leave(); }
    GateHold(GateHold const&) = delete;
    GateHold& operator=(GateHold const&) = delete;
};

struct ReadHold : GateHold {
    explicit ReadHold(Gate& g) : GateHold(g, Gate::Mode::read) {}
};
struct WriteHold : GateHold {
    explicit WriteHold(Gate& g) : GateHold(g, Gate::Mode::write) {}
};
struct ExclusiveHold : GateHold {
    explicit ExclusiveHold(Gate& g) : GateHold(g, Gate::Mode::exclusive) {}
};

} // namespace
