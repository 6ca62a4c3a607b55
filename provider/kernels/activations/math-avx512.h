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

inline __m512 Exp(__m512 x) {
  namespace k = coefficients;
  x = _mm512_min_ps(_mm512_max_ps(x, _mm512_set1_ps(k::kExpMinInput)),
                    _mm512_set1_ps(k::kExpMaxInput));
  const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(k::kLog2E)),
                                        _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(k::kLn2Hi), x);
  r = _mm512_fnmadd_ps(n, _mm512_set1_ps(k::kLn2Lo), r);
  return _mm512_scalef_ps(Polynomial(r, k::kExp), n);
}

// 1 / d from the 14-bit estimate and one Newton step: within 2 ulp, and several times cheaper
// than a division.
inline __m512 Reciprocal(__m512 d) {
  const __m512 r = _mm512_rcp14_ps(d);
  return _mm512_mul_ps(r, _mm512_fnmadd_ps(d, r, _mm512_set1_ps(2.0f)));
}

// numerator / (1 + e^exponent): sigmoid's building block, written so that no step cancels.
inline __m512 DivideByOnePlusExp(__m512 numerator, __m512 exponent) {
  return _mm512_mul_ps(numerator,
                       Reciprocal(_mm512_add_ps(_mm512_set1_ps(1.0f), Exp(exponent))));
}

// 0.5 * x * (1 + erf(z)), z = x / sqrt(2), with 1 + erf(z) taken from erfc(|z|): 2 - erfc for
// z > 0 and erfc itself for z <= 0, where it keeps the tail's relative accuracy.
inline __m512 Gelu(__m512 x) {
  namespace k = coefficients;
  const __m512 z = _mm512_mul_ps(x, _mm512_set1_ps(k::kSqrtHalf));
  const __m512 a = _mm512_min_ps(_mm512_abs_ps(z), _mm512_set1_ps(k::kErfcMaxInput));
  const __m512 t =
      Reciprocal(_mm512_fmadd_ps(a, _mm512_set1_ps(k::kErfcScale), _mm512_set1_ps(1.0f)));
  const __m512 half_erfc =
      _mm512_mul_ps(_mm512_mul_ps(Exp(_mm512_mul_ps(_mm512_sub_ps(_mm512_setzero_ps(), a), a)),
                                  Polynomial(t, k::kErfc)),
                    _mm512_set1_ps(0.5f));
  const __mmask16 positive = _mm512_cmp_ps_mask(z, _mm512_setzero_ps(), _CMP_GT_OQ);
  const __m512 half_one_plus_erf =
      _mm512_mask_sub_ps(half_erfc, positive, _mm512_set1_ps(1.0f), half_erfc);
  return _mm512_mul_ps(x, half_one_plus_erf);
}

// 0.5 * x * (1 + tanh(u)) = x * sigmoid(2u), u = sqrt(2/pi) * (x + 0.044715 x^3).
inline __m512 GeluTanh(__m512 x) {
  namespace k = coefficients;
  const __m512 x2 = _mm512_mul_ps(x, x);
  const __m512 u = _mm512_mul_ps(
      _mm512_mul_ps(x, _mm512_set1_ps(k::kSqrtTwoOverPi)),
      _mm512_fmadd_ps(x2, _mm512_set1_ps(k::kGeluTanhCubic), _mm512_set1_ps(1.0f)));
  return DivideByOnePlusExp(x, _mm512_mul_ps(u, _mm512_set1_ps(-2.0f)));
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
      return DivideByOnePlusExp(_mm512_set1_ps(1.0f), _mm512_sub_ps(zero, x));
    case Activation::kSilu:
      return DivideByOnePlusExp(x, _mm512_sub_ps(zero, x));
    case Activation::kLeakyRelu:
      return _mm512_mask_mul_ps(x, _mm512_cmp_ps_mask(x, zero, _CMP_LT_OQ), x, params.alpha);
    case Activation::kHardSwish:
      return HardSwish(x);
  }
  return x;
}

}  // namespace ortsparse::kernels::avx512
