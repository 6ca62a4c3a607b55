#include <algorithm>
#include <cmath>

#include "kernels/u8s8-spmm/requantize.h"

namespace ortsparse::kernels {
namespace {

// The output value, within the output's type.
int32_t RequantizedValue(int32_t acc, size_t c, const Requantization& rq) {
  const int32_t sum = acc + rq.channel_offsets[c];
  const float scaled = std::clamp(static_cast<float>(sum) * rq.scales[c], rq.min_minus_zero_point,
                                  rq.max_minus_zero_point);
  // nearbyint rounds half to even in the default rounding mode, as MLAS's cvtps2dq does.
  return static_cast<int32_t>(std::nearbyint(scaled)) + rq.zero_point;
}

uint8_t Requantize(int32_t acc, size_t c, const Requantization& rq) {
  return static_cast<uint8_t>(RequantizedValue(acc, c, rq));
}

}  // namespace

QuantizedAddition MakeQuantizedAddition(float first_scale, int32_t first_zero_point,
                                        float second_scale, int32_t second_zero_point,
                                        float sum_scale, int32_t sum_zero_point,
                                        bool residual_first) {
  const float first_ratio = first_scale / sum_scale;
  const float second_ratio = second_scale / sum_scale;
  // ORT's x86-64 build contracts MLAS's ratio_a * zp_a + ratio_b * zp_b into one fused
  // multiply-add over the rounded second product: tests/test_sparse_qconv_residual.py checks this
  // against ORT's QLinearAdd with both zero points nonzero.
  const float zero_points = std::fma(first_ratio, static_cast<float>(first_zero_point),
                                     second_ratio * static_cast<float>(second_zero_point));
  return {first_ratio, second_ratio, static_cast<float>(sum_zero_point) - zero_points,
          residual_first};
}

void StoreSumsTileScalar(const int32_t* acc, size_t acc_stride, size_t rows, size_t channels,
                         const int32_t* channel_offsets, int32_t* y, size_t y_stride) {
  for (size_t r = 0; r < rows; ++r) {
    for (size_t c = 0; c < channels; ++c) {
      y[r * y_stride + c] = acc[c * acc_stride + r] + channel_offsets[c];
    }
  }
}

void StoreSumsChannelsScalar(const int32_t* acc, size_t acc_stride, size_t rows, size_t channels,
                             const int32_t* channel_offsets, int32_t* y, size_t y_channel_stride) {
  for (size_t c = 0; c < channels; ++c) {
    for (size_t r = 0; r < rows; ++r) {
      y[c * y_channel_stride + r] = acc[c * acc_stride + r] + channel_offsets[c];
    }
  }
}

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

void RequantizeAddChannelsScalar(const int32_t* acc, size_t acc_stride, size_t rows,
                                 size_t channels, const Requantization& requantization,
                                 const QuantizedAddition& addition, bool is_signed,
                                 const uint8_t* residual, uint8_t* y, size_t y_channel_stride) {
  const float low = is_signed ? -128.0f : 0.0f;
  const float high = is_signed ? 127.0f : 255.0f;
  for (size_t c = 0; c < channels; ++c) {
    for (size_t r = 0; r < rows; ++r) {
      const size_t at = c * y_channel_stride + r;
      const float value = static_cast<float>(RequantizedValue(acc[c * acc_stride + r], c,
                                                              requantization));
      const uint8_t byte = residual[at];
      const int32_t residual_int =
          is_signed ? static_cast<int32_t>(static_cast<int8_t>(byte)) : static_cast<int32_t>(byte);
      const float residual_value = static_cast<float>(residual_int);
      const float first = addition.residual_first ? residual_value : value;
      const float second = addition.residual_first ? value : residual_value;
      const float sum = std::fma(first, addition.first_ratio,
                                 std::fma(second, addition.second_ratio, addition.offset));
      // Clamping the rounded value or the value before rounding is the same at integer bounds.
      const float rounded = std::clamp(std::nearbyint(sum), low, high);
      y[at] = static_cast<uint8_t>(static_cast<int32_t>(rounded));
    }
  }
}

}  // namespace ortsparse::kernels
