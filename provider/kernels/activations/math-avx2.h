// math-simd.h's activations on the AVX2 files' float vector (simd-avx2.h's F32x8).
#pragma once

#include "kernels/activations/math-simd.h"
#include "kernels/f32-spmm/simd-avx2.h"

namespace ortsparse::kernels::avx2 {

using ActivationParams = ActivationParamsOf<F32x8>;

inline ActivationParams BroadcastParams(const Epilogue& epilogue) {
  return BroadcastParamsOf<F32x8>(epilogue);
}

template <Activation kActivation>
inline __m256 Activate(__m256 x, const ActivationParams& params) {
  return ActivateOf<F32x8, kActivation>(x, params);
}

}  // namespace ortsparse::kernels::avx2
