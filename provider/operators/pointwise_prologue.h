// SparseConv's pointwise prologue (docs/ops.md): X is the input of a sparse 1x1 convolution of
// stride 1 without padding (its packed weights, bias and activation in the attributes
// pointwise_*), and the op's product takes that convolution's output P. The op computes the rows
// of P that a band of its output rows reads (the band's and the halo its kernel reaches) into a
// buffer of its thread, and packs the band's planes from there: P is never a tensor in memory. A
// chain of two sparse convolutions (ResNet's 1x1 -> 3x3, YOLO's bottlenecks) then goes through
// the caches band by band, a tensor column of two layers, where two nodes would write P whole
// and read it back.
#pragma once

#include <onnxruntime_cxx_api.h>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <vector>

#include "operators/packed_weights.h"
#include "operators/spmm_tiles.h"

namespace ortsparse {

class PointwisePrologue {
 public:
  // The node's prologue, or none when it has no attribute pointwise_K. `channels` is the
  // product's C, which must be the prologue's N. Throws std::invalid_argument for malformed
  // attributes or weights.
  static std::optional<PointwisePrologue> Read(const Ort::ConstKernelInfo& info, int64_t channels,
                                               const SpmmMicrokernels& microkernels);

  int64_t InputChannels() const { return matrix_.k; }

  // The input offset of every stored weight, in the tile segments' order, for X of height x
  // width read in place; throws std::invalid_argument where they pass 32 bits.
  std::vector<int32_t> Offsets(int64_t height, int64_t width) const;

  // Writes planes (layout `planes`, of P, from plane row first_plane_row) of the image whose X is
  // `x` (InputChannels() channels of height x width), with the offsets Offsets() gave for them.
  // `follows`: this thread's previous call was for the band before, of the same image and plan,
  // whose rows of P it reuses (the halo of a kernel taller than its stride) instead of computing
  // them again.
  void WritePlanes(const std::vector<int32_t>& offsets, const SpmmMicrokernels& microkernels,
                   const float* x, size_t height, size_t width, const kernels::InputPlanes& planes,
                   size_t first_plane_row, bool follows, float* out) const;

 private:
  // Computes rows [row_begin, row_end) of P into `out`, which holds row_count rows of each
  // channel from row out_first_row on, from X (pixels of each channel) read in place at `x`.
  void ComputeRows(const std::vector<int32_t>& offsets, const SpmmMicrokernels& microkernels,
                   const float* x, size_t pixels, size_t width, size_t row_begin, size_t row_end,
                   float* out, size_t out_first_row, size_t row_count) const;

  SparseMatrixAttributes matrix_;
  TileKernels<int32_t> tile_kernels_{};
  TileWeights tile_weights_;
  std::vector<float> bias_;  // [N], zeros where the node has none
};

}  // namespace ortsparse
