// usearch's headers, with one opt-in change to where its graph memory comes
// from. With VECVAULT_HUGE_PAGES=1 the arenas that hold the nodes and the
// vectors (usearch's page_allocator_t: 8 MiB, then doubling, each one
// anonymous mmap) from the second on start on a 2 MiB boundary and are marked
// MADV_HUGEPAGE, so a kernel whose transparent huge pages are in `madvise`
// mode (the usual default) backs them with 2 MiB pages: far fewer TLB misses
// in a search's random walk. Off by default: on the 2-core VMs we measure on,
// a fresh huge page costs far more to fault in than its 512 small pages (at
// 200k × 96 the load's CPU doubled, 156 -> 306 ms, for +17-20 % QPS; see
// docs/performance.md, "Huge pages for the graph"). Where the kernel has no
// huge pages the madvise fails and nothing else changes.
//
// The mmap calls inside usearch's headers are routed here by a macro around
// their inclusion (this file is included first, before any other file can
// include usearch): usearch frees an arena with munmap(pointer, bytes), and
// the mapping returned here is exactly that range.
#pragma once

#include <sys/mman.h>
#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>

namespace vecvault_arena {

constexpr std::size_t huge_page_bytes = std::size_t(2) << 20;
/// usearch's first arena per allocator (8 MiB: its 4 MiB minimum, doubled)
/// keeps 4 KiB pages: a small index would otherwise pay a whole 2 MiB page per
/// allocator for a few kilobytes of graph.
constexpr std::size_t min_advised_bytes = std::size_t(16) << 20;

inline bool huge_pages_wanted() {
    static bool const wanted = [] {
        char const* setting = std::getenv("VECVAULT_HUGE_PAGES");
        return setting && setting[0] == '1' && setting[1] == '\0';
    }();
    return wanted;
}

/// Arenas mapped and advised so far (for tests and benches: `hugePageArenas()`).
inline std::size_t advised_arenas = 0;

inline void* map(void* address, std::size_t bytes, int protection, int flags, int descriptor, off_t offset) {
    bool arena = address == nullptr && descriptor == -1 && (flags & MAP_ANONYMOUS) && (flags & MAP_PRIVATE);
    if (!arena || bytes < min_advised_bytes || !huge_pages_wanted())
        return ::mmap(address, bytes, protection, flags, descriptor, offset);
    // One huge page more than asked, then the unaligned ends cut off: the kernel
    // backs only 2 MiB-aligned extents of a mapping with huge pages.
    std::size_t padded = bytes + huge_page_bytes;
    void* mapped = ::mmap(nullptr, padded, protection, flags, -1, 0);
    if (mapped == MAP_FAILED)
        return ::mmap(address, bytes, protection, flags, descriptor, offset);
    auto start = reinterpret_cast<std::uintptr_t>(mapped);
    auto aligned = (start + huge_page_bytes - 1) & ~(huge_page_bytes - 1);
    auto end = aligned + ((bytes + 4095) & ~std::size_t(4095));
    if (aligned > start)
        ::munmap(mapped, aligned - start);
    if (start + padded > end)
        ::munmap(reinterpret_cast<void*>(end), start + padded - end);
    if (::madvise(reinterpret_cast<void*>(aligned), bytes, MADV_HUGEPAGE) == 0)
        __atomic_add_fetch(&advised_arenas, 1, __ATOMIC_RELAXED);
    return reinterpret_cast<void*>(aligned);
}

} // namespace vecvault_arena

#define mmap ::vecvault_arena::map
#include <usearch/index_dense.hpp>
#undef mmap
