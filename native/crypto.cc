// Batched AES-256-GCM and HMAC-SHA256 over the OpenSSL that Node.js itself
// links and exports to addons (https://nodejs.org/api/addons.html, "Linking
// to libraries included with Node.js"). No cryptography is implemented here:
// these functions only call OpenSSL's EVP/HMAC, once per item, in a loop.
//
// Why: through node:crypto every record costs a Cipher or Hmac object (~5 µs
// each, measured), which made sealing records cost more CPU than inserting
// them into the graph. One call per batch costs about 1 µs per item.
//
// Formats are the ones src/crypto/aead.ts produces and reads, so either side
// opens what the other sealed (tests cross-check both and @noble/ciphers):
//   sealed = prefix || nonce(12) || ciphertext || tag(16)
// An item's AAD (or HMAC message) is head || part[i] || tail, so callers can
// pass the constant framing once and only the varying middle per item.

#include <napi.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <openssl/rand.h>

#include <cstring>
#include <initializer_list>
#include <memory>
#include <string>
#include <vector>

#include "key-digest.h"
#include "promise-task.h"

namespace vecvault_crypto {
namespace {

constexpr std::size_t key_bytes = 32;
constexpr std::size_t nonce_bytes = 12;
constexpr std::size_t tag_bytes = 16;
constexpr std::size_t mac_bytes = 32;

struct Span {
    std::uint8_t const* data = nullptr;
    std::size_t size = 0;
};

Span bytes_arg(Napi::Env env, Napi::Value value, char const* what) {
    if (!value.IsTypedArray() || value.As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array)
        throw Napi::TypeError::New(env, std::string(what) + " must be a Uint8Array");
    auto array = value.As<Napi::Uint8Array>();
    return {array.Data(), array.ByteLength()};
}

Span key_arg(Napi::Env env, Napi::Value value) {
    Span key = bytes_arg(env, value, "key");
    if (key.size != key_bytes)
        throw Napi::RangeError::New(env, "key must be 32 bytes");
    return key;
}

// A list of Uint8Arrays or strings (UTF-8). Strings are copied (N-API has
// no borrowed view of a JS string); byte arrays are read in place. For a pool
// task (`held`), each Uint8Array is referenced until the task is destroyed, so
// its memory outlives the work even if the caller drops or replaces the
// array's elements; strings are refused there (the tasks write in place).
class Parts {
  public:
    Parts(Napi::Env env, Napi::Value value, char const* what, bool held = false) {
        if (!value.IsArray())
            throw Napi::TypeError::New(env, std::string(what) + " must be an array");
        auto list = value.As<Napi::Array>();
        std::uint32_t n = list.Length();
        spans_.resize(n);
        std::vector<std::size_t> string_at;
        for (std::uint32_t i = 0; i != n; ++i) {
            Napi::Value item = list.Get(i);
            if (held) {
                spans_[i] = bytes_arg(env, item, what);
                refs_.push_back(Napi::Persistent(item.As<Napi::Object>()));
            } else if (item.IsString()) {
                strings_.push_back(item.As<Napi::String>().Utf8Value());
                string_at.push_back(i);
            } else {
                spans_[i] = bytes_arg(env, item, what);
            }
        }
        // After every push_back: the strings no longer move.
        for (std::size_t s = 0; s != string_at.size(); ++s)
            spans_[string_at[s]] = {reinterpret_cast<std::uint8_t const*>(strings_[s].data()), strings_[s].size()};
    }
    std::size_t size() const { return spans_.size(); }
    Span operator[](std::size_t i) const { return spans_[i]; }

