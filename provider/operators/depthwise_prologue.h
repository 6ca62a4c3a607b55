// SparseConv's depthwise prologue (docs/ops.md): X is the input of a depthwise convolution (one
// kHxkW filter per channel, its bias and activation), and the op's sparse 1x1 product takes that
// convolution's output. The op writes the output channel by channel straight into the planes its
// product reads, a band of rows at a time where those are banded: the depthwise output is never
// a tensor in memory, and the depthwise-separable block never leaves NCHW (ORT runs its depthwise
// convolutions in NCHWc, with a reorder before and after each between our NCHW ops).
#pragma once

#include <onnxruntime_cxx_api.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <vector>

#include "kernels/activations/epilogue.h"
#include "operators/conv_geometry.h"
#include "operators/spmm_tiles.h"

namespace ortsparse {

class DepthwisePrologue {
 public:
  // The node's prologue, or none when it has no attribute depthwise_kernel_shape. Throws
  // std::invalid_argument for malformed attributes, or a product that is not 1x1, stride 1 and
  // unpadded (`product`), which the prologue's output feeds as it is.
  static std::optional<DepthwisePrologue> Read(const Ort::ConstKernelInfo& info, int64_t channels,
                                               const ConvWindow& product);

  const ConvWindow& window() const { return window_; }

  // The plan of the depthwise convolution of X of in_height x in_width, as
  // DirectConvPlan::depthwise: one channel's planes for a strip of band_rows output rows.
  std::unique_ptr<const DirectConvPlan> Plan(int64_t in_height, int64_t in_width) const;

  // Writes the product's planes (layout `planes`, of the depthwise output) of channels
  // [channel_begin, channel_end) of an image, rows from first_plane_row on, as
  // kernels::PackInputPlanesKernel packs them from X: `channels` points at X's channel
  // channel_begin of the image, `depthwise` is the plan's DirectConvPlan::depthwise.
  void WritePlanes(const DirectConvPlan& depthwise, const SpmmMicrokernels& microkernels,
                   const float* channels, const kernels::InputPlanes& planes,
                   size_t first_plane_row, size_t channel_begin, size_t channel_end,
                   float* out) const;

 private:
  // The packed planes' path, for strides above 2 or kernels wider than DepthwiseRowsOfX takes
  // (DepthwiseRows reads the planes of each stride phase).
  void WritePackedPlanes(const DirectConvPlan& depthwise, const SpmmMicrokernels& microkernels,
                         const float* channel, size_t c, size_t first_row, size_t rows,
                         float* plane, size_t plane_width) const;
  // Strides 1 and 2: every tap reads X's rows in place (DepthwiseRowsOfX), with nothing packed.
  void WriteRowsOfX(const DirectConvPlan& depthwise, const SpmmMicrokernels& microkernels,
                    const float* channel, size_t c, size_t first_row, size_t rows, float* plane,
                    size_t plane_width) const;

  ConvWindow window_;
  bool reads_x_ = false;  // strides and a kernel width DepthwiseRowsOfX takes
  size_t taps_ = 0;
  std::vector<float> weights_;  // [C][kH * kW]
  std::vector<float> bias_;     // [C], zeros where the node has none
  kernels::Epilogue epilogue_;
};

}  // namespace ortsparse
