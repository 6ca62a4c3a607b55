// The AVX2 files' float vector (8 lanes) and math-simd.h's activations on it.
#pragma once

#include <immintrin.h>

#include <cstddef>

#include "kernels/activations/math-simd.h"

namespace ortsparse::kernels::avx2 {

struct F32x8 {
  using Reg = __m256;
  using Mask = __m256;  // all-ones lanes, as the compares make them
  static constexpr size_t kLanes = 8;
  static Reg Load(const float* p) { return _mm256_loadu_ps(p); }
  static Reg LoadAligned(const float* p) { return _mm256_load_ps(p); }
  static void StoreAligned(float* p, Reg v) { _mm256_store_ps(p, v); }
  static Reg Set1(float value) { return _mm256_set1_ps(value); }
  static Reg Zero() { return _mm256_setzero_ps(); }
  static Reg Add(Reg a, Reg b) { return _mm256_add_ps(a, b); }
  static Reg Sub(Reg a, Reg b) { return _mm256_sub_ps(a, b); }
  static Reg Mul(Reg a, Reg b) { return _mm256_mul_ps(a, b); }
  static Reg Div(Reg a, Reg b) { return _mm256_div_ps(a, b); }
  static Reg Min(Reg a, Reg b) { return _mm256_min_ps(a, b); }
  static Reg Max(Reg a, Reg b) { return _mm256_max_ps(a, b); }
  static Reg Abs(Reg a) { return _mm256_andnot_ps(_mm256_set1_ps(-0.0f), a); }
  static Reg Fmadd(Reg a, Reg b, Reg c) { return _mm256_fmadd_ps(a, b, c); }
  static Reg Fnmsub(Reg a, Reg b, Reg c) { return _mm256_fnmsub_ps(a, b, c); }
  static Mask Less(Reg a, Reg b) { return _mm256_cmp_ps(a, b, _CMP_LT_OQ); }
  static Mask Greater(Reg a, Reg b) { return _mm256_cmp_ps(a, b, _CMP_GT_OQ); }
  static Reg Select(Mask mask, Reg if_set, Reg otherwise) {
    return _mm256_blendv_ps(otherwise, if_set, mask);
  }
  // 2^n's bits: n's low 9 bits, which `shifted` holds at the bottom of its mantissa, moved into
  // the exponent field and biased; ExpOfNegative's clamp keeps n in [-126, 128], where 128
  // spells infinity.
  static Reg TimesPowerOfTwo(Reg p, Reg /*n*/, Reg shifted) {
    const __m256i exponent = _mm256_slli_epi32(_mm256_castps_si256(shifted), 23);
    return _mm256_mul_ps(
        p, _mm256_castsi256_ps(_mm256_add_epi32(exponent, _mm256_set1_epi32(127 << 23))));
  }
};

using ActivationParams = ActivationParamsOf<F32x8>;

inline ActivationParams BroadcastParams(const Epilogue& epilogue) {
  return BroadcastParamsOf<F32x8>(epilogue);
}

template <Activation kActivation>
inline __m256 Activate(__m256 x, const ActivationParams& params) {
  return ActivateOf<F32x8, kActivation>(x, params);
}

}  // namespace ortsparse::kernels::avx2
