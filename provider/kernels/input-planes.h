// The input planes of a direct convolution (SparseConv, SparseQConv), which needs no im2col.
//
// The input of one image is laid out once as planes: for each channel unit (a channel, or a quad
// of channels interleaved in one dword) and each stride phase (a, b) that some tap uses,
// plane(i, j) = X[c][i * stride_h + a - pad_top][j * stride_w + b - pad_left], the zero point in
// the padding. Output pixels are then taken on a "wide" grid of the planes' width: output
// (oh, ow) is grid position oh * plane_width + ow, and tap (c, kh, kw) reads it at grid position
// + offset(c, kh, kw), one constant per tap. So the input run a stored weight multiplies, for a
// tile of consecutive grid positions, is contiguous, and the tile kernels read it in place. Grid
// columns past the output width are computed and dropped; they cost (plane_width - OW) /
// plane_width of the arithmetic, the padding's and the kernel's reach.
#pragma once

#include <cstddef>

namespace ortsparse::kernels {

struct InputPlanes {
  size_t channels;  // channel units
  size_t in_height, in_width;
  size_t stride_height, stride_width;
  size_t pad_top, pad_left;
  // The stride phases some tap uses, increasing: row_phases[a] < stride_height.
  const size_t* row_phases;
  size_t row_phase_count;
  const size_t* column_phases;
  size_t column_phase_count;
  size_t plane_height, plane_width;
  // Planes start every plane_stride elements of 4 bytes (a whole number of cache lines, so that
  // the runs of taps at the start of a plane row load without splitting lines): [channel unit]
  // [row phase][column phase], each plane_height rows of plane_width, padding up to the next
  // plane and after the last one up to total_elements, which is as far as the wide grid's last
  // tile reads.
  size_t plane_stride;
  size_t total_elements;

  size_t ChannelElements() const { return row_phase_count * column_phase_count * plane_stride; }
};

}  // namespace ortsparse::kernels
