// A digest of a multiset of 64-bit keys, the same whichever order they come
// in: each key is encrypted as one AES-256 block (the key, little-endian, then
// eight zero bytes) under a random key drawn for this one comparison, and the
// two 64-bit halves of the blocks are summed (mod 2^64) apart, beside the
// count. Two different multisets give the same digest only if their blocks'
// sums collide: with AES as a pseudorandom permutation under a key unknown
// when either set was made, about 2^-64 per half.
//
// What for: after a snapshot load, the graph must hold exactly the keys of the
// snapshot's table. The loader digests the graph's keys as they stream past
// (StreamValidator), a pool task digests the table's key column meanwhile,
// and JS compares the two: a few milliseconds of AES-NI in all, beside the
// load, instead of one hash lookup per key in the loaded graph after it.
// No cryptography is implemented here: OpenSSL's AES-256-ECB (the one Node
// links) over batches of blocks, then additions.
#pragma once

#include <openssl/evp.h>

#include <cstddef>
#include <cstdint>
#include <cstring>

namespace {

class KeyDigest {
  public:
    static constexpr std::size_t key_bytes = 32;
    static constexpr std::size_t digest_bytes = 24; // count, then the two sums, each u64 little-endian

    explicit KeyDigest(std::uint8_t const* key) {
        ok_ = ctx_ && EVP_EncryptInit_ex(ctx_, EVP_aes_256_ecb(), nullptr, key, nullptr) == 1 &&
              EVP_CIPHER_CTX_set_padding(ctx_, 0) == 1;
    }
    ~KeyDigest() { EVP_CIPHER_CTX_free(ctx_); }
    KeyDigest(KeyDigest const&) = delete;
    KeyDigest& operator=(KeyDigest const&) = delete;

    void add(std::uint64_t key) {
        std::uint8_t* block = blocks_ + 16 * pending_;
        for (int i = 0; i != 8; ++i)
            block[i] = static_cast<std::uint8_t>(key >> (8 * i)); // little-endian on every host
        std::memset(block + 8, 0, 8);
        if (++pending_ == batch)
            flush();
    }
    // Writes the digest (digest_bytes); false if OpenSSL failed anywhere.
    bool finish(std::uint8_t* out) {
        flush();
        std::uint64_t words[3] = {count_, sum_lo_, sum_hi_};
        for (int w = 0; w != 3; ++w)
            for (int i = 0; i != 8; ++i)
                out[8 * w + i] = static_cast<std::uint8_t>(words[w] >> (8 * i));
        return ok_;
    }

  private:
    static constexpr std::size_t batch = 256;
    static std::uint64_t word(std::uint8_t const* p) {
        std::uint64_t v = 0;
        for (int i = 7; i >= 0; --i)
            v = (v << 8) | p[i];
        return v;
    }
    void flush() {
        if (pending_ == 0)
            return;
        int written = 0;
        if (!ok_ || EVP_EncryptUpdate(ctx_, blocks_, &written, blocks_, static_cast<int>(16 * pending_)) != 1 ||
            written != static_cast<int>(16 * pending_))
            ok_ = false;
        for (std::size_t i = 0; ok_ && i != pending_; ++i) {
            sum_lo_ += word(blocks_ + 16 * i);
            sum_hi_ += word(blocks_ + 16 * i + 8);
        }
        count_ += pending_;
        pending_ = 0;
    }

    EVP_CIPHER_CTX* ctx_ = EVP_CIPHER_CTX_new();
    bool ok_ = false;
    std::uint8_t blocks_[16 * batch];
    std::size_t pending_ = 0;
    std::uint64_t count_ = 0, sum_lo_ = 0, sum_hi_ = 0;
};

} // namespace
