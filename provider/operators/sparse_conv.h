// SparseConv (domain ortsparse): Y = epilogue(conv2d(X, W)) on NCHW tensors, with W sparse,
// constant and packed by the rewriter as the matrix [C * kH * kW, Cout]. Contract: docs/ops.md.
//
// A direct convolution (kernels/f32-spconv): output positions play the role of SparseGemm's rows,
// the tile kernels read each stored weight's input run in place in the image's input planes (or
// in X itself), and their channel-major accumulators are already NCHW, so the output stage
// finishes runs of each channel without a transpose. With output_channel_groups, Y is instead
// [B, A, OH, OW, Cout / A], as detection heads reshape and transpose a conv's output, and the
// output stage writes each finished run across its group's rows. With a depthwise prologue
// (operators/depthwise_prologue.h), X is the input of a depthwise convolution whose output the op
// computes into its planes, and the product is 1x1. With a pointwise prologue
// (operators/pointwise_prologue.h), X is the input of a sparse 1x1 convolution whose output the
// op computes band by band into its planes, which are then always laid out in bands.
#pragma once

#include <onnxruntime_cxx_api.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "kernels/f32-spconv/spconv.h"
#include "operators/conv_geometry.h"
#include "operators/depthwise_prologue.h"
#include "operators/packed_weights.h"
#include "operators/pointwise_prologue.h"
#include "operators/spmm_tiles.h"

namespace ortsparse {

// After SparseGemm's inputs: up to three more parts of X, whose channels follow X's, as a Concat
// along the channels would join them (docs/ops.md).
inline constexpr size_t kInputMoreXParts = kPackedOpInputCount;
inline constexpr size_t kMaxXParts = 4;

class SparseConvKernel : public NodeKernel<SparseConvKernel> {
 public:
  // Reads the attributes and the constant packed weights, validates them and lays the weights out
  // for the kernels; throws std::invalid_argument for a malformed node.
  explicit SparseConvKernel(const Ort::ConstKernelInfo& info);
  void Compute(Ort::KernelContext& context) const;

 private:
  void ReadWindow(const Ort::ConstKernelInfo& info);
  void ReadOutputChannelGroups(const Ort::ConstKernelInfo& info);
  void ReadOutputSplit(const Ort::ConstKernelInfo& info);
  void CountXParts(const Ort::ConstKernelInfo& info);
  // The shape of X joined from its parts' (each [B, C_i, H, W] with the sum of C_i equal to C),
  // which are checked; each part's channels go to part_channels.
  std::vector<int64_t> JoinedXShape(const Ort::KernelContext& context,
                                    size_t part_channels[kMaxXParts]) const;
  // Checks X's shape and returns the plan for its height and width.
  std::shared_ptr<const DirectConvPlan> PlanFor(const std::vector<int64_t>& x_shape,
                                                const size_t part_channels[kMaxXParts]) const;
  std::shared_ptr<const DirectConvPlan> BuildPlan(int64_t in_height, int64_t in_width,
                                                  const std::vector<size_t>& part_channels) const;
  // Compiles the weights for `plan`'s planes where that pays, first laying the planes out anew in
  // bands (reading.band_rows, tap_offsets) where the whole image's would not stay in L2 (planes
  // already in bands stay so); returns which kernels serve it, and why, for ORTSPARSE_VERBOSE.
  std::string CompileFor(DirectConvPlan& plan, PlaneReading reading,
                         std::vector<int64_t>& tap_offsets) const;

  SparseMatrixAttributes matrix_;
  Threading threading_ = Threading::kIntraOpPool;
  int64_t channels_ = 0;
  ConvWindow window_;
  // A of output_channel_groups: Y is [B, A, OH, OW, N / A]; 0 for NCHW.
  int64_t output_channel_groups_ = 0;
  // S of output_split: Y gets channels [0, S) and the second output Y_2 the rest; 0 for one Y.
  int64_t output_split_ = 0;
  size_t x_parts_ = 1;  // tensors whose channels make up X: X and the inputs after the residual
  std::optional<std::vector<float>> constant_bias_;
  std::optional<OutputAffine> output_affine_;
  std::optional<DepthwisePrologue> depthwise_;
  std::optional<PointwisePrologue> pointwise_;

  const SpmmMicrokernels* microkernels_ = nullptr;
  TileKernels<int32_t> tile_kernels_{};
  TileWeights tile_weights_;
  // The packed weights, kept for compiling them for each plan's planes layout; empty when they
  // are not compiled, for the reason in not_compiled_.
  std::optional<PackedWeights> weights_to_compile_;
  std::string not_compiled_;
  bool verbose_ = false;  // ORTSPARSE_VERBOSE: report each plan's kernels on stderr

  DirectConvPlans plans_;
};

struct SparseConvOp : PackedWeightOp<SparseConvOp, SparseConvKernel> {
  const char* GetName() const { return "SparseConv"; }
  size_t GetInputTypeCount() const { return kInputMoreXParts + kMaxXParts - 1; }
  // Y, and Y_2 with the channels past output_split.
  size_t GetOutputTypeCount() const { return 2; }
  OrtCustomOpInputOutputCharacteristic GetOutputCharacteristic(size_t index) const {
    return index == 0 ? OrtCustomOpInputOutputCharacteristic::INPUT_OUTPUT_REQUIRED
                      : OrtCustomOpInputOutputCharacteristic::INPUT_OUTPUT_OPTIONAL;
  }
};

}  // namespace ortsparse
