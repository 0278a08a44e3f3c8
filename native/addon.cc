// vecvault's native engine: a thin N-API layer over usearch's header-only
// HNSW core (index_dense_gt). All policy (argument checks, write ordering,
// chunking, close semantics) lives in src/engine/native.ts; this addon only
// runs work on the libuv pool and keeps the index memory-safe.
//
// This file is the one translation unit binding.gyp compiles for the engine
// (the better-sqlite3 way): it includes the focused files in native/engine/
// in dependency order, so everything keeps internal linkage, as in one file.
//
// Concurrency inside one index (see also the comment in native.ts):
// - `Gate` has three modes: searches and serialize read together; inserts
//   (per row) and removes write together; capacity growth (usearch's reserve
//   must not overlap any add or search), load and close are exclusive.
// - Every operation that touches usearch's per-thread scratch (search, add,
//   exact distance) borrows a distinct "thread slot" from `SlotPool`, so two
//   pool threads never share a usearch context or cast buffer.
// - Ordering of adds/removes/serialize among themselves is done in JS.

#include <napi.h>

#include "engine/usearch.h"  // usearch's headers, its arenas on huge pages

#include "promise-task.h"  // here, before the engine files, as before the split: same object code

#include "engine/gate.h"              // Gate: who may touch the graph at once
#include "engine/slot-pool.h"         // usearch thread slots for pool threads
#include "engine/core.h"              // Config, Core, creating and growing the index
#include "engine/validate-bytes.h"    // checks untrusted serialized bytes before loading
#include "engine/promise-worker.h"    // base of every pool task (coded rejections)
#include "engine/gc-yield.h"          // pool threads step aside during V8's mark-compact pauses
#include "engine/write-workers.h"     // prepareAdd, addChunk, remove, reserve
#include "engine/search.h"            // result block, search_one, the search task
#include "engine/snapshot-workers.h"  // serialize, load
#include "engine/reachability.h"      // live nodes the graph cannot reach, and their repair
#include "engine/native-index.h"      // the JS-facing NativeIndex class

#include <string>

#if defined(__GLIBC__)
#include <malloc.h>
#endif
#if defined(__linux__) || defined(__APPLE__)
#include <dlfcn.h>
#endif
#if defined(__linux__)
#include <fcntl.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>
#include <cstdio>
#include <cstdlib>
#endif

namespace vecvault_crypto {
Napi::Object Define(Napi::Env env);  // native/crypto.cc: batched AES-GCM and HMAC
}
namespace vecvault_tables {
Napi::Object Define(Napi::Env env);  // native/tables.cc: bulk fills of the live table's hash tables
}

namespace {

Napi::Value SimdInfo(Napi::CallbackInfo const& info) {
    auto out = Napi::Object::New(info.Env());
    out.Set("compiled", hardware_acceleration_compiled());
    out.Set("available", hardware_acceleration_available());
    return out;
}

// Hands freed heap pages back to the OS (glibc keeps them otherwise: after a
// snapshot or an open, tens of MB of freed chunks stayed resident). False
// where there is no malloc_trim (musl, macOS, Windows): nothing to do there.
Napi::Value TrimMemory(Napi::CallbackInfo const& info) {
#if defined(__GLIBC__)
    return Napi::Boolean::New(info.Env(), malloc_trim(0) != 0);
#else
    return Napi::Boolean::New(info.Env(), false);
#endif
}

// tuneAllocator(mmapThreshold, trimThreshold, topPad) → whether glibc took
// all three: fixed malloc thresholds for the whole process (mallopt).
// glibc's defaults adapt: freeing a large mapped block raises the mmap
// threshold to its size (up to 32 MiB) and the trim threshold to twice that,
// so after a bulk load's multi-MB buffers (LevelDB's batches and memtables,
// snapshot groups) came and went, the freed tops of the main heap and of the
// pool threads' arenas stayed resident; malloc_trim does not shrink a thread
// arena's top. util/memory.ts holds the values, the measurements and when.
Napi::Value TuneAllocator(Napi::CallbackInfo const& info) {
#if defined(__GLIBC__)
    bool ok = mallopt(M_MMAP_THRESHOLD, info[0].As<Napi::Number>().Int32Value()) == 1;
    ok = mallopt(M_TRIM_THRESHOLD, info[1].As<Napi::Number>().Int32Value()) == 1 && ok;
    ok = mallopt(M_TOP_PAD, info[2].As<Napi::Number>().Int32Value()) == 1 && ok;
    return Napi::Boolean::New(info.Env(), ok);
#else
    return Napi::Boolean::New(info.Env(), false);
#endif
}

// trimMemoryAsync() → Promise<boolean>: malloc_trim on a pool thread. It
// walks every arena and returns their free pages, which took 5–19 ms on the
// main thread during a 1M build (bench/stalls.ts); glibc locks each arena
// while it trims it, so other threads' allocations wait at most that long.
class TrimMemoryTask : public vecvault::PromiseTask {
  public:
    explicit TrimMemoryTask(Napi::Env env) : vecvault::PromiseTask(env, "vecvault.trimMemory") {}

