// SparseConv (domain ortsparse): Y = epilogue(conv2d(X, W)) on NCHW tensors, with W sparse,
// constant and packed by the rewriter as the matrix [C * kH * kW, Cout]. Contract: docs/ops.md.
//
// A direct convolution (kernels/f32-spconv): output positions play the role of SparseGemm's rows,
// the tile kernels read each stored weight's input run in place in the image's input planes (or
// in X itself), and their channel-major accumulators are already NCHW, so the output stage
// finishes runs of each channel without a transpose.
#pragma once

#include <onnxruntime_cxx_api.h>

#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "kernels/f32-spconv/spconv.h"
#include "operators/packed_weights.h"
#include "operators/spmm_tiles.h"

namespace ortsparse {

// One spatial axis of the convolution window.
struct WindowAxis {
  int64_t kernel = 1;
  int64_t stride = 1;
  int64_t dilation = 1;
  int64_t pad_begin = 0;
  int64_t pad_end = 0;

  // Output positions along an input of `input` positions; 0 when the dilated kernel does not fit.
  int64_t OutputSize(int64_t input) const;
};

// How X of one height and width is convolved: the input planes' layout (or X read in place) and
// each stored weight's input offset, in the tile weights' order. Built on the first run at that
// size; the planes layout points into the phase vectors, so a plan is never copied.
struct DirectConvPlan {
  int64_t in_height = 0;
  int64_t in_width = 0;
  size_t out_height = 0;
  size_t out_width = 0;
  std::vector<size_t> row_phases;
  std::vector<size_t> column_phases;
  kernels::InputPlanes planes{};
  bool in_place = false;  // X is the planes (stride 1, unpadded)
  // Grid positions up to the last output pixel; the columns past it are never computed.
  size_t grid_positions = 0;
  // Where the last tile starts computing: in place, early enough that its reads stay inside X
  // (recomputing some of the previous tile's positions), else at its first position.
  size_t last_tile_start = 0;
  std::vector<int32_t> offsets;

  DirectConvPlan() = default;
  DirectConvPlan(const DirectConvPlan&) = delete;
  DirectConvPlan& operator=(const DirectConvPlan&) = delete;
};

class SparseConvKernel {
 public:
  // Reads the attributes and the constant packed weights, validates them and lays the weights out
  // for the kernels; throws std::invalid_argument for a malformed node.
  SparseConvKernel(const OrtApi& api, const OrtKernelInfo* info);

  // Never throws: errors become the returned status.
  OrtStatusPtr ComputeV2(OrtKernelContext* context) const;

 private:
  void ReadWindow(const Ort::ConstKernelInfo& info);
  // Kernel taps per run of input rows that they share in L1 (see BuildTileWeights).
  size_t TapsPerRun() const;
  // Checks X's shape and returns the plan for its height and width.
  std::shared_ptr<const DirectConvPlan> PlanFor(const std::vector<int64_t>& x_shape) const;
  std::shared_ptr<const DirectConvPlan> BuildPlan(int64_t in_height, int64_t in_width) const;
  void Compute(Ort::KernelContext& context) const;

  std::string node_label_;
  SparseMatrixAttributes matrix_;
  int64_t channels_ = 0;
  WindowAxis height_;
  WindowAxis width_;
  std::optional<std::vector<float>> constant_bias_;

  const SpmmMicrokernels* microkernels_ = nullptr;
  TileKernels<int32_t> tile_kernels_{};
  TileWeights tile_weights_;

  // Plans of the input sizes seen, the most recent last; a run holds its plan while another
  // run's size may evict it.
  mutable std::mutex plans_mutex_;
  mutable std::vector<std::shared_ptr<const DirectConvPlan>> plans_;
};

struct SparseConvOp : PackedWeightOp<SparseConvOp, SparseConvKernel> {
  const char* GetName() const { return "SparseConv"; }
};

}  // namespace ortsparse
