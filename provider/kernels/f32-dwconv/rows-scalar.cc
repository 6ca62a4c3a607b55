#include <cstddef>
#include <vector>

#include "kernels/f32-dwconv/dwconv.h"

namespace ortsparse::kernels {

// Sums a row at a time, then finishes it with the scalar output stage.
void DepthwiseRowsScalar(const DepthwiseRows& s, const Epilogue& epilogue) {
  std::vector<float> sums(s.width);
  for (size_t r = 0; r < s.rows; ++r) {
    const float* row = s.planes + r * s.plane_width;
    for (size_t j = 0; j < s.width; ++j) {
      float sum = 0.0f;
      for (size_t t = 0; t < s.taps; ++t) sum += s.tap_weights[t] * row[j + s.tap_offsets[t]];
      sums[j] = sum;
    }
    const OutputBlock out = {s.out + r * s.out_stride, nullptr, &s.bias, 0};
    StoreChannelRowsScalar(sums.data(), 0, s.width, 1, out, epilogue);
  }
}

void DepthwiseRowsOfXScalar(const DepthwiseRowsOfX& s, const Epilogue& epilogue) {
  std::vector<float> sums(s.width);
  for (size_t r = 0; r < s.rows; ++r) {
    for (size_t j = 0; j < s.width; ++j) {
      float sum = 0.0f;
      for (size_t ki = 0; ki < s.kernel_height; ++ki) {
        const float* row = s.input_rows[r * s.stride_height + ki * s.dilation_height];
        for (size_t kj = 0; kj < s.kernel_width; ++kj) {
          const size_t column = j * s.stride_width + kj * s.dilation_width;
          if (column < s.pad_left || column - s.pad_left >= s.in_width) continue;
          sum += s.tap_weights[ki * s.kernel_width + kj] * row[column - s.pad_left];
        }
      }
      sums[j] = sum;
    }
    const OutputBlock out = {s.out + r * s.out_stride, nullptr, &s.bias, 0};
    StoreChannelRowsScalar(sums.data(), 0, s.width, 1, out, epilogue);
  }
}

}  // namespace ortsparse::kernels