  protected:
    void Execute() override {
#if defined(__GLIBC__)
        trimmed_ = malloc_trim(0) != 0;
#endif
    }
    void Settle(Napi::Env env) override { deferred_.Resolve(Napi::Boolean::New(env, trimmed_)); }

  private:
    bool trimmed_ = false;
};

Napi::Value TrimMemoryAsync(Napi::CallbackInfo const& info) {
    return vecvault::queue_task<TrimMemoryTask>(info.Env());
}

// memoryPressure(level) → whether V8 heard it: v8::Isolate::
// MemoryPressureNotification, 1 = moderate (V8 starts an incremental,
// memory-reducing mark-compact: no long pause), 2 = critical (one such GC at
// once, blocking). A memory-reducing GC shrinks the young generation that a
// burst of allocation grew (2 × 16 MiB semi-spaces after a large upsert,
// ~23 MiB resident, which a plain GC, even `global.gc()`, keeps) and frees
// dead ArrayBuffers' backing stores, which a malloc_trim after it returns.
// Node-API has no such call, and including v8.h would tie the addon to one
// Node ABI (prebuilds are Node-API, loaded by every Node version), so the two
// functions are looked up by their Itanium-mangled names (exported by Node
// binaries) and called with the isolate as `this`; absent, nothing runs.
Napi::Value MemoryPressure(Napi::CallbackInfo const& info) {
#if (defined(__linux__) || defined(__APPLE__)) && (defined(__x86_64__) || defined(__aarch64__))
    using GetCurrent = void* (*)();
    using Notify = void (*)(void*, int);  // v8::MemoryPressureLevel is an enum class over int
    static auto const get_current = reinterpret_cast<GetCurrent>(dlsym(RTLD_DEFAULT, "_ZN2v87Isolate10GetCurrentEv"));
    static auto const notify = reinterpret_cast<Notify>(dlsym(RTLD_DEFAULT, "_ZN2v87Isolate26MemoryPressureNotificationENS_19MemoryPressureLevelE"));
    int level = info[0].As<Napi::Number>().Int32Value();
    if (get_current != nullptr && notify != nullptr && (level == 1 || level == 2)) {
        if (void* isolate = get_current()) {
            notify(isolate, level);  // critical runs its GC now and resets the level; moderate resets it when marking starts
            return Napi::Boolean::New(info.Env(), true);
        }
    }
#endif
    return Napi::Boolean::New(info.Env(), false);
}

// releaseMappedPages(dir) → bytes: drops this process's resident pages of the
// shared, read-only file mappings under `dir` (LevelDB reads its table files
// through mmap, so every snapshot chunk or record it read stays counted in
// the process's RSS while the table is open: +1 copy of the snapshot after an
// open). MADV_DONTNEED on a shared file mapping only unmaps the pages: the
// data stays in the OS page cache and a later read faults it back in, so
// LevelDB's view never changes. Linux only (0 elsewhere).
//
// The danger is a range that LevelDB unmapped (a table evicted or deleted by
// a compaction on its own thread) and something private mapped again at the
// same address after /proc/self/maps was read: MADV_DONTNEED would zero that
// memory. So each range is asked about again right before its madvise with
// PROCMAP_QUERY (Linux 6.11+; one ioctl, no text to parse) and skipped unless
// the same shared, read-only, file-backed mapping still spans it exactly. That
// leaves the gap between two syscalls, not the time to read and parse the
// whole maps file. Kernels without the ioctl release nothing: safe, not lean.
#if defined(__linux__)
// The ioctl's ABI (include/uapi/linux/fs.h, Linux 6.11), declared here since
// older system headers lack it.
struct ProcmapQuery {
    std::uint64_t size, query_flags, query_addr;
    std::uint64_t vma_start, vma_end, vma_flags, vma_page_size, vma_offset, inode;
    std::uint32_t dev_major, dev_minor, vma_name_size, build_id_size;
    std::uint64_t vma_name_addr, build_id_addr;
};
constexpr unsigned long procmap_query_ioctl = _IOWR('f', 17, ProcmapQuery);
constexpr std::uint64_t vma_readable = 0x01, vma_writable = 0x02, vma_shared = 0x08, vma_file_backed = 0x20;

// Whether [start, end) is still exactly one shared, read-only mapping of a file.
bool StillSharedFileMapping(int maps_fd, unsigned long start, unsigned long end) {
    ProcmapQuery query{};
    query.size = sizeof(query);
    query.query_addr = start;
    query.query_flags = vma_file_backed; // only a file-backed mapping that covers `start`
    if (ioctl(maps_fd, procmap_query_ioctl, &query) != 0)
        return false;
    return query.vma_start == start && query.vma_end == end && (query.vma_flags & vma_shared) &&
           (query.vma_flags & vma_readable) && !(query.vma_flags & vma_writable);
}
#endif

// The bytes released; the work of releaseMappedPages, on whichever thread calls it.
double ReleaseMappedPagesUnder(std::string dir) {
    double released = 0;
#if defined(__linux__)
    if (dir.empty() || dir.back() != '/')
        dir += '/';
    int maps_fd = open("/proc/self/maps", O_RDONLY | O_CLOEXEC);
    if (maps_fd < 0)
        return 0;
    if (FILE* maps = std::fopen("/proc/self/maps", "r")) {
        char line[4096 + 256];
        while (std::fgets(line, sizeof(line), maps)) {
            unsigned long start = 0, end = 0;
            char perms[8] = {0};
            int path_at = 0;
            if (std::sscanf(line, "%lx-%lx %7s %*s %*s %*s %n", &start, &end, perms, &path_at) < 3 || path_at == 0)
                continue;
            std::string path(line + path_at);
            while (!path.empty() && (path.back() == '\n' || path.back() == ' '))
                path.pop_back();
            // Shared and not writable: LevelDB's read-only table mappings, nothing else.
            if (perms[1] != '-' || perms[3] != 's' || path.compare(0, dir.size(), dir) != 0)
                continue;
            if (StillSharedFileMapping(maps_fd, start, end) &&
                madvise(reinterpret_cast<void*>(start), end - start, MADV_DONTNEED) == 0)
                released += static_cast<double>(end - start);
        }
        std::fclose(maps);
    }
    close(maps_fd);
#endif
    return released;
}

Napi::Value ReleaseMappedPages(Napi::CallbackInfo const& info) {
    return Napi::Number::New(info.Env(), ReleaseMappedPagesUnder(info[0].As<Napi::String>().Utf8Value()));
}

// Resident shared (file-backed) bytes of this process, from /proc/self/statm; -1 where there is none.
double ResidentSharedBytes() {
#if defined(__linux__)
    if (FILE* statm = std::fopen("/proc/self/statm", "r")) {
        unsigned long size = 0, resident = 0, shared = 0;
        int read = std::fscanf(statm, "%lu %lu %lu", &size, &resident, &shared);
        std::fclose(statm);
        if (read == 3)
            return static_cast<double>(shared) * static_cast<double>(sysconf(_SC_PAGESIZE));
    }
#endif
    return -1;
}

// releaseMappedPagesAsync(dir, minShared = 0) → Promise<{ ran, released, shared }>: the same on a pool thread,
// run only when the process's resident shared bytes are at least `minShared` (or cannot be read). `shared` is
// that figure after the release (or at the check, when skipped). Reading /proc/self/maps (and statm) and the
// madvise calls wait on the process's mmap lock, which LevelDB's compactions and the engine's allocations take
// too: one release took 57 ms of wall time on the main thread at 1M, and a statm read there 0.1–7 ms during an
// open's stream.
class ReleaseMappedPagesTask : public vecvault::PromiseTask {
  public:
    ReleaseMappedPagesTask(Napi::Env env, std::string dir, double min_shared)
        : vecvault::PromiseTask(env, "vecvault.releaseMappedPages"), dir_(std::move(dir)), min_shared_(min_shared) {}

