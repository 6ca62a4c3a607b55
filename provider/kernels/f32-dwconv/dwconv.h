// Depthwise convolution of one channel on its input planes (kernels/input-planes.h, laid out for
// a single channel): on the wide grid every tap reads its input at a constant offset from the
// grid position, so a stride, padding or dilation costs nothing here. SparseConv's depthwise
// prologue computes its X this way, a band of rows at a time, straight into the planes its sparse
// 1x1 product reads.
#pragma once

#include <cstddef>
#include <cstdint>

namespace ortsparse::kernels {

// Grid positions are summed in whole vectors of up to this many: `sums` and the planes' reads
// reach the positions rounded up to it.
inline constexpr size_t kDepthwiseMaxLanes = 16;

// sums[p] = sum over t < taps of tap_weights[t] * planes[p + tap_offsets[t]], for p < positions
// rounded up to the ISA's vector (at most kDepthwiseMaxLanes). `sums` is 64-byte aligned.
using DepthwiseTapsKernel = void(const float* planes, const int32_t* tap_offsets,
                                 const float* tap_weights, size_t taps, size_t positions,
                                 float* sums);
using DepthwiseTapsFn = DepthwiseTapsKernel*;
DepthwiseTapsKernel DepthwiseTapsAvx512, DepthwiseTapsAvx2, DepthwiseTapsScalar;

}  // namespace ortsparse::kernels
