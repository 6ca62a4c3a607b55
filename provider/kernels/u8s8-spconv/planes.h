// Direct INT8 convolution (SparseQConv): the input planes of kernels/input-planes.h with one
// dword per element holding four consecutive channels 4u .. 4u + 3 of one input position, the
// quad that the u8s8-spmm tile kernels multiply by a stored quad of weights. Stored quads are read
// in place in the planes, at one offset per (channel quad, tap).
#pragma once

#include <cstddef>
#include <cstdint>

#include "kernels/input-planes.h"

namespace ortsparse::kernels {

struct QuadPlanesSource {
  const uint8_t* image;  // C x H x W bytes
  size_t channels;       // C; a last quad's channels past it read as 0 (their weights are zero)
  uint8_t flip;          // XORed into every byte read: 0x80 turns int8 into the kernels' uint8
  uint8_t pad;           // what padding positions hold: the activation zero point, flipped
};

// Writes the planes of channel quads [quad_begin, quad_end) of source.image into `planes` (which
// points at quad 0's), and the trailing padding when quad_end is the last. The ISA variants
// differ in how they interleave a run of input columns.
using PackQuadPlanesKernel = void(const QuadPlanesSource& source, const InputPlanes& layout,
                                  size_t quad_begin, size_t quad_end, uint32_t* planes);
using PackQuadPlanesFn = PackQuadPlanesKernel*;
PackQuadPlanesKernel PackQuadPlanesAvx512, PackQuadPlanesAvx2, PackQuadPlanesScalar;

}  // namespace ortsparse::kernels
