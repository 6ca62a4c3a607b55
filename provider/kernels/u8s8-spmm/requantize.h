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

  // The same for the channels from `channel` on, as a tile of them sees its arrays.
  Requantization FromChannel(size_t channel) const {
    Requantization from = *this;
    from.channel_offsets += channel;
    from.scales += channel;
    return from;
  }
};

// A residual Add after the requantization (SparseQConv with R), as ONNX Runtime's QLinearAdd
// computes it on x86-64 (MLAS's AVX2 kernel, which ORT also runs for a DequantizeLinear pair ->
// Add -> QuantizeLinear), so that the fused Add gives ORT's bytes: each operand is scaled by its
// scale over the sum's with a fused multiply-add, the second operand's first, onto one constant
// that holds the three zero points, and the result is rounded once, half to even, and saturated to
// the 8-bit type.
struct QuantizedAddition {
  float first_ratio;   // first operand's scale / the sum's scale
  float second_ratio;  // second operand's scale / the sum's scale
  float offset;        // the sum's zero point minus both operands' zero points, scaled
  bool residual_first;  // R is the Add's first operand, the requantized output its second
};

// The addition of QLinearAdd(first: first_scale, first_zero_point; second: ...; sum: ...).
QuantizedAddition MakeQuantizedAddition(float first_scale, int32_t first_zero_point,
                                        float second_scale, int32_t second_zero_point,
                                        float sum_scale, int32_t sum_zero_point,
                                        bool residual_first);

// Both layouts compute, for r < rows and c < channels (channel_offsets and scales starting at the
// first of these channels), clamp(round_half_even(float(acc[c * acc_stride + r] + offset[c]) *
// scale[c])) + zero_point, and write the low byte of that int32, which is the uint8 or int8 value
// alike.
//
// Row-major output (SparseQGemm): into y[r * y_stride + c].
using RequantizeTileKernel = void(const int32_t* acc, size_t acc_stride, size_t rows,
                                  size_t channels, const Requantization& requantization, uint8_t* y,
                                  size_t y_stride);
using RequantizeTileFn = RequantizeTileKernel*;
// The AVX-512 variant reads whole 16-row vectors: acc_stride is a multiple of 16.
RequantizeTileKernel RequantizeTileScalar, RequantizeTileAvx2, RequantizeTileAvx512;
// Channel-major output (SparseQConv's NCHW): into y[c * y_channel_stride + r].
using RequantizeChannelsKernel = void(const int32_t* acc, size_t acc_stride, size_t rows,
                                      size_t channels, const Requantization& requantization,
                                      uint8_t* y, size_t y_channel_stride);
using RequantizeChannelsFn = RequantizeChannelsKernel*;
RequantizeChannelsKernel RequantizeChannelsScalar, RequantizeChannelsAvx2, RequantizeChannelsAvx512;

// The channel-major layout followed by the residual Add: y[c * y_channel_stride + r] = the sum of
// the requantized value and residual[c * y_channel_stride + r], saturated to the type of
// `is_signed` (int8, else uint8). The requantization's zero point and bounds are the requantized
// operand's.
using RequantizeAddChannelsKernel = void(const int32_t* acc, size_t acc_stride, size_t rows,
                                         size_t channels, const Requantization& requantization,
                                         const QuantizedAddition& addition, bool is_signed,
                                         const uint8_t* residual, uint8_t* y,
                                         size_t y_channel_stride);
using RequantizeAddChannelsFn = RequantizeAddChannelsKernel*;
RequantizeAddChannelsKernel RequantizeAddChannelsScalar, RequantizeAddChannelsAvx2,
    RequantizeAddChannelsAvx512;

// No requantization (SparseMatMulInteger's int32 output): y[r * y_stride + c] =
// acc[c * acc_stride + r] + channel_offsets[c], the exact sums row-major.
using StoreSumsTileKernel = void(const int32_t* acc, size_t acc_stride, size_t rows,
                                 size_t channels, const int32_t* channel_offsets, int32_t* y,
                                 size_t y_stride);
using StoreSumsTileFn = StoreSumsTileKernel*;
// acc_stride is a multiple of 16 for the AVX-512 variant, as for RequantizeTileAvx512.
StoreSumsTileKernel StoreSumsTileScalar, StoreSumsTileAvx512, StoreSumsTileAvx2;

// The same sums channel-major (SparseConvInteger's NCHW): y[c * y_channel_stride + r].
using StoreSumsChannelsKernel = void(const int32_t* acc, size_t acc_stride, size_t rows,
                                     size_t channels, const int32_t* channel_offsets, int32_t* y,
                                     size_t y_channel_stride);
using StoreSumsChannelsFn = StoreSumsChannelsKernel*;
StoreSumsChannelsKernel StoreSumsChannelsScalar, StoreSumsChannelsAvx512, StoreSumsChannelsAvx2;

}  // namespace ortsparse::kernels
