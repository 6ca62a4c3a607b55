#include "kernels/u8s8-spmm/dequantize.h"

namespace ortsparse::kernels {
namespace {

float Dequantized(int32_t acc, size_t c, const Dequantization& dq) {
  return static_cast<float>(acc + dq.channel_offsets[c]) * dq.scales[c] + dq.bias[c];
}

}  // namespace

void DequantizeTile(const int32_t* acc, size_t acc_stride, size_t rows, size_t channels,
                    const Dequantization& dequantization, float* y, size_t y_stride) {
  for (size_t r = 0; r < rows; ++r) {
    for (size_t c = 0; c < channels; ++c) {
      y[r * y_stride + c] = Dequantized(acc[c * acc_stride + r], c, dequantization);
    }
  }
}

void DequantizeChannels(const int32_t* acc, size_t acc_stride, size_t rows, size_t channels,
                        const Dequantization& dequantization, float* y, size_t y_channel_stride) {
  for (size_t c = 0; c < channels; ++c) {
    for (size_t r = 0; r < rows; ++r) {
      y[c * y_channel_stride + r] = Dequantized(acc[c * acc_stride + r], c, dequantization);
    }
  }
}

}  // namespace ortsparse::kernels
