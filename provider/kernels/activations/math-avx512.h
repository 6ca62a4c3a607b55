// The AVX-512 files' float vector (16 lanes) and math-simd.h's activations on it.
#pragma once

#include <cstddef>

#include "kernels/activations/math-simd.h"
#include "kernels/f32-spmm/simd-avx512.h"

namespace ortsparse::kernels::avx512 {

struct F32x16 {
  using Reg = __m512;
  using Mask = __mmask16;
  static constexpr size_t kLanes = 16;
  static Reg Load(const float* p) { return _mm512_loadu_ps(p); }
  static Reg LoadAligned(const float* p) { return _mm512_load_ps(p); }
  static void StoreAligned(float* p, Reg v) { _mm512_store_ps(p, v); }
  static Reg Set1(float value) { return _mm512_set1_ps(value); }
  static Reg Zero() { return _mm512_setzero_ps(); }
  static Reg Add(Reg a, Reg b) { return _mm512_add_ps(a, b); }
  static Reg Sub(Reg a, Reg b) { return _mm512_sub_ps(a, b); }
  static Reg Mul(Reg a, Reg b) { return _mm512_mul_ps(a, b); }
  static Reg Div(Reg a, Reg b) { return _mm512_div_ps(a, b); }
  static Reg Min(Reg a, Reg b) { return _mm512_min_ps(a, b); }
  static Reg Max(Reg a, Reg b) { return _mm512_max_ps(a, b); }
  static Reg Abs(Reg a) { return _mm512_abs_ps(a); }
  static Reg Fmadd(Reg a, Reg b, Reg c) { return _mm512_fmadd_ps(a, b, c); }
  static Reg Fnmsub(Reg a, Reg b, Reg c) { return _mm512_fnmsub_ps(a, b, c); }
  static Mask Less(Reg a, Reg b) { return _mm512_cmp_ps_mask(a, b, _CMP_LT_OQ); }
  static Mask Greater(Reg a, Reg b) { return _mm512_cmp_ps_mask(a, b, _CMP_GT_OQ); }
  static Reg Select(Mask mask, Reg if_set, Reg otherwise) {
    return _mm512_mask_blend_ps(mask, otherwise, if_set);
  }
  // vscalefps multiplies by 2^n itself.
  static Reg TimesPowerOfTwo(Reg p, Reg n, Reg /*shifted*/) { return _mm512_scalef_ps(p, n); }
};

using ActivationParams = ActivationParamsOf<F32x16>;

inline ActivationParams BroadcastParams(const Epilogue& epilogue) {
  return BroadcastParamsOf<F32x16>(epilogue);
}

template <Activation kActivation>
inline __m512 Activate(__m512 x, const ActivationParams& params) {
  return ActivateOf<F32x16, kActivation>(x, params);
}

}  // namespace ortsparse::kernels::avx512
