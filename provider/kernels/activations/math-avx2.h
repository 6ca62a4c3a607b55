// Vectorized activations for AVX2 files; same algorithms and accuracy as math-avx512.h.
#pragma once

#include <immintrin.h>

#include "kernels/activations/coefficients.h"
#include "kernels/activations/epilogue.h"

namespace ortsparse::kernels::avx2 {

template <size_t kCount>
inline __m256 Polynomial(__m256 x, const float (&c)[kCount]) {
  __m256 p = _mm256_set1_ps(c[kCount - 1]);
  for (size_t i = kCount - 1; i-- > 0;) p = _mm256_fmadd_ps(p, x, _mm256_set1_ps(c[i]));
  return p;
}

inline __m256 ExpOfNegative(__m256 x) {
  namespace k = coefficients;
  x = _mm256_min_ps(_mm256_max_ps(x, _mm256_set1_ps(-k::kExpMaxExponent)),
                    _mm256_set1_ps(-k::kExpMinExponent));
  const __m256 shift = _mm256_set1_ps(k::kRoundingShift);
  const __m256 shifted = _mm256_fmadd_ps(x, _mm256_set1_ps(-k::kLog2E), shift);
  const __m256 n = _mm256_sub_ps(shifted, shift);
  const __m256 r = _mm256_fnmsub_ps(n, _mm256_set1_ps(k::kLn2), x);
  // 2^n's bits: n's low 9 bits, which `shifted` holds at the bottom of its mantissa, moved into
  // the exponent field and biased; the clamp keeps n in [-126, 128], where 128 spells infinity.
  const __m256i exponent = _mm256_slli_epi32(_mm256_castps_si256(shifted), 23);
  const __m256 scale =
      _mm256_castsi256_ps(_mm256_add_epi32(exponent, _mm256_set1_epi32(127 << 23)));
  return _mm256_mul_ps(Polynomial(r, k::kExp), scale);
}

inline __m256 DivideByOnePlusExpOfNegative(__m256 numerator, __m256 x) {
  return _mm256_div_ps(numerator, _mm256_add_ps(_mm256_set1_ps(1.0f), ExpOfNegative(x)));
}

inline __m256 Gelu(__m256 x) {
  namespace k = coefficients;
  const __m256 z = _mm256_mul_ps(x, _mm256_set1_ps(k::kSqrtHalf));
  const __m256 a = _mm256_min_ps(_mm256_andnot_ps(_mm256_set1_ps(-0.0f), z),
                                 _mm256_set1_ps(k::kErfcMaxInput));
  const __m256 one = _mm256_set1_ps(1.0f);
  const __m256 t = _mm256_div_ps(one, _mm256_fmadd_ps(a, _mm256_set1_ps(k::kErfcScale), one));
  const __m256 half_erfc = _mm256_mul_ps(
      _mm256_mul_ps(ExpOfNegative(_mm256_mul_ps(a, a)), Polynomial(t, k::kErfc)),
      _mm256_set1_ps(0.5f));
  const __m256 positive = _mm256_cmp_ps(z, _mm256_setzero_ps(), _CMP_GT_OQ);
  const __m256 half_one_plus_erf =
      _mm256_blendv_ps(half_erfc, _mm256_sub_ps(one, half_erfc), positive);
  return _mm256_mul_ps(x, half_one_plus_erf);
}

inline __m256 GeluTanh(__m256 x) {
  namespace k = coefficients;
  const __m256 x2 = _mm256_mul_ps(x, x);
  const __m256 u = _mm256_mul_ps(
      _mm256_mul_ps(x, _mm256_set1_ps(k::kSqrtTwoOverPi)),
      _mm256_fmadd_ps(x2, _mm256_set1_ps(k::kGeluTanhCubic), _mm256_set1_ps(1.0f)));
  return DivideByOnePlusExpOfNegative(x, _mm256_add_ps(u, u));
}

// The activations' parameters, broadcast once per output block.
struct ActivationParams {
  __m256 clip_min, clip_max;
  __m256 alpha;  // leaky_relu's slope
};

inline ActivationParams BroadcastParams(const Epilogue& epilogue) {
  return {_mm256_set1_ps(epilogue.clip_min), _mm256_set1_ps(epilogue.clip_max),
          _mm256_set1_ps(epilogue.alpha)};
}

// x * clip(x / 6 + 1/2, 0, 1).
inline __m256 HardSwish(__m256 x) {
  namespace k = coefficients;
  const __m256 gate =
      _mm256_fmadd_ps(x, _mm256_set1_ps(k::kHardSwishSlope), _mm256_set1_ps(k::kHardSwishOffset));
  const __m256 unit_gate =
      _mm256_min_ps(_mm256_max_ps(gate, _mm256_setzero_ps()), _mm256_set1_ps(1.0f));
  return _mm256_mul_ps(x, unit_gate);
}

template <Activation kActivation>
inline __m256 Activate(__m256 x, const ActivationParams& params) {
  const __m256 zero = _mm256_setzero_ps();
  switch (kActivation) {
    case Activation::kNone:
      return x;
    case Activation::kRelu:
      return _mm256_max_ps(x, zero);
    case Activation::kClip:
      return _mm256_min_ps(_mm256_max_ps(x, params.clip_min), params.clip_max);
    case Activation::kGelu:
      return Gelu(x);
    case Activation::kGeluTanh:
      return GeluTanh(x);
    case Activation::kSigmoid:
      return DivideByOnePlusExpOfNegative(_mm256_set1_ps(1.0f), x);
    case Activation::kSilu:
      return DivideByOnePlusExpOfNegative(x, x);
    case Activation::kLeakyRelu:
      return _mm256_blendv_ps(x, _mm256_mul_ps(x, params.alpha),
                              _mm256_cmp_ps(x, zero, _CMP_LT_OQ));
    case Activation::kHardSwish:
      return HardSwish(x);
  }
  return x;
}

}  // namespace ortsparse::kernels::avx2
