// Parses and checks untrusted serialized index bytes (decrypted snapshot
// chunks) before usearch's trusting loader sees them, plus the chunked Reader
// that the check and the load share. Kept apart as the one place that reads
// attacker-shaped input, so a fuzz harness can drive validate_bytes alone.
#pragma once

#include "core.h"
#include "../key-digest.h"

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

std::string check_dense_head(std::uint8_t const* buffer_bytes, Config const& c, std::uint64_t rows, std::uint64_t& deleted) {
    index_dense_head_buffer_t buffer;
    std::memcpy(buffer, buffer_bytes, sizeof(buffer));
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
                       GraphHead const& g, std::uint64_t& free_nodes, KeyDigest* keys) {
    key_t key;
    level_t level;
    std::memcpy(&key, node, sizeof(key));
    std::memcpy(&level, node + sizeof(key), sizeof(level));
    if (level != levels[slot])
        return "node level disagrees with the level table";
    if (key == default_free_value<key_t>())
        ++free_nodes;
    else if (keys)
        keys->add(key);
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

// Checks the serialized index as it streams past, in the order usearch's
// loader reads it (vector matrix, dense header, graph header, level table,
// nodes): each unit is checked as soon as its last byte is fed, so when the
// loader pulls its input through `feed` (LoadStreamWorker) no unit reaches
// usearch before it passed. `bound` is an upper bound on the total length:
// counts that could not fit are refused before anything is sized by them.
class StreamValidator {
  public:
    StreamValidator(Config const& c, std::uint64_t bound) : config_(c), bound_(bound) { expect(Stage::matrix, sizeof(std::uint32_t) * 2); }

    // Feeds the next bytes; false once they are invalid (see error()).
    bool feed(std::uint8_t const* p, std::size_t n) {
        if (!error_.empty())
            return false;
        offset_ += n;
        while (n != 0) {
            if (stage_ == Stage::done)
                return fail("trailing bytes after the index");
            std::size_t take = static_cast<std::size_t>(std::min<std::uint64_t>(n, need_ - have_));
            if (stage_ != Stage::vectors)
                std::memcpy(unit_.data() + have_, p, take);
            have_ += take;
            p += take;
            n -= take;
            if (have_ == need_ && !complete())
                return false;
        }
        return true;
    }
    // After the last byte: the stream must end exactly where the index does.
    bool finish() {
        if (!error_.empty())
            return false;
        switch (stage_) {
        case Stage::matrix: return fail("truncated: missing the vector matrix header");
        case Stage::vectors: return fail("truncated: vectors missing");
        case Stage::dense_head: return fail("truncated: missing the index header");
        case Stage::graph_head: return fail("truncated: missing the graph header");
        case Stage::levels: return fail("truncated: level table missing");
        case Stage::nodes: return fail("truncated: graph nodes missing");
        case Stage::done: break;
        }
        if (free_nodes_ != deleted_)
            return fail("deleted-node count does not match the header");
        return true;
    }
    std::string const& error() const { return error_; }
    // Digests the key of every live node as it passes (deleted slots excluded): see key-digest.h.
    void digest_keys(KeyDigest* keys) { keys_ = keys; }

  private:
    enum class Stage { matrix, vectors, dense_head, graph_head, levels, nodes, done };

    bool fail(std::string message) {
        error_ = std::move(message);
        return false;
    }
    void expect(Stage stage, std::uint64_t bytes) {
        stage_ = stage;
        need_ = bytes;
        have_ = 0;
        if (stage != Stage::vectors && stage != Stage::done)
            unit_.resize(static_cast<std::size_t>(bytes));
    }
    std::size_t node_bytes(std::size_t slot) const {
        std::size_t base = sizeof(std::uint32_t) + g_.connectivity_base * sizeof(slot_t);
        std::size_t upper = sizeof(std::uint32_t) + g_.connectivity * sizeof(slot_t);
        return sizeof(key_t) + sizeof(level_t) + base + upper * static_cast<std::size_t>(levels_[slot]);
    }
    // The unit just filled is whole: check it and say what comes next (skipping empty units).
    bool complete() {
        switch (stage_) {
        case Stage::matrix: {
            std::uint32_t matrix[2];
            std::memcpy(matrix, unit_.data(), sizeof(matrix));
            rows_ = matrix[0];
            std::uint64_t cols = matrix[1];
            if (cols != make_metric(config_).bytes_per_vector())
                return fail("vector width in the bytes does not match the options");
            if (rows_ > bound_ / (cols ? cols : 1))
                return fail("truncated: vectors missing");
            expect(Stage::vectors, rows_ * cols);
            if (need_ == 0)
                return complete();
            return true;
        }
        case Stage::vectors:
            expect(Stage::dense_head, sizeof(index_dense_head_buffer_t));
            return true;
        case Stage::dense_head: {
            std::string error = check_dense_head(unit_.data(), config_, rows_, deleted_);
            if (!error.empty())
                return fail(error);
            expect(Stage::graph_head, sizeof(GraphHead));
            return true;
        }
        case Stage::graph_head: {
            std::memcpy(&g_, unit_.data(), sizeof(g_));
            std::string error = check_graph_head(g_, rows_, config_);
            if (!error.empty())
                return fail(error);
            if (g_.size > bound_ / sizeof(level_t))
                return fail("truncated: level table missing");
            // usearch reads no level table for an empty graph.
            if (g_.size == 0) {
                expect(Stage::done, 0);
                return true;
            }
            expect(Stage::levels, g_.size * sizeof(level_t));
            return true;
        }
        case Stage::levels: {
            levels_.resize(static_cast<std::size_t>(g_.size));
            std::memcpy(levels_.data(), unit_.data(), unit_.size());
            bool entry_on_top = false;
            for (std::size_t i = 0; i != levels_.size(); ++i) {
                if (levels_[i] < 0 || static_cast<std::uint64_t>(levels_[i]) > g_.max_level)
                    return fail("node level out of range");
                if (i == g_.entry_slot)
                    entry_on_top = static_cast<std::uint64_t>(levels_[i]) == g_.max_level;
            }
            if (!entry_on_top)
                return fail("graph entry point is not on the top level");
            node_ = 0;
            expect(Stage::nodes, node_bytes(0));
            return true;
        }
        case Stage::nodes: {
            std::string error = check_node(unit_.data(), node_, levels_, g_, free_nodes_, keys_);
            if (!error.empty())
                return fail(error);
            if (++node_ == g_.size)
                expect(Stage::done, 0);
            else
                expect(Stage::nodes, node_bytes(node_));
            return true;
        }
        case Stage::done: break;
        }
        return fail("trailing bytes after the index");
    }

    Config config_;
    std::uint64_t bound_;
    Stage stage_ = Stage::matrix;
    std::uint64_t need_ = 0, have_ = 0, offset_ = 0;
    std::vector<std::uint8_t> unit_; // the unit being filled (not the vectors: they are only counted)
    std::uint64_t rows_ = 0, deleted_ = 0, free_nodes_ = 0;
    GraphHead g_{};
    std::vector<level_t> levels_;
    std::size_t node_ = 0;
    std::string error_;
    KeyDigest* keys_ = nullptr;
};

// Validates whole serialized bytes held in parts (one pass of the streaming check).
std::string validate_bytes(std::vector<Part> const& parts, Config const& c) {
    std::uint64_t total = 0;
    for (auto const& part : parts)
        total += part.second;
    StreamValidator v(c, total);
    for (auto const& part : parts)
        if (!v.feed(part.first, part.second))
            return v.error();
    v.finish();
    return v.error();
}

} // namespace