  private:
    std::vector<Span> spans_;
    std::vector<std::string> strings_;
    std::vector<Napi::ObjectReference> refs_;
};

struct CipherContext {
    EVP_CIPHER_CTX* ctx = EVP_CIPHER_CTX_new();
    ~CipherContext() { EVP_CIPHER_CTX_free(ctx); }
};

bool feed_aad(EVP_CIPHER_CTX* ctx, Span head, Span part, Span tail, bool encrypt) {
    int n = 0;
    auto update = encrypt ? EVP_EncryptUpdate : EVP_DecryptUpdate;
    for (Span s : {head, part, tail})
        if (s.size != 0 && update(ctx, nullptr, &n, s.data, static_cast<int>(s.size)) != 1)
            return false;
    return true;
}

// One keyed HMAC-SHA256 context, re-initialised per message with the same
// key (OpenSSL keeps the padded key state): the one-shot HMAC() fetches the
// digest and rebuilds the key state on every call, ~5x slower (measured).
// Throws nothing (it also runs on pool threads): check ok() after construction.
class Hmac {
  public:
    explicit Hmac(Span key) {
        mac_ = EVP_MAC_fetch(nullptr, "HMAC", nullptr);
        ctx_ = mac_ ? EVP_MAC_CTX_new(mac_) : nullptr;
        char digest[] = "SHA256";
        OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string("digest", digest, 0), OSSL_PARAM_construct_end()};
        ok_ = ctx_ && EVP_MAC_init(ctx_, key.data, key.size, params) == 1;
    }
    ~Hmac() {
        EVP_MAC_CTX_free(ctx_);
        EVP_MAC_free(mac_);
    }
    bool ok() const { return ok_; }
    bool sign(std::initializer_list<Span> pieces, std::uint8_t* out) {
        std::size_t length = 0;
        if (EVP_MAC_init(ctx_, nullptr, 0, nullptr) != 1)
            return false;
        for (Span s : pieces)
            if (s.size != 0 && EVP_MAC_update(ctx_, s.data, s.size) != 1)
                return false;
        return EVP_MAC_final(ctx_, out, &length, mac_bytes) == 1 && length == mac_bytes;
    }

