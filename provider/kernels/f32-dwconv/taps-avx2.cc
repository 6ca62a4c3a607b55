#include "kernels/f32-dwconv/taps-simd.h"
#include "kernels/f32-spmm/simd-avx2.h"

namespace ortsparse::kernels {

void DepthwiseTapsAvx2(const float* planes, const int32_t* tap_offsets, const float* tap_weights,
                       size_t taps, size_t positions, float* sums) {
  DepthwiseTapsWith<avx2::F32x8>(planes, tap_offsets, tap_weights, taps, positions, sums);
}

}  // namespace ortsparse::kernels
