// Depthwise convolution of one channel on its input planes (kernels/input-planes.h, laid out for
// a single channel): on the wide grid every tap reads its input at a constant offset from the
// grid position, so a stride, padding or dilation costs nothing here. SparseConv's depthwise
// prologue computes its X this way, a strip of rows at a time, straight into the planes its
// sparse 1x1 product reads.
#pragma once

#include <cstddef>
#include <cstdint>

#include "kernels/activations/epilogue.h"

namespace ortsparse::kernels {

// One strip of a channel's depthwise output: for r < rows and j < width,
//   out[r * out_stride + j] = epilogue(bias + sum over t < taps of
//                                      tap_weights[t] * planes[r * plane_width + j +
//                                      tap_offsets[t]])
// with the epilogue's activation (no residual). Reads the planes only at those positions.
struct DepthwiseRows {
  const float* planes;
  size_t plane_width;
  const int32_t* tap_offsets;
  const float* tap_weights;
  size_t taps;
  size_t rows, width;
  float bias;
  float* out;
  size_t out_stride;
};
using DepthwiseRowsKernel = void(const DepthwiseRows& rows, const Epilogue& epilogue);
using DepthwiseRowsFn = DepthwiseRowsKernel*;
DepthwiseRowsKernel DepthwiseRowsAvx512, DepthwiseRowsAvx2, DepthwiseRowsScalar;

// The widest kernel DepthwiseRowsOfX takes.
inline constexpr size_t kMaxDirectKernelWidth = 16;

// The same read from X itself, which needs no planes, for strides 1 and 2: tap (i, j) of output
// row r reads input_rows[r * stride_height + i * dilation_height] (X's row, or a row of zeros
// where the padding is) at column c * stride_width + j * dilation_width - pad_left for output
// column c, only where that column is inside [0, in_width) (the padding's columns read nothing
// and add nothing).
struct DepthwiseRowsOfX {
  const float* const* input_rows;
  size_t in_width;
  size_t kernel_height, kernel_width;  // kernel_width <= kMaxDirectKernelWidth
  size_t stride_height, stride_width;  // 1 or 2
  size_t dilation_height, dilation_width;
  size_t pad_left;
  const float* tap_weights;  // [kernel_height * kernel_width]
  size_t rows, width;
  float bias;
  float* out;
  size_t out_stride;
};
using DepthwiseRowsOfXKernel = void(const DepthwiseRowsOfX& rows, const Epilogue& epilogue);
using DepthwiseRowsOfXFn = DepthwiseRowsOfXKernel*;
DepthwiseRowsOfXKernel DepthwiseRowsOfXAvx512, DepthwiseRowsOfXAvx2, DepthwiseRowsOfXScalar;

}  // namespace ortsparse::kernels