  private:
    EVP_MAC* mac_ = nullptr;
    EVP_MAC_CTX* ctx_ = nullptr;
    bool ok_ = false;
};

// The optional `seconds[], skip` arguments of hmacMany, checked against `parts`; null when absent.
std::unique_ptr<Parts> seconds_arg(Napi::Env env, Napi::Value value, Napi::Value skip_value, Parts const& parts, std::size_t& skip) {
    skip = 0;
    if (value.IsUndefined())
        return nullptr;
    auto seconds = std::make_unique<Parts>(env, value, "seconds");
    if (!skip_value.IsNumber() || skip_value.As<Napi::Number>().DoubleValue() < 0)
        throw Napi::TypeError::New(env, "skip must be a non-negative number");
    skip = static_cast<std::size_t>(skip_value.As<Napi::Number>().Int64Value());
    if (seconds->size() != parts.size())
        throw Napi::RangeError::New(env, "one second part per part");
    for (std::size_t i = 0; i != seconds->size(); ++i)
        if ((*seconds)[i].size < skip)
            throw Napi::RangeError::New(env, "a second part is shorter than skip");
    return seconds;
}

// HMAC(head || parts[i] || [seconds[i] from skip ||] tail) for every part, into `out` (32 bytes each).
// Empty string on success.
std::string hmac_all(Span key, Span head, Parts const& parts, Span tail, Parts const* seconds, std::size_t skip, std::uint8_t* out) {
    Hmac hmac(key);
    if (!hmac.ok())
        return "HMAC-SHA256 setup failed";
    for (std::size_t i = 0; i != parts.size(); ++i) {
        Span second = seconds ? (*seconds)[i] : Span{};
        Span rest = seconds ? Span{second.data + skip, second.size - skip} : Span{};
        if (!hmac.sign({head, parts[i], rest, tail}, out + i * mac_bytes))
            return "HMAC-SHA256 failed";
    }
    return {};
}

// hmacMany(key, head, parts[], tail[, seconds[], skip]) → Buffer of parts.length × 32 bytes:
// HMAC(head || parts[i] || tail), or with `seconds`, HMAC(head || parts[i] || seconds[i][skip..] || tail),
// so a caller MACing a key and a stored value together need not concatenate them first.
Napi::Value HmacMany(Napi::CallbackInfo const& info) {
    Napi::Env env = info.Env();
    Span key = key_arg(env, info[0]);
    Span head = bytes_arg(env, info[1], "head");
    Parts parts(env, info[2], "parts");
    Span tail = bytes_arg(env, info[3], "tail");
    std::size_t skip = 0;
    auto seconds = seconds_arg(env, info[4], info[5], parts, skip);
    auto out = Napi::Buffer<std::uint8_t>::New(env, parts.size() * mac_bytes);
    std::string error = hmac_all(key, head, parts, tail, seconds.get(), skip, out.Data());
    if (!error.empty())
        throw Napi::Error::New(env, error);
    return out;
}

// Bytes sealMany/sealAsync write for these plaintexts.
std::size_t sealed_size(Span prefix, Parts const& plaintexts) {
    std::size_t total = 0;
    for (std::size_t i = 0; i != plaintexts.size(); ++i)
        total += prefix.size + nonce_bytes + plaintexts[i].size + tag_bytes;
    return total;
}

// Seals every plaintext into `out` (sealed_size bytes), back to back, each
// prefix || fresh random nonce || ciphertext || tag. Empty string on success.
std::string seal_all(Span key, Span prefix, Parts const& plaintexts, Span head, Parts const& aad_parts, Span tail, std::uint8_t* out) {
    std::size_t n = plaintexts.size();
    std::vector<std::uint8_t> nonces(n * nonce_bytes);
    if (n != 0 && RAND_bytes(nonces.data(), static_cast<int>(nonces.size())) != 1)
        return "the CSPRNG failed";
    CipherContext c;
    if (!c.ctx || EVP_EncryptInit_ex(c.ctx, EVP_aes_256_gcm(), nullptr, key.data, nullptr) != 1)
        return "AES-256-GCM setup failed";
    for (std::size_t i = 0; i != n; ++i) {
        Span pt = plaintexts[i];
        if (prefix.size) std::memcpy(out, prefix.data, prefix.size);
        std::uint8_t* nonce = out + prefix.size;
        std::memcpy(nonce, nonces.data() + i * nonce_bytes, nonce_bytes);
        std::uint8_t* body = nonce + nonce_bytes;
        int written = 0, final_written = 0;
        bool ok = EVP_EncryptInit_ex(c.ctx, nullptr, nullptr, nullptr, nonce) == 1 &&
                  feed_aad(c.ctx, head, aad_parts[i], tail, true) &&
                  (pt.size == 0 || EVP_EncryptUpdate(c.ctx, body, &written, pt.data, static_cast<int>(pt.size)) == 1) &&
                  EVP_EncryptFinal_ex(c.ctx, body + written, &final_written) == 1 &&
                  static_cast<std::size_t>(written + final_written) == pt.size &&
                  EVP_CIPHER_CTX_ctrl(c.ctx, EVP_CTRL_GCM_GET_TAG, tag_bytes, body + pt.size) == 1;
        if (!ok)
            return "AES-256-GCM encryption failed";
        out = body + pt.size + tag_bytes;
    }
    return {};
}

// sealMany(key, prefix, plaintexts[], aadHead, aadParts[], aadTail) → one
// Buffer holding every sealed value back to back (the caller slices it: one
// allocation instead of one per item).
Napi::Value SealMany(Napi::CallbackInfo const& info) {
    Napi::Env env = info.Env();
    Span key = key_arg(env, info[0]);
    Span prefix = bytes_arg(env, info[1], "prefix");
    Parts plaintexts(env, info[2], "plaintexts");
    Span head = bytes_arg(env, info[3], "aadHead");
    Parts aad_parts(env, info[4], "aadParts");
    Span tail = bytes_arg(env, info[5], "aadTail");
    if (aad_parts.size() != plaintexts.size())
        throw Napi::RangeError::New(env, "aadParts must have one entry per plaintext");
    auto out = Napi::Buffer<std::uint8_t>::New(env, sealed_size(prefix, plaintexts));
    std::string error = seal_all(key, prefix, plaintexts, head, aad_parts, tail, out.Data());
    if (!error.empty())
        throw Napi::Error::New(env, error);
    return out;
}

// Decrypts one item into `out` (sized ciphertext length); false when it does not authenticate.
bool open_one(EVP_CIPHER_CTX* ctx, Span sealed, std::size_t skip, Span head, Span part, Span tail, std::uint8_t* out) {
    if (sealed.size < skip + nonce_bytes + tag_bytes)
        return false;
    std::uint8_t const* nonce = sealed.data + skip;
    std::uint8_t const* body = nonce + nonce_bytes;
    std::size_t body_size = sealed.size - skip - nonce_bytes - tag_bytes;
    // The tag is 16 bytes, always: a shorter one would be accepted by a careless caller (DESIGN §4).
    std::uint8_t tag[tag_bytes];
    std::memcpy(tag, body + body_size, tag_bytes);
    int written = 0, final_written = 0;
    return EVP_DecryptInit_ex(ctx, nullptr, nullptr, nullptr, nonce) == 1 && feed_aad(ctx, head, part, tail, false) &&
           (body_size == 0 || EVP_DecryptUpdate(ctx, out, &written, body, static_cast<int>(body_size)) == 1) &&
           EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, tag_bytes, tag) == 1 &&
           EVP_DecryptFinal_ex(ctx, out + written, &final_written) == 1 &&
           static_cast<std::size_t>(written + final_written) == body_size;
}

