#include "kernels/u8s8-spmm/requantize.h"

#include <algorithm>
#include <cmath>

namespace ortsparse::kernels {

void RequantizeTileScalar(const int32_t* acc, size_t acc_stride, size_t rows, size_t channels,
                          const Requantization& requantization, uint8_t* y, size_t y_stride) {
  const Requantization& rq = requantization;
  for (size_t r = 0; r < rows; ++r) {
    uint8_t* y_row = y + r * y_stride;
    for (size_t c = 0; c < channels; ++c) {
      const int32_t sum = acc[c * acc_stride + r] + rq.channel_offsets[c];
      const float scaled = std::clamp(static_cast<float>(sum) * rq.scales[c],
                                      rq.min_minus_zero_point, rq.max_minus_zero_point);
      // nearbyint rounds half to even in the default rounding mode, as MLAS's cvtps2dq does.
      const int32_t quantized = static_cast<int32_t>(std::nearbyint(scaled)) + rq.zero_point;
      y_row[c] = static_cast<uint8_t>(quantized);
    }
  }
}

}  // namespace ortsparse::kernels
