// Vectorized activations for AVX-512 files. Accuracy: relative error below 4e-6 in Gelu's tail
// (x < -3, where float rounding of x / sqrt(2) is amplified by e^(-x^2/2)), about 1e-6 or better
// elsewhere.
#pragma once

#include "kernels/f32-spmm/simd-avx512.h"

#include "kernels/activations/coefficients.h"
#include "kernels/activations/epilogue.h"

namespace ortsparse::kernels::avx512 {

template <size_t kCount>
inline __m512 Polynomial(__m512 x, const float (&c)[kCount]) {
  __m512 p = _mm512_set1_ps(c[kCount - 1]);
  for (size_t i = kCount - 1; i-- > 0;) p = _mm512_fmadd_ps(p, x, _mm512_set1_ps(c[i]));
  return p;
}

// e^(-x): every caller (sigmoid, SiLU, Gelu's erfc) wants a negative exponent, and negating
// here is free inside the reduction's FMAs.
inline __m512 ExpOfNegative(__m512 x) {
  namespace k = coefficients;
  x = _mm512_min_ps(_mm512_max_ps(x, _mm512_set1_ps(-k::kExpMaxExponent)),
                    _mm512_set1_ps(-k::kExpMinExponent));
  // Rounds to nearest in the default MXCSR mode, which ORT leaves as it is.
  const __m512 shift = _mm512_set1_ps(k::kRoundingShift);
  const __m512 n = _mm512_sub_ps(_mm512_fmadd_ps(x, _mm512_set1_ps(-k::kLog2E), shift), shift);
  const __m512 r = _mm512_fnmsub_ps(n, _mm512_set1_ps(k::kLn2), x);
  return _mm512_scalef_ps(Polynomial(r, k::kExp), n);
}

// numerator / (1 + e^(-x)): sigmoid's building block, written so that no step cancels. A true
// division: on this project's Xeon it costs less than the 14-bit estimate and its Newton step
// (a SiLU loop alone: 4.3 against 4.6 ns per vector).
inline __m512 DivideByOnePlusExpOfNegative(__m512 numerator, __m512 x) {
  return _mm512_div_ps(numerator, _mm512_add_ps(_mm512_set1_ps(1.0f), ExpOfNegative(x)));
}

// 0.5 * x * (1 + erf(z)), z = x / sqrt(2), with 1 + erf(z) taken from erfc(|z|): 2 - erfc for
// z > 0 and erfc itself for z <= 0, where it keeps the tail's relative accuracy.
inline __m512 Gelu(__m512 x) {
  namespace k = coefficients;
  const __m512 z = _mm512_mul_ps(x, _mm512_set1_ps(k::kSqrtHalf));
  const __m512 a = _mm512_min_ps(_mm512_abs_ps(z), _mm512_set1_ps(k::kErfcMaxInput));
  const __m512 one = _mm512_set1_ps(1.0f);
  const __m512 t = _mm512_div_ps(one, _mm512_fmadd_ps(a, _mm512_set1_ps(k::kErfcScale), one));
  const __m512 half_erfc = _mm512_mul_ps(
      _mm512_mul_ps(ExpOfNegative(_mm512_mul_ps(a, a)), Polynomial(t, k::kErfc)),
      _mm512_set1_ps(0.5f));
  const __mmask16 positive = _mm512_cmp_ps_mask(z, _mm512_setzero_ps(), _CMP_GT_OQ);
  const __m512 half_one_plus_erf = _mm512_mask_sub_ps(half_erfc, positive, one, half_erfc);
  return _mm512_mul_ps(x, half_one_plus_erf);
}

// 0.5 * x * (1 + tanh(u)) = x * sigmoid(2u), u = sqrt(2/pi) * (x + 0.044715 x^3).
inline __m512 GeluTanh(__m512 x) {
  namespace k = coefficients;
  const __m512 x2 = _mm512_mul_ps(x, x);
  const __m512 u = _mm512_mul_ps(
      _mm512_mul_ps(x, _mm512_set1_ps(k::kSqrtTwoOverPi)),
      _mm512_fmadd_ps(x2, _mm512_set1_ps(k::kGeluTanhCubic), _mm512_set1_ps(1.0f)));
  return DivideByOnePlusExpOfNegative(x, _mm512_add_ps(u, u));
}

// The activations' parameters, broadcast once per output block.
struct ActivationParams {
  __m512 clip_min, clip_max;
  __m512 alpha;  // leaky_relu's slope
};

inline ActivationParams BroadcastParams(const Epilogue& epilogue) {
  return {_mm512_set1_ps(epilogue.clip_min), _mm512_set1_ps(epilogue.clip_max),
          _mm512_set1_ps(epilogue.alpha)};
}

// x * clip(x / 6 + 1/2, 0, 1).
inline __m512 HardSwish(__m512 x) {
  namespace k = coefficients;
  const __m512 gate =
      _mm512_fmadd_ps(x, _mm512_set1_ps(k::kHardSwishSlope), _mm512_set1_ps(k::kHardSwishOffset));
  const __m512 unit_gate =
      _mm512_min_ps(_mm512_max_ps(gate, _mm512_setzero_ps()), _mm512_set1_ps(1.0f));
  return _mm512_mul_ps(x, unit_gate);
}

template <Activation kActivation>
inline __m512 Activate(__m512 x, const ActivationParams& params) {
  const __m512 zero = _mm512_setzero_ps();
  switch (kActivation) {
    case Activation::kNone:
      return x;
    case Activation::kRelu:
      return _mm512_max_ps(x, zero);
    case Activation::kClip:
      return _mm512_min_ps(_mm512_max_ps(x, params.clip_min), params.clip_max);
    case Activation::kGelu:
      return Gelu(x);
    case Activation::kGeluTanh:
      return GeluTanh(x);
    case Activation::kSigmoid:
      return DivideByOnePlusExpOfNegative(_mm512_set1_ps(1.0f), x);
    case Activation::kSilu:
      return DivideByOnePlusExpOfNegative(x, x);
    case Activation::kLeakyRelu:
      return _mm512_mask_mul_ps(x, _mm512_cmp_ps_mask(x, zero, _CMP_LT_OQ), x, params.alpha);
    case Activation::kHardSwish:
      return HardSwish(x);
  }
  return x;
}

}  // namespace ortsparse::kernels::avx512
