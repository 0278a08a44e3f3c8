// Parses and checks untrusted serialized index bytes (decrypted snapshot
// chunks) before usearch's trusting loader sees them, plus the chunked Reader
// that the check and the load share. Kept apart as the one place that reads
// attacker-shaped input, so a fuzz harness can drive validate_bytes alone.
#pragma once

#include "core.h"

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

namespace {

// usearch buffers carry no checksum and its loader trusts them; a bad slot
// id or level later crashes a search. So every structural field is checked
// here before usearch sees the bytes (the caller has authenticated them, but
// a wrong or truncated buffer must fail cleanly).

using Part = std::pair<std::uint8_t const*, std::size_t>;

// Reads a byte stream held in consecutive parts (the decrypted snapshot
// chunks), so loading never needs them joined into one copy first.
class Reader {
  public:
    explicit Reader(std::vector<Part> const& parts) : parts_(parts) {
        for (auto const& part : parts)
            length_ += part.second;
    }
    bool read(void* out, std::size_t n) {
        if (n > remaining())
            return false;
        auto* to = static_cast<std::uint8_t*>(out);
        while (n != 0) {
            std::size_t take = std::min(n, parts_[part_].second - in_part_);
            std::memcpy(to, parts_[part_].first + in_part_, take);
            to += take;
            n -= take;
            advance(take);
        }
        return true;
    }
    bool skip(std::size_t n) {
        if (n > remaining())
            return false;
        while (n != 0) {
            std::size_t take = std::min(n, parts_[part_].second - in_part_);
            n -= take;
            advance(take);
        }
        return true;
    }
    std::size_t remaining() const { return length_ - offset_; }