Napi::Error auth_failure(Napi::Env env, std::size_t index) {
    auto error = Napi::Error::New(env, "authentication failed");
    error.Set("index", Napi::Number::New(env, static_cast<double>(index)));
    return error;
}

// openMany(key, sealed[], skip, aadHead, aadParts[], aadTail) → one Buffer
// holding every plaintext back to back (the caller slices it); throws an
// Error with `.index` = the first item that does not authenticate.
Napi::Value OpenMany(Napi::CallbackInfo const& info) {
    Napi::Env env = info.Env();
    Span key = key_arg(env, info[0]);
    Parts sealed(env, info[1], "sealed");
    std::size_t skip = info[2].As<Napi::Number>().Uint32Value();
    Span head = bytes_arg(env, info[3], "aadHead");
    Parts aad_parts(env, info[4], "aadParts");
    Span tail = bytes_arg(env, info[5], "aadTail");
    std::size_t n = sealed.size();
    if (aad_parts.size() != n)
        throw Napi::RangeError::New(env, "aadParts must have one entry per sealed item");
    std::size_t total = 0;
    for (std::size_t i = 0; i != n; ++i) {
        if (sealed[i].size < skip + nonce_bytes + tag_bytes)
            throw auth_failure(env, i);
        total += sealed[i].size - skip - nonce_bytes - tag_bytes;
    }
    auto out = Napi::Buffer<std::uint8_t>::New(env, total);
    CipherContext c;
    if (!c.ctx || EVP_DecryptInit_ex(c.ctx, EVP_aes_256_gcm(), nullptr, key.data, nullptr) != 1)
        throw Napi::Error::New(env, "AES-256-GCM setup failed");
    std::uint8_t* p = out.Data();
    for (std::size_t i = 0; i != n; ++i) {
        if (!open_one(c.ctx, sealed[i], skip, head, aad_parts[i], tail, p)) {
            std::memset(out.Data(), 0, total);  // no unauthenticated plaintext left behind
            throw auth_failure(env, i);
        }
        p += sealed[i].size - skip - nonce_bytes - tag_bytes;
    }
    return out;
}

// GMAC of one sealed item under `ctx`'s key (set up for AES-256-GCM): the
// item's own nonce as the IV, the whole item as AAD, no plaintext. The nonce
// is random per sealed item, so no (key, IV) pair repeats while the sealing
// nonces do not (the bound the sealing itself relies on).
bool gmac_of(EVP_CIPHER_CTX* ctx, Span sealed, std::uint8_t* out) {
    if (sealed.size < nonce_bytes + tag_bytes)
        return false;
    int written = 0;
    std::uint8_t none[tag_bytes];
    return EVP_EncryptInit_ex(ctx, nullptr, nullptr, nullptr, sealed.data) == 1 &&
           EVP_EncryptUpdate(ctx, nullptr, &written, sealed.data, static_cast<int>(sealed.size)) == 1 &&
           EVP_EncryptFinal_ex(ctx, none, &written) == 1 && EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, tag_bytes, out) == 1;
}