  protected:
    void Execute() override {
        shared_ = ResidentSharedBytes();
        if (shared_ >= 0 && shared_ < min_shared_)
            return;
        ran_ = true;
        // On the niced shadow thread, as graph work: a 42 ms release at nice 0 beside LevelDB's compaction thread
        // left the JS thread 47 ms on the run queue in a 1M build (bench/stalls.ts).
        vecvault::NicedThread::run([this] {
            try {
                released_ = ReleaseMappedPagesUnder(dir_);
            } catch (...) { // bodies must not throw on the shadow (bad_alloc in a path string): nothing released
                released_ = 0;
            }
        });
        shared_ = ResidentSharedBytes();
    }
    void Settle(Napi::Env env) override {
        auto out = Napi::Object::New(env);
        out.Set("ran", ran_);
        out.Set("released", released_);
        out.Set("shared", shared_);
        deferred_.Resolve(out);
    }

  private:
    std::string dir_;
    double min_shared_ = 0;
    bool ran_ = false;
    double released_ = 0;
    double shared_ = -1;
};

Napi::Value ReleaseMappedPagesAsync(Napi::CallbackInfo const& info) {
    double min_shared = info.Length() > 1 && info[1].IsNumber() ? info[1].As<Napi::Number>().DoubleValue() : 0;
    return vecvault::queue_task<ReleaseMappedPagesTask>(info.Env(), info[0].As<Napi::String>().Utf8Value(), min_shared);
}

// hugePageArenas() → how many of usearch's arenas were mapped on a 2 MiB
// boundary and accepted MADV_HUGEPAGE (engine/usearch.h); 0 where the kernel
// has no transparent huge pages or VECVAULT_HUGE_PAGES=0.
Napi::Value HugePageArenas(Napi::CallbackInfo const& info) {
    return Napi::Number::New(info.Env(), double(__atomic_load_n(&vecvault_arena::advised_arenas, __ATOMIC_RELAXED)));
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
    exports.Set("NativeIndex", NativeIndex::Define(env));
    exports.Set("crypto", vecvault_crypto::Define(env));
    exports.Set("tables", vecvault_tables::Define(env));
    exports.Set("simdInfo", Napi::Function::New(env, SimdInfo));
    exports.Set("trimMemory", Napi::Function::New(env, TrimMemory));
    exports.Set("trimMemoryAsync", Napi::Function::New(env, TrimMemoryAsync));
    exports.Set("tuneAllocator", Napi::Function::New(env, TuneAllocator));
    exports.Set("memoryPressure", Napi::Function::New(env, MemoryPressure));
    exports.Set("releaseMappedPages", Napi::Function::New(env, ReleaseMappedPages));
    exports.Set("releaseMappedPagesAsync", Napi::Function::New(env, ReleaseMappedPagesAsync));
    exports.Set("gcYieldStats", Napi::Function::New(env, GcYieldStats));
    exports.Set("setGcYield", Napi::Function::New(env, SetGcYield));
    exports.Set("gcPauseForTesting", Napi::Function::New(env, GcPauseForTesting));
    exports.Set("hugePageArenas", Napi::Function::New(env, HugePageArenas));
    HookGcPauses(env);
    exports.Set("usearchVersion", Napi::String::New(env, std::to_string(USEARCH_VERSION_MAJOR) + "." +
                                                             std::to_string(USEARCH_VERSION_MINOR) + "." +
                                                             std::to_string(USEARCH_VERSION_PATCH)));
    return exports;
}

} // namespace

NODE_API_MODULE(vecvault_native, Init)
