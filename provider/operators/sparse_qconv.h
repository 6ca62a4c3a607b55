// SparseQConv (domain ortsparse): Y = requantize(conv2d(X - x_zero_point, W) + bias) on NCHW
// tensors, X uint8 or int8, W int8, sparse, constant and packed in quads of four consecutive input
// channels at one kernel tap by the rewriter; Y has X's type, or is float (dequantized, with a
// float bias) where the graph dequantizes the convolution. Contract: docs/ops.md.
//
// A direct convolution like SparseConv's (operators/conv_geometry.h): the input of an image is
// interleaved once into planes of channel quads (kernels/u8s8-spconv), which the u8s8-spmm tile
// kernels read in place, and their channel-major sums are requantized straight into NCHW runs.
#pragma once

#include <onnxruntime_cxx_api.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "operators/op_support.h"
#include "operators/quad_conv.h"
#include "operators/quantized_output.h"

namespace ortsparse {

inline constexpr size_t kQConvInputResidual = kQuantizedInputCount;
inline constexpr size_t kQConvInputCount = kQConvInputResidual + 1;

class SparseQConvKernel : public NodeKernel<SparseQConvKernel> {
 public:
  // Reads the attributes and the constant inputs, validates them and prepares the requantization;
  // throws std::invalid_argument for a malformed node.
  explicit SparseQConvKernel(const Ort::ConstKernelInfo& info);
  void Compute(Ort::KernelContext& context) const;

 private:
  // Y float: the sums dequantized into NCHW runs.
  void ComputeFloat(Ort::KernelContext& context, const DirectConvPlan& plan, const uint8_t* x,
                    size_t images, float* y) const;

  std::optional<QuadConv> conv_;
  std::optional<QuantizedOutput> output_;
  // With input R: the residual Add after the requantization.
  std::optional<kernels::QuantizedAddition> residual_addition_;
};

// One op per activation type and output form, all named SparseQConv: ORT picks the one whose types
// match the node's. R must have Y's type, which no single op with X and R of undefined type could
// declare; the float form's bias is float.
template <ONNXTensorElementDataType kType, OutputForm kForm>
struct SparseQConvOp : NodeOp<SparseQConvOp<kType, kForm>, SparseQConvKernel> {
  static constexpr size_t kFirstOptionalInput = kQuantizedInputBias;
  static constexpr ONNXTensorElementDataType kYType =
      kForm == OutputForm::kFloat ? ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT : kType;

  const char* GetName() const { return "SparseQConv"; }

  size_t GetInputTypeCount() const { return kQConvInputCount; }
  ONNXTensorElementDataType GetInputType(size_t index) const {
    if (index == kInputX) return kType;
    if (index == kQConvInputResidual) return kYType;
    return QuantizedOpInputType(index, kForm);
  }
  ONNXTensorElementDataType GetOutputType(size_t /*index*/) const { return kYType; }
};

}  // namespace ortsparse