// A pool task over a key and two lists (items and their AADs), each held
// until the task is destroyed (see Parts), and optionally `checks` of each
// sealed item, computed in the same task so the main thread never reads the
// bytes (signed snapshots name them): { digests } for one SHA-256 per item,
// { macs, macKey } for one GMAC per item (gmac_of).
class ItemsTask : public vecvault::PromiseTask {
  public:
    ItemsTask(Napi::Env env, Napi::Value key, Napi::Value items, Napi::Value aads, char const* what, Napi::Value checks)
        : PromiseTask(env, "vecvault:crypto"), key_(key_arg(env, key)), keep_key_(Napi::Persistent(key.As<Napi::Object>())),
          items_(env, items, what, true), aads_(env, aads, "aads", true) {
        if (aads_.size() != items_.size())
            throw Napi::RangeError::New(env, "aads must have one entry per item");
        if (checks.IsUndefined())
            return;
        if (!checks.IsObject())
            throw Napi::TypeError::New(env, "checks must be an object");
        auto object = checks.As<Napi::Object>();
        digests_ = output_arg(env, object, "digests", mac_bytes, keep_digests_);
        macs_ = output_arg(env, object, "macs", tag_bytes, keep_macs_);
        if (macs_.data != nullptr) {
            Span mac_key = bytes_arg(env, object.Get("macKey"), "checks.macKey");
            if (mac_key.size != key_bytes)
                throw Napi::RangeError::New(env, "checks.macKey must be 32 bytes");
            std::memcpy(mac_key_, mac_key.data, key_bytes);
        }
    }
    ~ItemsTask() override { OPENSSL_cleanse(mac_key_, key_bytes); }

  protected:
    // checks[name]: an output of `per_item` bytes per item, or none when absent; read once and held by the task
    // itself (a getter could hand out another buffer later).
    Span output_arg(Napi::Env env, Napi::Object checks, char const* name, std::size_t per_item, Napi::ObjectReference& keep) {
        Napi::Value value = checks.Get(name);
        if (value.IsUndefined())
            return {};
        std::string what = std::string("checks.") + name;
        Span out = bytes_arg(env, value, what.c_str());
        keep = Napi::Persistent(value.As<Napi::Object>());
        if (out.size != per_item * items_.size())
            throw Napi::RangeError::New(env, what + " must hold " + std::to_string(per_item) + " bytes per item");
        return out;
    }

    // The requested checks of sealed item i; an error message on an OpenSSL failure.
    char const* check(std::size_t i, Span sealed) {
        if (digests_.data != nullptr &&
            EVP_Digest(sealed.data, sealed.size, const_cast<std::uint8_t*>(digests_.data) + mac_bytes * i, nullptr, EVP_sha256(), nullptr) != 1)
            return "SHA-256 failed";
        if (macs_.data != nullptr) {
            if (!mac_ready_ && (!mac_ctx_.ctx || EVP_EncryptInit_ex(mac_ctx_.ctx, EVP_aes_256_gcm(), nullptr, mac_key_, nullptr) != 1))
                return "GMAC setup failed";
            mac_ready_ = true;
            if (!gmac_of(mac_ctx_.ctx, sealed, const_cast<std::uint8_t*>(macs_.data) + tag_bytes * i))
                return "GMAC failed";
        }
        return nullptr;
    }

    // `check` of each item sealed back to back from `sealed` (the sealing's output), unless it failed.
    void check_sealed(std::uint8_t const* sealed) {
        for (std::size_t i = 0; error_.empty() && i != items_.size(); ++i) {
            std::size_t size = nonce_bytes + items_[i].size + tag_bytes;
            if (char const* failed = check(i, Span{sealed, size}))
                error_ = failed;
            sealed += size;
        }
    }

    Span key_;
    Napi::ObjectReference keep_key_;
    Parts items_;
    Parts aads_;
    std::string error_;

  private:
    Span digests_;
    Napi::ObjectReference keep_digests_;
    Span macs_;
    Napi::ObjectReference keep_macs_;
    std::uint8_t mac_key_[key_bytes] = {};
    CipherContext mac_ctx_;
    bool mac_ready_ = false;
};

// openInPlaceAsync(key, sealed[], aads[]) → Promise<void>: opens large values
// (snapshot chunks) on the libuv pool, each over its own ciphertext:
// plaintext i ends up at sealed[i][12 .. length - 16]. No copy of the data and
// no fresh pages to fault in. On a failure every decrypted byte is wiped and
// the rejection names the item (`.index`).
class OpenInPlaceTask : public ItemsTask {
  public:
    OpenInPlaceTask(Napi::Env env, Napi::Value key, Napi::Value sealed, Napi::Value aads, Napi::Value checks)
        : ItemsTask(env, key, sealed, aads, "sealed", checks) {}

