// The float output stage of the INT8 ops, where the graph dequantizes the product instead of
// quantizing it again (DequantizeLinear -> Conv/MatMul/Gemm -> float consumers): the exact int32
// sums scaled by x_scale * w_scale[n], plus a float bias.
#pragma once

#include <cstddef>
#include <cstdint>

namespace ortsparse::kernels {

struct Dequantization {
  const int32_t* channel_offsets;  // per channel: minus the activation zero point's share
  const float* scales;             // per channel: x_scale * w_scale
  const float* bias;               // per channel, added after the scaling

  // The same for the channels from `channel` on, as a tile of them sees its arrays.
  Dequantization FromChannel(size_t channel) const {
    return {channel_offsets + channel, scales + channel, bias + channel};
  }
};

// Both compute, for r < rows and c < channels (the dequantization's arrays starting at the first
// of these channels), float(acc[c * acc_stride + r] + channel_offsets[c]) * scales[c] + bias[c].
// Portable: this stage writes each output once and is bound by memory, not arithmetic.
//
// Row-major output (SparseQGemm): into y[r * y_stride + c].
void DequantizeTile(const int32_t* acc, size_t acc_stride, size_t rows, size_t channels,
                    const Dequantization& dequantization, float* y, size_t y_stride);
// Channel-major output (SparseQConv's NCHW): into y[c * y_channel_stride + r].
void DequantizeChannels(const int32_t* acc, size_t acc_stride, size_t rows, size_t channels,
                        const Dequantization& dequantization, float* y, size_t y_channel_stride);

}  // namespace ortsparse::kernels
