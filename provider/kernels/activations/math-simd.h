// The vectorized activations, written once over a float vector's operations and compiled in each
// ISA's files with their flags (simd-avx2.h's vector: 8 lanes, simd-avx512.h's: 16). Accuracy:
// relative error below 4e-6 in Gelu's tail (x < -3, where float rounding of x / sqrt(2) is
// amplified by e^(-x^2/2)), about 1e-6 or better elsewhere.
//
// V supplies: Reg and Mask; Set1, Zero; Add, Sub, Mul, Div, Min, Max, Abs; Fmadd(a, b, c) = a*b+c,
// Fnmsub(a, b, c) = -(a*b)-c; Less(a, b) and Greater(a, b) as a Mask; Select(mask, if_set,
// otherwise); TimesPowerOfTwo(p, n, shifted) = p * 2^n, n integral (`shifted` holds n in its low
// mantissa bits, as ExpOfNegative makes it).
#pragma once

#include <cstddef>

#include "kernels/activations/coefficients.h"
#include "kernels/activations/epilogue.h"

namespace ortsparse::kernels {
// Internal linkage: each ISA's instantiations stay in the files compiled with its flags.
namespace {

template <class V, size_t kCount>
inline typename V::Reg Polynomial(typename V::Reg x, const float (&c)[kCount]) {
  typename V::Reg p = V::Set1(c[kCount - 1]);
  for (size_t i = kCount - 1; i-- > 0;) p = V::Fmadd(p, x, V::Set1(c[i]));
  return p;
}

// e^(-x): every caller (sigmoid, SiLU, Gelu's erfc) wants a negative exponent, and negating
// here is free inside the reduction's FMAs.
template <class V>
inline typename V::Reg ExpOfNegative(typename V::Reg x) {
  namespace k = coefficients;
  using Reg = typename V::Reg;
  x = V::Min(V::Max(x, V::Set1(-k::kExpMaxExponent)), V::Set1(-k::kExpMinExponent));
  // Rounds to nearest in the default MXCSR mode, which ORT leaves as it is.
  const Reg shift = V::Set1(k::kRoundingShift);
  const Reg shifted = V::Fmadd(x, V::Set1(-k::kLog2E), shift);
  const Reg n = V::Sub(shifted, shift);
  const Reg r = V::Fnmsub(n, V::Set1(k::kLn2), x);
  return V::TimesPowerOfTwo(Polynomial<V>(r, k::kExp), n, shifted);
}

// numerator / (1 + e^(-x)): sigmoid's building block, written so that no step cancels. A true
// division: on the project's first Xeon it cost less than the 14-bit estimate and its Newton step
// (a SiLU loop alone: 4.3 against 4.6 ns per vector).
template <class V>
inline typename V::Reg DivideByOnePlusExpOfNegative(typename V::Reg numerator,
                                                    typename V::Reg x) {
  return V::Div(numerator, V::Add(V::Set1(1.0f), ExpOfNegative<V>(x)));
}

// 0.5 * x * (1 + erf(z)), z = x / sqrt(2), with 1 + erf(z) taken from erfc(|z|): 2 - erfc for
// z > 0 and erfc itself for z <= 0, where it keeps the tail's relative accuracy.
template <class V>
inline typename V::Reg Gelu(typename V::Reg x) {
  namespace k = coefficients;
  using Reg = typename V::Reg;
  const Reg z = V::Mul(x, V::Set1(k::kSqrtHalf));
  const Reg a = V::Min(V::Abs(z), V::Set1(k::kErfcMaxInput));
  const Reg one = V::Set1(1.0f);
  const Reg t = V::Div(one, V::Fmadd(a, V::Set1(k::kErfcScale), one));
  const Reg half_erfc =
      V::Mul(V::Mul(ExpOfNegative<V>(V::Mul(a, a)), Polynomial<V>(t, k::kErfc)), V::Set1(0.5f));
  const Reg half_one_plus_erf =
      V::Select(V::Greater(z, V::Zero()), V::Sub(one, half_erfc), half_erfc);
  return V::Mul(x, half_one_plus_erf);
}

// 0.5 * x * (1 + tanh(u)) = x * sigmoid(2u), u = sqrt(2/pi) * (x + 0.044715 x^3).
template <class V>
inline typename V::Reg GeluTanh(typename V::Reg x) {
  namespace k = coefficients;
  using Reg = typename V::Reg;
  const Reg x2 = V::Mul(x, x);
  const Reg u = V::Mul(V::Mul(x, V::Set1(k::kSqrtTwoOverPi)),
                       V::Fmadd(x2, V::Set1(k::kGeluTanhCubic), V::Set1(1.0f)));
  return DivideByOnePlusExpOfNegative<V>(x, V::Add(u, u));
}

// x * clip(x / 6 + 1/2, 0, 1).
template <class V>
inline typename V::Reg HardSwish(typename V::Reg x) {
  namespace k = coefficients;
  const typename V::Reg gate =
      V::Fmadd(x, V::Set1(k::kHardSwishSlope), V::Set1(k::kHardSwishOffset));
  return V::Mul(x, V::Min(V::Max(gate, V::Zero()), V::Set1(1.0f)));
}

// The activations' parameters, broadcast once per output block.
template <class V>
struct ActivationParamsOf {
  typename V::Reg clip_min, clip_max;
  typename V::Reg alpha;  // leaky_relu's slope
};

template <class V>
inline ActivationParamsOf<V> BroadcastParamsOf(const Epilogue& epilogue) {
  return {V::Set1(epilogue.clip_min), V::Set1(epilogue.clip_max), V::Set1(epilogue.alpha)};
}

template <class V, Activation kActivation>
inline typename V::Reg ActivateOf(typename V::Reg x, const ActivationParamsOf<V>& params) {
  switch (kActivation) {
    case Activation::kNone:
      return x;
    case Activation::kRelu:
      return V::Max(x, V::Zero());
    case Activation::kClip:
      return V::Min(V::Max(x, params.clip_min), params.clip_max);
    case Activation::kGelu:
      return Gelu<V>(x);
    case Activation::kGeluTanh:
      return GeluTanh<V>(x);
    case Activation::kSigmoid:
      return DivideByOnePlusExpOfNegative<V>(V::Set1(1.0f), x);
    case Activation::kSilu:
      return DivideByOnePlusExpOfNegative<V>(x, x);
    case Activation::kLeakyRelu:
      return V::Select(V::Less(x, V::Zero()), V::Mul(x, params.alpha), x);
    case Activation::kHardSwish:
      return HardSwish<V>(x);
  }
  return x;
}

}  // namespace
}  // namespace ortsparse::kernels
