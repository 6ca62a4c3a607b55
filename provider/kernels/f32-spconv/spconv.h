// Direct sparse convolution: SparseConv without im2col, on the input planes of
// kernels/input-planes.h, one float of one channel per plane element. The tile kernels read each
// stored weight's input run in place (f32-spmm's InputOffsets addressing), with no per-tile
// packing at all.
//
// A stride-1 unpadded convolution needs no planes: X is them (the operator reads it in place when
// the wide grid's last tile stays inside X).
#pragma once

#include <cstddef>

#include "kernels/input-planes.h"

namespace ortsparse::kernels {

// Writes the planes of channels [channel_begin, channel_end) of an image into `planes` (which
// points at channel 0's), and the trailing zeros when channel_end is the last. `channels` points
// at channel channel_begin of the image (H x W floats each, one after the other), which may be
// part of a Concat's input rather than of one tensor. The planes' rows are the image's plane rows
// from first_plane_row on (0 but for a band of output rows, whose first is first_plane_row). The
// ISA variants differ in how they move a run of input columns.
using PackInputPlanesKernel = void(const float* channels, const InputPlanes& planes_layout,
                                   size_t first_plane_row, size_t channel_begin, size_t channel_end,
                                   float* planes);
using PackInputPlanesFn = PackInputPlanesKernel*;
PackInputPlanesKernel PackInputPlanesAvx512, PackInputPlanesAvx2, PackInputPlanesScalar;

}  // namespace ortsparse::kernels
