// Bulk fills of the live table's two hash tables (src/core/live-table.ts):
// id → row and engine key → row, open addressing with linear probing, a row
// stored as row + 1 (0 empty, -1 a tombstone). An open restores a snapshot's
// table by inserting every row into both; in JS that cost 30–55 ms of CPU at
// 200k rows in a fresh process (interpreted, then compiled on the way) and
// ~280 ms at 1M, on the main thread while the graph loads; here 3 ms at 200k
// keys and 18 ms at 1M (fill_rows). The hashes are exactly live-table.ts's
// `hashKey` and id-bytes.ts's `hashIdBytes` (tests fill the same rows both
// ways and compare the tables).
//
// Synchronous on purpose: JS calls these a slice of rows at a time between
// event-loop turns, and only into a table sized so that no rebuild is due.

#include <napi.h>

#include <algorithm>
#include <cstdint>
#include <initializer_list>
#include <utility>

namespace vecvault_tables {
namespace {

constexpr std::uint32_t fnv_offset = 0x811c9dc5u;
constexpr std::uint32_t fnv_prime = 0x01000193u;
constexpr std::size_t prefetch_rows = 16;

// live-table.ts hashKey: both 32-bit halves of an integer key below 2^53, xored, multiplied, folded.
inline std::uint32_t hash_key(double key) {
    auto const k = static_cast<std::uint64_t>(key);
    std::uint32_t hash = (static_cast<std::uint32_t>(k) ^ static_cast<std::uint32_t>(k >> 32)) * 0x9e3779b1u;
    return hash ^ (hash >> 16);
}

// id-bytes.ts hashIdBytes: FNV-1a over the UTF-16 units that bytes[from, to) decode to. A byte past the
// arena reads as 0, as an out-of-range index does in JS (the ids were validated before they were stored);
// `to` never passes the arena (checked by the caller; the loop stops there anyway).
inline std::uint32_t hash_id_bytes(std::uint8_t const* bytes, std::size_t length, std::size_t from, std::size_t to) {
    auto at = [&](std::size_t i) -> std::uint32_t { return i < length ? bytes[i] : 0; };
    std::uint32_t hash = fnv_offset;
    for (std::size_t i = from; i < to && i < length;) {
        std::uint32_t const b = bytes[i];
        std::uint32_t unit;
        if (b < 0x80) {
            hash = (hash ^ b) * fnv_prime;
            i++;
            continue;
        }
        if (b < 0xe0) {
            unit = ((b & 0x1f) << 6) | (at(i + 1) & 0x3f);
            i += 2;
        } else if (b < 0xf0) {
            unit = ((b & 0x0f) << 12) | ((at(i + 1) & 0x3f) << 6) | (at(i + 2) & 0x3f);
            i += 3;
        } else {
            // Astral: two UTF-16 units, high surrogate first. JS computes the point in int32 arithmetic; a byte
            // that is not a valid lead gives a point above 0x10FFFF, whose units still match bit for bit here.
            std::int32_t const point = static_cast<std::int32_t>(((b & 0x07) << 18) | ((at(i + 1) & 0x3f) << 12) |
                                                                 ((at(i + 2) & 0x3f) << 6) | (at(i + 3) & 0x3f)) -
                                       0x10000;
            hash = (hash ^ static_cast<std::uint32_t>(0xd800 + (point >> 10))) * fnv_prime;
            unit = 0xdc00 + static_cast<std::uint32_t>(point & 0x3ff);
            i += 4;
        }
        hash = (hash ^ unit) * fnv_prime;
    }
    return hash ^ (hash >> 15);
}

// A hint to fetch the cache line at `p` for writing: GCC and Clang only (MSVC, which builds this addon from
// source on Windows, has no __builtin_prefetch; the fills are the same without it, only slower).
inline void prefetch_for_write(void const* p) {
#if defined(__GNUC__) || defined(__clang__)
    __builtin_prefetch(p, 1);
#else
    (void)p;
#endif
}

// Puts `row` in the first slot from `hash` holding no row; returns whether that slot was empty (not a tombstone).
// A table with no free slot left is a caller's bug: it throws rather than spin.
inline bool probe_insert(Napi::Env env, std::int32_t* slots, std::size_t mask, std::uint32_t hash, std::int32_t row) {
    std::size_t slot = hash & mask;
    for (std::size_t probes = 0; slots[slot] > 0; ++probes) {
        if (probes > mask)
            throw Napi::RangeError::New(env, "the slots are full");
        slot = (slot + 1) & mask;
    }
    bool const fresh = slots[slot] == 0;
    slots[slot] = row + 1;
    return fresh;
}

// Inserts rows [from, to) under hash_of(row), each called once, in row order; returns how many empty slots they took.
// The slots a few rows ahead are fetched while one is inserted: past a few hundred thousand rows the table
// (MiBs) misses the cache on almost every insert (200k keys: 4.5 → 3.0 ms, 1M: 23 → 18 ms).
template <typename HashOf>
double fill_rows(Napi::Env env, Napi::Int32Array slots, std::size_t from, std::size_t to, HashOf hash_of) {
    std::int32_t* table = slots.Data();
    std::size_t const mask = slots.ElementLength() - 1;
    std::uint32_t ahead[prefetch_rows];
    double fresh = 0;
    for (std::size_t block = from; block < to; block += prefetch_rows) {
        std::size_t const count = std::min(prefetch_rows, to - block);
        for (std::size_t j = 0; j != count; ++j) {
            ahead[j] = hash_of(block + j);
            prefetch_for_write(table + (ahead[j] & mask));
        }
        for (std::size_t j = 0; j != count; ++j)
            fresh += probe_insert(env, table, mask, ahead[j], static_cast<std::int32_t>(block + j));
    }
    return fresh;
}

template <typename Array>
Array typed(Napi::Env env, Napi::Value value, napi_typedarray_type type, char const* what) {
    if (!value.IsTypedArray() || value.As<Napi::TypedArray>().TypedArrayType() != type)
        throw Napi::TypeError::New(env, what);
    return value.As<Array>();
}

Napi::Int32Array slots_arg(Napi::Env env, Napi::Value value) {
    auto slots = typed<Napi::Int32Array>(env, value, napi_int32_array, "slots must be an Int32Array");
    std::size_t const n = slots.ElementLength();
    if (n == 0 || (n & (n - 1)) != 0)
        throw Napi::RangeError::New(env, "slots must have a power-of-two length");
    return slots;
}

// Whether two typed arrays share any byte: a table written while a column it was checked against is read
// through another view of the same memory could change that column after its check (a JS caller could pass
// such views; LiveTable never does).
std::pair<std::uintptr_t, std::size_t> bytes_of(Napi::Env env, Napi::TypedArray array) {
    void* data = nullptr;
    std::size_t length = 0;
    napi_status status = napi_get_typedarray_info(env, array, nullptr, &length, &data, nullptr, nullptr);
    NAPI_THROW_IF_FAILED(env, status, std::make_pair(std::uintptr_t(0), std::size_t(0)));
    return {reinterpret_cast<std::uintptr_t>(data), length * array.ElementSize()};
}

bool overlaps(Napi::Env env, Napi::TypedArray a, Napi::TypedArray b) {
    auto const [a0, an] = bytes_of(env, a);
    auto const [b0, bn] = bytes_of(env, b);
    return an != 0 && bn != 0 && a0 < b0 + bn && b0 < a0 + an;
}

void distinct(Napi::Env env, std::initializer_list<std::pair<Napi::TypedArray, Napi::TypedArray>> pairs) {
    for (auto const& [a, b] : pairs) {
        if (overlaps(env, a, b))
            throw Napi::RangeError::New(env, "the tables written must not share memory with the columns read");
    }
}

// [from, to) as row numbers that fit in an int32 slot value, within `limit` rows.
void range_arg(Napi::CallbackInfo const& info, std::size_t at, std::size_t limit, std::size_t& from, std::size_t& to) {
    Napi::Env env = info.Env();
    if (!info[at].IsNumber() || !info[at + 1].IsNumber())
        throw Napi::TypeError::New(env, "from and to must be numbers");
    double const a = info[at].As<Napi::Number>().DoubleValue();
    double const b = info[at + 1].As<Napi::Number>().DoubleValue();
    if (!(a >= 0 && a <= b && b <= static_cast<double>(limit) && b < 2147483647.0) || a != static_cast<double>(static_cast<std::size_t>(a)) ||
        b != static_cast<double>(static_cast<std::size_t>(b)))
        throw Napi::RangeError::New(env, "from and to must be integers with 0 <= from <= to <= rows");
    from = static_cast<std::size_t>(a);
    to = static_cast<std::size_t>(b);
}

// fillKeySlots(slots, keys, from, to) → number: inserts rows [from, to) under hashKey(keys[row]); returns how many
// empty slots they took.
Napi::Value FillKeySlots(Napi::CallbackInfo const& info) {
    Napi::Env env = info.Env();
    auto keys = typed<Napi::Float64Array>(env, info[1], napi_float64_array, "keys must be a Float64Array");
    std::size_t from = 0, to = 0;
    range_arg(info, 2, keys.ElementLength(), from, to);
    auto slots = slots_arg(env, info[0]);
    distinct(env, {{slots, keys}});
    double const* data = keys.Data();
    for (std::size_t row = from; row != to; ++row) {
        // Also true for NaN: the JS hash of a key that is not an integer in [0, 2^53) is not this one.
        if (!(data[row] >= 0 && data[row] < 9007199254740992.0) || data[row] != static_cast<double>(static_cast<std::uint64_t>(data[row])))
            throw Napi::RangeError::New(env, "keys must be integers in [0, 2^53)");
    }
    return Napi::Number::New(env, fill_rows(env, slots, from, to, [data](std::size_t row) { return hash_key(data[row]); }));
}

// fillIdSlots(slots, arena, offsets, hashes, from, to) → number: row r's id is arena[offsets[r], offsets[r + 1]);
// writes hashIdBytes of each into hashes[r] and inserts the row under it; returns how many empty slots they took.
Napi::Value FillIdSlots(Napi::CallbackInfo const& info) {
    Napi::Env env = info.Env();
    auto arena = typed<Napi::Uint8Array>(env, info[1], napi_uint8_array, "arena must be a Uint8Array");
    auto offsets = typed<Napi::Uint32Array>(env, info[2], napi_uint32_array, "offsets must be a Uint32Array");
    auto hashes = typed<Napi::Int32Array>(env, info[3], napi_int32_array, "hashes must be an Int32Array");
    std::size_t const rows = std::min(hashes.ElementLength(), offsets.ElementLength() == 0 ? 0 : offsets.ElementLength() - 1);
    std::size_t from = 0, to = 0;
    range_arg(info, 4, rows, from, to);
    auto slots = slots_arg(env, info[0]);
    distinct(env, {{slots, arena}, {slots, offsets}, {slots, hashes}, {hashes, arena}, {hashes, offsets}});
    std::uint32_t const* offset = offsets.Data();
    std::size_t const length = arena.ByteLength();
    for (std::size_t row = from; row != to; ++row) {
        if (offset[row] > offset[row + 1] || offset[row + 1] > length)
            throw Napi::RangeError::New(env, "offsets must rise within the arena");
    }
    std::uint8_t const* bytes = arena.Data();
    std::int32_t* hash_of = hashes.Data();
    return Napi::Number::New(env, fill_rows(env, slots, from, to, [=](std::size_t row) {
        std::uint32_t const hash = hash_id_bytes(bytes, length, offset[row], offset[row + 1]);
        hash_of[row] = static_cast<std::int32_t>(hash);
        return hash;
    }));
}

}  // namespace

Napi::Object Define(Napi::Env env) {
    auto tables = Napi::Object::New(env);
    tables.Set("fillKeySlots", Napi::Function::New(env, FillKeySlots));
    tables.Set("fillIdSlots", Napi::Function::New(env, FillIdSlots));
    return tables;
}

}  // namespace vecvault_tables
