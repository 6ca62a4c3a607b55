// math-simd.h's activations on the AVX-512 files' float vector (simd-avx512.h's F32x16).
#pragma once

#include "kernels/activations/math-simd.h"
#include "kernels/f32-spmm/simd-avx512.h"

namespace ortsparse::kernels::avx512 {

using ActivationParams = ActivationParamsOf<F32x16>;

inline ActivationParams BroadcastParams(const Epilogue& epilogue) {
  return BroadcastParamsOf<F32x16>(epilogue);
}

template <Activation kActivation>
inline __m512 Activate(__m512 x, const ActivationParams& params) {
  return ActivateOf<F32x16, kActivation>(x, params);
}

}  // namespace ortsparse::kernels::avx512
