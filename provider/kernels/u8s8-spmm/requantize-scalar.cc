#include <algorithm>
#include <cmath>

#include "kernels/u8s8-spmm/requantize.h"

namespace ortsparse::kernels {
namespace {

uint8_t Requantize(int32_t acc, size_t c, const Requantization& rq) {
  const int32_t sum = acc + rq.channel_offsets[c];
  const float scaled = std::clamp(static_cast<float>(sum) * rq.scales[c], rq.min_minus_zero_point,
                                  rq.max_minus_zero_point);
  // nearbyint rounds half to even in the default rounding mode, as MLAS's cvtps2dq does.
  return static_cast<uint8_t>(static_cast<int32_t>(std::nearbyint(scaled)) + rq.zero_point);
}

}  // namespace

void RequantizeTileScalar(const int32_t* acc, size_t acc_stride, size_t rows, size_t channels,
                          const Requantization& requantization, uint8_t* y, size_t y_stride) {
  for (size_t r = 0; r < rows; ++r) {
    for (size_t c = 0; c < channels; ++c) {
      y[r * y_stride + c] = Requantize(acc[c * acc_stride + r], c, requantization);
    }
  }
}

void RequantizeChannelsScalar(const int32_t* acc, size_t acc_stride, size_t rows,
                              size_t channels, const Requantization& requantization, uint8_t* y,
                              size_t y_channel_stride) {
  for (size_t c = 0; c < channels; ++c) {
    for (size_t r = 0; r < rows; ++r) {
      y[c * y_channel_stride + r] = Requantize(acc[c * acc_stride + r], c, requantization);
    }
  }
}

}  // namespace ortsparse::kernels