  protected:
    void Execute() override {
        CipherContext c;
        if (!c.ctx || EVP_DecryptInit_ex(c.ctx, EVP_aes_256_gcm(), nullptr, key_.data, nullptr) != 1) {
            error_ = "AES-256-GCM setup failed";
            return;
        }
        for (std::size_t i = 0; i != items_.size(); ++i) {
            // Too short to be sealed: an authentication failure like any other (the checks cannot take it).
            bool long_enough = items_[i].size >= nonce_bytes + tag_bytes;
            if (char const* failed = long_enough ? check(i, items_[i]) : nullptr) {  // as sealed, before the bytes change
                error_ = failed;
                return;
            }
            // GCM decrypts in place (OpenSSL allows out == in for stream modes).
            if (!open_one(c.ctx, items_[i], 0, Span{}, aads_[i], Span{}, plain_of(items_[i]))) {
                for (std::size_t j = 0; j <= i; ++j)
                    if (items_[j].size > nonce_bytes + tag_bytes)
                        std::memset(plain_of(items_[j]), 0, items_[j].size - nonce_bytes - tag_bytes);
                failed_at_ = i;
                return;
            }
        }
    }
    void Settle(Napi::Env env) override {
        if (!error_.empty())
            return deferred_.Reject(Napi::Error::New(env, error_).Value());
        if (failed_at_ != npos)
            return deferred_.Reject(auth_failure(env, failed_at_).Value());
        deferred_.Resolve(env.Undefined());
    }

  private:
    static std::uint8_t* plain_of(Span item) { return const_cast<std::uint8_t*>(item.data) + nonce_bytes; }
    static constexpr std::size_t npos = static_cast<std::size_t>(-1);
    std::size_t failed_at_ = npos;
};

// sealAsync(key, plaintexts[], aads[]) → Promise<Buffer>: seal_all on the
// libuv pool for large values (snapshot chunks), every sealed value
// (nonce || ciphertext || tag) back to back in one Buffer the caller slices.
class SealTask : public ItemsTask {
  public:
    SealTask(Napi::Env env, Napi::Value key, Napi::Value plaintexts, Napi::Value aads, Napi::Value checks)
        : ItemsTask(env, key, plaintexts, aads, "plaintexts", checks) {}

  protected:
    void Execute() override {
        sealed_ = std::make_unique<std::vector<std::uint8_t>>(sealed_size(Span{}, items_));
        error_ = seal_all(key_, Span{}, items_, Span{}, aads_, Span{}, sealed_->data());
        check_sealed(sealed_->data());
    }
    void Settle(Napi::Env env) override {
        if (!error_.empty())
            return deferred_.Reject(Napi::Error::New(env, error_).Value());
        auto* owned = sealed_.release();
        // Hands the bytes to JS without a copy; the finalizer frees them.
        deferred_.Resolve(Napi::Buffer<std::uint8_t>::New(env, owned->data(), owned->size(),
                                                         [](Napi::Env, std::uint8_t*, std::vector<std::uint8_t>* v) { delete v; }, owned));
    }

  private:
    std::unique_ptr<std::vector<std::uint8_t>> sealed_;
};

// sealIntoAsync(key, plaintexts[], aads[], out) → Promise<void>: sealAsync
// into the caller's `out` (at least the sealed size, held until it settles),
// for a stream that reuses one output buffer instead of leaving a fresh one
// per group for the GC (snapshot writes: tens of MB of garbage at a time).
class SealIntoTask : public ItemsTask {
  public:
    SealIntoTask(Napi::Env env, Napi::Value key, Napi::Value plaintexts, Napi::Value aads, Napi::Value out, Napi::Value checks)
        : ItemsTask(env, key, plaintexts, aads, "plaintexts", checks), out_(bytes_arg(env, out, "out")), keep_out_(Napi::Persistent(out.As<Napi::Object>())) {
        if (out_.size < sealed_size(Span{}, items_))
            throw Napi::RangeError::New(env, "out is too small for the sealed values");
    }

