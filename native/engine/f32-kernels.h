// Float32 distance kernels of our own, used where usearch's (NumKong's)
// widen every product to float64: on AVX2 and AVX-512 those run 4 or 8
// doubles per instruction through one dependent chain, where float32 with
// independent accumulators does 32 floats per round.
//
// Cosine over float32 as 1 - dot product of unit vectors. The engine scales
// every vector it adds or searches for to unit length (normalize_rows), and
// while every stored vector is unit length compares them with unit_metric:
// one float32 dot product with independent accumulators, against usearch's
// cosine kernel, which widens to float64 and keeps three sums and a square
// root per pair (see docs/performance.md, "Tenth round"). Scaling changes no
// cosine distance, so usearch's own cosine kernel stays right for any mix of
// scaled and unscaled vectors (bytes written before this).
//
// Squared euclidean and inner product over float32 (own_metric): the same
// sums as usearch's, accumulated in float32 (as hnswlib does) instead of
// float64, so distances agree to float32 rounding: ~1e-7 relative for l2sq,
// ~1e-7 of the sum of |a_i b_i| (absolute) for ip. They
// need nothing of the stored vectors, so every float32 l2sq or ip index uses
// them, loaded ones too; the serialized header still names the metric, and
// any reader loads the same bytes with its own kernel.
#pragma once

#include "usearch.h"

#include <cmath>
#include <cstddef>
#include <cstdlib>
#include <cstring>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define VECVAULT_F32_AVX2 1
#endif

namespace {

using namespace unum::usearch;

bool normalizes(metric_kind_t metric, scalar_kind_t scalar) {
    return metric == metric_kind_t::cos_k && scalar == scalar_kind_t::f32_k;
}

// Whether our float32 kernel (own_metric) replaces usearch's for every graph of this kind: squared euclidean
// and inner product over float32, which need nothing of the stored vectors.
bool own_kernel(metric_kind_t metric, scalar_kind_t scalar) {
    return scalar == scalar_kind_t::f32_k && (metric == metric_kind_t::l2sq_k || metric == metric_kind_t::ip_k);
}

// Scales each of `count` rows of `dims` floats to unit length (all-zero rows
// stay zero). In float64 throughout: the scale of a float32 vector can be
// beyond float32's range (a length below ~3e-39 needs a scale over 3.4e38,
// one near FLT_MAX a subnormal scale), and the API takes any nonzero vector.
void normalize_rows(float* rows, std::size_t count, std::size_t dims) {
    for (std::size_t r = 0; r != count; ++r) {
        float* row = rows + r * dims;
        double squares = 0;
        for (std::size_t i = 0; i != dims; ++i)
            squares += static_cast<double>(row[i]) * row[i];
        if (squares == 0 || squares == 1)
            continue;
        double scale = 1 / std::sqrt(squares);
        for (std::size_t i = 0; i != dims; ++i)
            row[i] = static_cast<float>(row[i] * scale);
    }
}

using uptr_t = std::size_t;

bool portable_forced() {
    char const* choice = std::getenv("VECVAULT_F32_KERNELS");
    return choice != nullptr && std::strcmp(choice, "portable") == 0;
}

// 1 - dot, never below 0 (rounding can take the dot of a vector with itself
// past 1), as usearch's cosine kernel clamps. A zero vector (which the API
// refuses under cosine) is at distance 1 from everything, itself included.
inline distance_punned_t distance_of(float dot) {
    float distance = 1 - dot;
    return distance > 0 ? distance : 0;
}

// Eight independent sums: no float reordering is needed for the compiler to
// keep them in vector registers, and the additions do not wait on each other.
inline float dot_portable(float const* x, float const* y, std::size_t n) {
    float s[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    std::size_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (std::size_t j = 0; j != 8; ++j)
            s[j] += x[i + j] * y[i + j];
    float dot = ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]));
    for (; i != n; ++i)
        dot += x[i] * y[i];
    return dot;
}

inline float l2sq_portable(float const* x, float const* y, std::size_t n) {
    float s[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    std::size_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (std::size_t j = 0; j != 8; ++j) {
            float d = x[i + j] - y[i + j];
            s[j] += d * d;
        }
    float sum = ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]));
    for (; i != n; ++i) {
        float d = x[i] - y[i];
        sum += d * d;
    }
    return sum;
}

inline float const* floats(uptr_t p) { return reinterpret_cast<float const*>(p); }

distance_punned_t unit_cos_portable(uptr_t a, uptr_t b, uptr_t n) { return distance_of(dot_portable(floats(a), floats(b), n)); }
// usearch's inner-product distance: 1 - dot, not clamped.
distance_punned_t ip_portable(uptr_t a, uptr_t b, uptr_t n) { return 1 - dot_portable(floats(a), floats(b), n); }
distance_punned_t l2sq_f32_portable(uptr_t a, uptr_t b, uptr_t n) { return l2sq_portable(floats(a), floats(b), n); }

#ifdef VECVAULT_F32_AVX2
#define VECVAULT_AVX2 __attribute__((target("avx2,fma")))

VECVAULT_AVX2 inline float sum_of(__m256 s) {
    __m128 h = _mm_add_ps(_mm256_castps256_ps128(s), _mm256_extractf128_ps(s, 1));
    h = _mm_add_ps(h, _mm_movehl_ps(h, h));
    h = _mm_add_ss(h, _mm_movehdup_ps(h));
    return _mm_cvtss_f32(h);
}

