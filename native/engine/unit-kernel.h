// Cosine over float32 as 1 - dot product of unit vectors. The engine scales
// every vector it adds or searches for to unit length (normalize_rows), and
// while every stored vector is unit length compares them with unit_metric:
// one float32 dot product with independent accumulators, against usearch's
// cosine kernel, which widens to float64 and keeps three sums and a square
// root per pair (see docs/performance.md, "Tenth round"). Scaling changes no
// cosine distance, so usearch's own cosine kernel stays right for any mix of
// scaled and unscaled vectors (bytes written before this).
#pragma once

#include "usearch.h"

#include <cmath>
#include <cstddef>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define VECVAULT_UNIT_AVX2 1
#endif

namespace {

using namespace unum::usearch;

bool normalizes(metric_kind_t metric, scalar_kind_t scalar) {
    return metric == metric_kind_t::cos_k && scalar == scalar_kind_t::f32_k;
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

// 1 - dot, never below 0 (rounding can take the dot of a vector with itself
// past 1), as usearch's cosine kernel clamps. A zero vector (which the API
// refuses under cosine) is at distance 1 from everything, itself included.
inline distance_punned_t distance_of(float dot) {
    float distance = 1 - dot;
    return distance > 0 ? distance : 0;
}

// Eight independent sums: no float reordering is needed for the compiler to
// keep them in vector registers, and the additions do not wait on each other.
distance_punned_t unit_cos_portable(uptr_t a, uptr_t b, uptr_t n) {
    auto const* x = reinterpret_cast<float const*>(a);
    auto const* y = reinterpret_cast<float const*>(b);
    float s[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    std::size_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (std::size_t j = 0; j != 8; ++j)
            s[j] += x[i + j] * y[i + j];
    float dot = ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]));
    for (; i != n; ++i)
        dot += x[i] * y[i];
    return distance_of(dot);
}

#ifdef VECVAULT_UNIT_AVX2
// Four chains of 8-wide fused multiply-adds: 32 floats per round (96 dims in three).
__attribute__((target("avx2,fma"))) distance_punned_t unit_cos_avx2(uptr_t a, uptr_t b, uptr_t n) {
    auto const* x = reinterpret_cast<float const*>(a);
    auto const* y = reinterpret_cast<float const*>(b);
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
    __m256 s = _mm256_add_ps(_mm256_add_ps(s0, s1), _mm256_add_ps(s2, s3));
    __m128 h = _mm_add_ps(_mm256_castps256_ps128(s), _mm256_extractf128_ps(s, 1));
    h = _mm_add_ps(h, _mm_movehl_ps(h, h));
    h = _mm_add_ss(h, _mm_movehdup_ps(h));
    float dot = _mm_cvtss_f32(h);
    for (; i != n; ++i)
        dot += x[i] * y[i];
    return distance_of(dot);
}

bool has_avx2() {
    static bool const yes = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    return yes;
}
#endif

// The unit-vector kernel under the cosine kind, so the serialized header
// still says cosine and any reader (an older vecvault too) loads the same
// bytes as a cosine index with the same results.
metric_punned_t unit_metric(std::size_t dims) {
    auto kernel = &unit_cos_portable;
#ifdef VECVAULT_UNIT_AVX2
    if (has_avx2())
        kernel = &unit_cos_avx2;
#endif
    return metric_punned_t::stateless(dims, reinterpret_cast<std::uintptr_t>(kernel),
                                      metric_punned_signature_t::array_array_size_k, metric_kind_t::cos_k,
                                      scalar_kind_t::f32_k);
}

// What `isa()` reports for that kernel (NumKong's name for AVX2 with FMA).
char const* unit_metric_isa() {
#ifdef VECVAULT_UNIT_AVX2
    if (has_avx2())
        return "haswell";
#endif
    return "serial";
}

} // namespace