  protected:
    void Execute() override {
        error_ = seal_all(key_, Span{}, items_, Span{}, aads_, Span{}, const_cast<std::uint8_t*>(out_.data));
        check_sealed(out_.data);
    }
    void Settle(Napi::Env env) override {
        if (!error_.empty())
            return deferred_.Reject(Napi::Error::New(env, error_).Value());
        deferred_.Resolve(env.Undefined());
    }

  private:
    Span out_;
    Napi::ObjectReference keep_out_;
};

Napi::Value SealIntoAsync(Napi::CallbackInfo const& info) {
    return vecvault::queue_task<SealIntoTask>(info.Env(), info[0], info[1], info[2], info[3], info[4]);
}

Napi::Value OpenInPlaceAsync(Napi::CallbackInfo const& info) {
    return vecvault::queue_task<OpenInPlaceTask>(info.Env(), info[0], info[1], info[2], info[3]);
}

Napi::Value SealAsync(Napi::CallbackInfo const& info) {
    return vecvault::queue_task<SealTask>(info.Env(), info[0], info[1], info[2], info[3]);
}

// keyDigestAsync(key, keys: Float64Array) → Promise<Buffer | null>: the
// KeyDigest (key-digest.h) of a key column, on the pool, read in place (the
// caller leaves it unchanged until this settles). null when a number is not
// an integer in [0, 2^53): no engine key, so the column cannot match a graph.
class KeyDigestTask : public vecvault::PromiseTask {
  public:
    KeyDigestTask(Napi::Env env, Napi::Value key, Napi::Value keys)
        : PromiseTask(env, "vecvault:crypto"), key_(key_arg(env, key)), keep_key_(Napi::Persistent(key.As<Napi::Object>())) {
        if (!keys.IsTypedArray() || keys.As<Napi::TypedArray>().TypedArrayType() != napi_float64_array)
            throw Napi::TypeError::New(env, "keys must be a Float64Array");
        auto column = keys.As<Napi::Float64Array>();
        numbers_ = column.Data();
        count_ = column.ElementLength();
        keep_keys_ = Napi::Persistent(keys.As<Napi::Object>());
    }

  protected:
    void Execute() override {
        KeyDigest digest(key_.data);
        for (std::size_t i = 0; i != count_; ++i) {
            double number = numbers_[i];
            // Also false for NaN; below 2^53 every integer is exact, and the cast is defined.
            if (!(number >= 0 && number < 9007199254740992.0) || number != static_cast<double>(static_cast<std::uint64_t>(number))) {
                invalid_ = true;
                return;
            }
            digest.add(static_cast<std::uint64_t>(number));
        }
        if (!digest.finish(out_))
            error_ = "AES-256 setup failed";
    }
    void Settle(Napi::Env env) override {
        if (!error_.empty())
            return deferred_.Reject(Napi::Error::New(env, error_).Value());
        if (invalid_)
            return deferred_.Resolve(env.Null());
        deferred_.Resolve(Napi::Buffer<std::uint8_t>::Copy(env, out_, KeyDigest::digest_bytes));
    }

  private:
    Span key_;
    Napi::ObjectReference keep_key_;
    double const* numbers_ = nullptr;
    std::size_t count_ = 0;
    Napi::ObjectReference keep_keys_;
    bool invalid_ = false;
    std::uint8_t out_[KeyDigest::digest_bytes] = {};
    std::string error_;
};

Napi::Value KeyDigestAsync(Napi::CallbackInfo const& info) {
    return vecvault::queue_task<KeyDigestTask>(info.Env(), info[0], info[1]);
}

}  // namespace

Napi::Object Define(Napi::Env env) {
    auto crypto = Napi::Object::New(env);
    crypto.Set("hmacMany", Napi::Function::New(env, HmacMany));
    crypto.Set("sealMany", Napi::Function::New(env, SealMany));
    crypto.Set("openMany", Napi::Function::New(env, OpenMany));
    crypto.Set("sealAsync", Napi::Function::New(env, SealAsync));
    crypto.Set("sealIntoAsync", Napi::Function::New(env, SealIntoAsync));
    crypto.Set("openInPlaceAsync", Napi::Function::New(env, OpenInPlaceAsync));
    crypto.Set("keyDigestAsync", Napi::Function::New(env, KeyDigestAsync));
    return crypto;
}

}  // namespace vecvault_crypto
