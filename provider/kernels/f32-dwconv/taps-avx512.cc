#include "kernels/f32-spmm/simd-avx512.h"
// simd-avx512.h comes first: it includes the intrinsics under its diagnostic settings.
#include "kernels/f32-dwconv/taps-simd.h"

namespace ortsparse::kernels {

void DepthwiseTapsAvx512(const float* planes, const int32_t* tap_offsets, const float* tap_weights,
                         size_t taps, size_t positions, float* sums) {
  DepthwiseTapsWith<avx512::F32x16>(planes, tap_offsets, tap_weights, taps, positions, sums);
}

}  // namespace ortsparse::kernels
