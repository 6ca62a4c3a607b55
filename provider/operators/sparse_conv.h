// SparseConv (domain ortsparse): Y = epilogue(conv2d(X, W)) on NCHW tensors, with W sparse,
// constant and packed by the rewriter as the matrix [C * kH * kW, Cout]. Contract: docs/ops.md.
//
// Output pixels play the role of SparseGemm's rows: a tile's panel is the im2col slice of its
// pixels, the tile kernels multiply it by the weights, and their channel-major accumulators are
// already NCHW, so the output stage finishes contiguous runs of each channel without a transpose.
#pragma once

#include <onnxruntime_cxx_api.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "kernels/f32-conv-pack/conv-pack.h"
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

class SparseConvKernel {
 public:
  // Reads the attributes and the constant packed weights, validates them and lays the weights out
  // for the kernels; throws std::invalid_argument for a malformed node.
  SparseConvKernel(const OrtApi& api, const OrtKernelInfo* info);

  // Never throws: errors become the returned status.
  OrtStatusPtr ComputeV2(OrtKernelContext* context) const;

 private:
  void ReadWindow(const Ort::ConstKernelInfo& info);
  // Checks X's shape and derives the geometry of its convolution.
  kernels::ConvGeometry GeometryFor(const std::vector<int64_t>& x_shape) const;
  void Compute(Ort::KernelContext& context) const;

  std::string node_label_;
  SparseMatrixAttributes matrix_;
  int64_t channels_ = 0;
  WindowAxis height_;
  WindowAxis width_;
  // 1x1, stride 1, unpadded: panels are plain copies of the image.
  bool pointwise_ = false;
  std::optional<std::vector<float>> constant_bias_;

  const SpmmMicrokernels* microkernels_ = nullptr;
  TileKernels tile_kernels_{};
  TileWeights tile_weights_;
};

struct SparseConvOp : PackedWeightOp<SparseConvOp, SparseConvKernel> {
  const char* GetName() const { return "SparseConv"; }
};

}  // namespace ortsparse
