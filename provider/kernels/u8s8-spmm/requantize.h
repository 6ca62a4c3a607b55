// The INT8 output stage: int32 sums to quantized outputs, as ONNX Runtime's MLAS requantizes them
// (QLinearConv, QLinearMatMul), so that results match it bit for bit.
#pragma once

#include <cstddef>
#include <cstdint>

namespace ortsparse::kernels {

struct Requantization {
  const int32_t* channel_offsets;  // per channel: bias minus the activation zero point's share
  const float* scales;             // per channel: x_scale * w_scale / y_scale
  int32_t zero_point;              // the output's
  // Output bounds (the type's, or tighter for a fused Relu/Clip) minus the zero point, as floats:
  // MLAS clamps the scaled value before rounding it.
  float min_minus_zero_point;
  float max_minus_zero_point;
};

// Both layouts compute, for r < rows and c < channels (channel_offsets and scales starting at the
// first of these channels), clamp(round_half_even(float(acc[c * acc_stride + r] + offset[c]) *
// scale[c])) + zero_point, and write the low byte of that int32, which is the uint8 or int8 value
// alike.
//
// Row-major output (SparseQGemm): into y[r * y_stride + c].
using RequantizeTileFn = void (*)(const int32_t* acc, size_t acc_stride, size_t rows,
                                  size_t channels, const Requantization& requantization,
                                  uint8_t* y, size_t y_stride);
// Channel-major output (SparseQConv's NCHW): into y[c * y_channel_stride + r].
using RequantizeChannelsFn = void (*)(const int32_t* acc, size_t acc_stride, size_t rows,
                                      size_t channels, const Requantization& requantization,
                                      uint8_t* y, size_t y_channel_stride);

void RequantizeTileScalar(const int32_t* acc, size_t acc_stride, size_t rows, size_t channels,
                          const Requantization& requantization, uint8_t* y, size_t y_stride);
void RequantizeChannelsScalar(const int32_t* acc, size_t acc_stride, size_t rows,
                              size_t channels, const Requantization& requantization, uint8_t* y,
                              size_t y_channel_stride);
// The AVX-512 row-major variant reads whole 16-row vectors: acc_stride is a multiple of 16.
void RequantizeTileAvx512(const int32_t* acc, size_t acc_stride, size_t rows, size_t channels,
                          const Requantization& requantization, uint8_t* y, size_t y_stride);
void RequantizeChannelsAvx512(const int32_t* acc, size_t acc_stride, size_t rows,
                              size_t channels, const Requantization& requantization, uint8_t* y,
                              size_t y_channel_stride);

}  // namespace ortsparse::kernels