  private:
    void advance(std::size_t n) {
        offset_ += n;
        in_part_ += n;
        while (part_ < parts_.size() && in_part_ == parts_[part_].second) {
            ++part_;
            in_part_ = 0;
        }
    }
    std::vector<Part> const& parts_;
    std::size_t length_ = 0;
    std::size_t offset_ = 0;
    std::size_t part_ = 0;
    std::size_t in_part_ = 0;
};

using level_t = std::int16_t;
using slot_t = std::uint32_t;
constexpr std::size_t max_levels = 64;

std::string check_dense_head(Reader& r, Config const& c, std::uint64_t rows, std::uint64_t& deleted) {
    index_dense_head_buffer_t buffer;
    if (!r.read(buffer, sizeof(buffer)))
        return "truncated: missing the index header";
    index_dense_head_t head{buffer};
    if (std::memcmp(buffer, default_magic(), std::strlen(default_magic())) != 0)
        return "not a usearch index (magic mismatch)";
    if (head.version_major != USEARCH_VERSION_MAJOR)
        return "usearch format version mismatch";
    if (head.kind_metric != c.metric)
        return "metric in the bytes does not match the options";
    if (head.kind_scalar != c.scalar)
        return "precision in the bytes does not match the options";
    if (head.kind_key != scalar_kind_t::u64_k || head.kind_compressed_slot != scalar_kind_t::u32_k)
        return "key or slot type mismatch";
    if (static_cast<std::uint64_t>(head.dimensions) != c.dimensions)
        return "dimension in the bytes does not match the options";
    if (head.multi)
        return "multi-vector indexes are not supported";
    std::uint64_t present = head.count_present;
    deleted = head.count_deleted;
    if (present > rows || deleted != rows - present)
        return "header counts do not match the number of vectors";
    return {};
}

struct GraphHead {
    std::uint64_t size, connectivity, connectivity_base, max_level, entry_slot;
};

std::string check_graph_head(GraphHead const& g, std::uint64_t rows, Config const& c) {
    if (g.size != rows)
        return "graph size does not match the number of vectors";
    if (g.connectivity != c.connectivity)
        return "connectivity in the bytes does not match the options";
    if (g.connectivity < 2 || g.connectivity > 4096 || g.connectivity_base < g.connectivity ||
        g.connectivity_base > 8192)
        return "implausible graph connectivity";
    if (g.size && (g.max_level >= max_levels || g.entry_slot >= g.size))
        return "implausible graph entry point";
    return {};
}

std::string check_node(std::uint8_t const* node, std::size_t slot, std::vector<level_t> const& levels,
                       GraphHead const& g, std::uint64_t& free_nodes) {
    key_t key;
    level_t level;
    std::memcpy(&key, node, sizeof(key));
    std::memcpy(&level, node + sizeof(key), sizeof(level));
    if (level != levels[slot])
        return "node level disagrees with the level table";
    if (key == default_free_value<key_t>())
        ++free_nodes;
    std::uint8_t const* block = node + sizeof(key) + sizeof(level);
    for (level_t l = 0; l <= level; ++l) {
        std::uint32_t count;
        std::memcpy(&count, block, sizeof(count));
        std::size_t room = l == 0 ? g.connectivity_base : g.connectivity;
        if (count > room)
            return "neighbour list longer than the connectivity";
        for (std::uint32_t i = 0; i != count; ++i) {
            slot_t neighbour;
            std::memcpy(&neighbour, block + sizeof(count) + i * sizeof(slot_t), sizeof(neighbour));
            // A neighbour linked at level l must itself reach level l, or a
            // search would read past the end of its node.
            if (neighbour >= g.size || levels[neighbour] < l)
                return "neighbour slot out of range";
        }
        block += sizeof(count) + room * sizeof(slot_t);
    }
    return {};
}

std::string validate_bytes(std::vector<Part> const& parts, Config const& c) {
    Reader r(parts);
    std::uint32_t matrix[2];
    if (!r.read(matrix, sizeof(matrix)))
        return "truncated: missing the vector matrix header";
    std::uint64_t rows = matrix[0], cols = matrix[1];
    if (cols != make_metric(c).bytes_per_vector())
        return "vector width in the bytes does not match the options";
    if (rows > r.remaining() / (cols ? cols : 1) || !r.skip(rows * cols))
        return "truncated: vectors missing";
    std::uint64_t deleted = 0;
    std::string error = check_dense_head(r, c, rows, deleted);
    if (!error.empty())
        return error;
    GraphHead g;
    if (!r.read(&g, sizeof(g)))
        return "truncated: missing the graph header";
    error = check_graph_head(g, rows, c);
    if (!error.empty())
        return error;
    if (g.size > r.remaining() / sizeof(level_t))
        return "truncated: level table missing";
    std::vector<level_t> levels(g.size);
    r.read(levels.data(), g.size * sizeof(level_t));
    std::size_t base_bytes = sizeof(std::uint32_t) + g.connectivity_base * sizeof(slot_t);
    std::size_t upper_bytes = sizeof(std::uint32_t) + g.connectivity * sizeof(slot_t);
    bool entry_on_top = g.size == 0;
    for (std::size_t i = 0; i != g.size; ++i) {
        if (levels[i] < 0 || static_cast<std::uint64_t>(levels[i]) > g.max_level)
            return "node level out of range";
        if (i == g.entry_slot)
            entry_on_top = static_cast<std::uint64_t>(levels[i]) == g.max_level;
    }
    if (!entry_on_top)
        return "graph entry point is not on the top level";
    std::uint64_t free_nodes = 0;
    std::vector<std::uint8_t> node;  // one node at a time: it may straddle two parts
    for (std::size_t i = 0; i != g.size; ++i) {
        std::size_t node_bytes = sizeof(key_t) + sizeof(level_t) + base_bytes + upper_bytes * levels[i];
        node.resize(node_bytes);
        if (!r.read(node.data(), node_bytes))
            return "truncated: graph nodes missing";
        error = check_node(node.data(), i, levels, g, free_nodes);
        if (!error.empty())
            return error;
    }
    if (free_nodes != deleted)
        return "deleted-node count does not match the header";
    if (r.remaining() != 0)
        return "trailing bytes after the index";
    return {};
}

} // namespace
