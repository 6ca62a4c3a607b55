// Direct sparse convolution: SparseConv without im2col.
//
// The input of one image is laid out once as planes: for each channel and each stride phase
// (a, b) that some tap uses, plane(i, j) = X[c][i * stride_h + a - pad_top][j * stride_w + b -
// pad_left], zero in the padding. Output pixels are then taken on a "wide" grid of the planes'
// width: output (oh, ow) is grid position oh * plane_width + ow, and tap (c, kh, kw) reads it at
// grid position + offset(c, kh, kw), one constant per tap. So the input run a stored weight
// multiplies, for a tile of consecutive grid positions, is contiguous: the tile kernels read it
// in place (f32-spmm's InputOffsets addressing), with no per-tile packing at all. Grid columns
// past the output width are computed and dropped; they cost (plane_width - OW) / plane_width of
// the arithmetic, the padding's and the kernel's reach.
//
// A stride-1 unpadded convolution needs no planes: X is them (the operator reads it in place when
// the wide grid's last tile stays inside X).
#pragma once

#include <cstddef>

namespace ortsparse::kernels {

struct InputPlanes {
  size_t channels;
  size_t in_height, in_width;
  size_t stride_height, stride_width;
  size_t pad_top, pad_left;
  // The stride phases some tap uses, increasing: row_phases[a] < stride_height.
  const size_t* row_phases;
  size_t row_phase_count;
  const size_t* column_phases;
  size_t column_phase_count;
  size_t plane_height, plane_width;
  // Planes start every plane_stride floats (a whole number of cache lines, so that the runs of
  // taps at the start of a plane row load without splitting lines): [channel][row phase][column
  // phase], each plane_height rows of plane_width, zeros up to the next plane and after the last
  // one up to total_floats, which is as far as the wide grid's last tile reads.
  size_t plane_stride;
  size_t total_floats;

  size_t ChannelFloats() const { return row_phase_count * column_phase_count * plane_stride; }
};

// Writes the planes of channels [channel_begin, channel_end) of `image` (C x H x W) into
// `planes` (which points at channel 0's), and the trailing zeros when channel_end is the last.
// The ISA variants differ in how they move a run of input columns.
using PackInputPlanesFn = void (*)(const float* image, const InputPlanes& planes_layout,
                                   size_t channel_begin, size_t channel_end, float* planes);

void PackInputPlanesAvx512(const float* image, const InputPlanes& planes_layout,
                           size_t channel_begin, size_t channel_end, float* planes);
void PackInputPlanesAvx2(const float* image, const InputPlanes& planes_layout,
                         size_t channel_begin, size_t channel_end, float* planes);
void PackInputPlanesScalar(const float* image, const InputPlanes& planes_layout,
                           size_t channel_begin, size_t channel_end, float* planes);

}  // namespace ortsparse::kernels
