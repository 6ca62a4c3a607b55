#include <cstddef>
#include <cstdint>

#include "kernels/f32-dwconv/dwconv.h"

namespace ortsparse::kernels {

void DepthwiseTapsScalar(const float* planes, const int32_t* tap_offsets, const float* tap_weights,
                         size_t taps, size_t positions, float* sums) {
  for (size_t p = 0; p < positions; ++p) {
    float sum = 0.0f;
    for (size_t t = 0; t < taps; ++t) sum += tap_weights[t] * planes[p + tap_offsets[t]];
    sums[p] = sum;
  }
}

}  // namespace ortsparse::kernels