// Four chains of 8-wide fused multiply-adds: 32 floats per round (96 dims in three).
VECVAULT_AVX2 inline float dot_avx2(float const* x, float const* y, std::size_t n) {
    __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps(), s2 = _mm256_setzero_ps(), s3 = _mm256_setzero_ps();
    std::size_t i = 0;
    for (; i + 32 <= n; i += 32) {
        s0 = _mm256_fmadd_ps(_mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i), s0);
        s1 = _mm256_fmadd_ps(_mm256_loadu_ps(x + i + 8), _mm256_loadu_ps(y + i + 8), s1);
        s2 = _mm256_fmadd_ps(_mm256_loadu_ps(x + i + 16), _mm256_loadu_ps(y + i + 16), s2);
        s3 = _mm256_fmadd_ps(_mm256_loadu_ps(x + i + 24), _mm256_loadu_ps(y + i + 24), s3);
    }
    for (; i + 8 <= n; i += 8)
        s0 = _mm256_fmadd_ps(_mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i), s0);
    float dot = sum_of(_mm256_add_ps(_mm256_add_ps(s0, s1), _mm256_add_ps(s2, s3)));
    for (; i != n; ++i)
        dot += x[i] * y[i];
    return dot;
}

// The same chains over the differences.
VECVAULT_AVX2 inline float l2sq_avx2(float const* x, float const* y, std::size_t n) {
    __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps(), s2 = _mm256_setzero_ps(), s3 = _mm256_setzero_ps();
    std::size_t i = 0;
    for (; i + 32 <= n; i += 32) {
        __m256 d0 = _mm256_sub_ps(_mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i));
        __m256 d1 = _mm256_sub_ps(_mm256_loadu_ps(x + i + 8), _mm256_loadu_ps(y + i + 8));
        __m256 d2 = _mm256_sub_ps(_mm256_loadu_ps(x + i + 16), _mm256_loadu_ps(y + i + 16));
        __m256 d3 = _mm256_sub_ps(_mm256_loadu_ps(x + i + 24), _mm256_loadu_ps(y + i + 24));
        s0 = _mm256_fmadd_ps(d0, d0, s0);
        s1 = _mm256_fmadd_ps(d1, d1, s1);
        s2 = _mm256_fmadd_ps(d2, d2, s2);
        s3 = _mm256_fmadd_ps(d3, d3, s3);
    }
    for (; i + 8 <= n; i += 8) {
        __m256 d = _mm256_sub_ps(_mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i));
        s0 = _mm256_fmadd_ps(d, d, s0);
    }
    float sum = sum_of(_mm256_add_ps(_mm256_add_ps(s0, s1), _mm256_add_ps(s2, s3)));
    for (; i != n; ++i) {
        float d = x[i] - y[i];
        sum += d * d;
    }
    return sum;
}

VECVAULT_AVX2 distance_punned_t unit_cos_avx2(uptr_t a, uptr_t b, uptr_t n) { return distance_of(dot_avx2(floats(a), floats(b), n)); }
VECVAULT_AVX2 distance_punned_t ip_avx2(uptr_t a, uptr_t b, uptr_t n) { return 1 - dot_avx2(floats(a), floats(b), n); }
VECVAULT_AVX2 distance_punned_t l2sq_f32_avx2(uptr_t a, uptr_t b, uptr_t n) { return l2sq_avx2(floats(a), floats(b), n); }
#undef VECVAULT_AVX2

// VECVAULT_F32_KERNELS=portable forces the portable loops: a diagnostic, and
// how the tests run them on x64 (every arm64, macOS and Windows build uses them).
bool has_avx2() {
    static bool const yes = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
                            !portable_forced();
    return yes;
}
#endif

// The unit-vector kernel under the cosine kind, so the serialized header
// still says cosine and any reader (an older vecvault too) loads the same
// bytes as a cosine index with the same results.
metric_punned_t unit_metric(std::size_t dims) {
    auto kernel = &unit_cos_portable;
#ifdef VECVAULT_F32_AVX2
    if (has_avx2())
        kernel = &unit_cos_avx2;
#endif
    return metric_punned_t::stateless(dims, reinterpret_cast<std::uintptr_t>(kernel),
                                      metric_punned_signature_t::array_array_size_k, metric_kind_t::cos_k,
                                      scalar_kind_t::f32_k);
}

// Our float32 kernel for an l2sq or ip graph (own_kernel), under the same kind: the header is unchanged.
metric_punned_t own_metric(std::size_t dims, metric_kind_t metric) {
    bool ip = metric == metric_kind_t::ip_k;
    auto kernel = ip ? &ip_portable : &l2sq_f32_portable;
#ifdef VECVAULT_F32_AVX2
    if (has_avx2())
        kernel = ip ? &ip_avx2 : &l2sq_f32_avx2;
#endif
    return metric_punned_t::stateless(dims, reinterpret_cast<std::uintptr_t>(kernel),
                                      metric_punned_signature_t::array_array_size_k, metric, scalar_kind_t::f32_k);
}

// What `isa()` reports for these kernels (NumKong's name for AVX2 with FMA).
char const* own_kernel_isa() {
#ifdef VECVAULT_F32_AVX2
    if (has_avx2())
        return "haswell";
#endif
    return "serial";
}

} // namespace
