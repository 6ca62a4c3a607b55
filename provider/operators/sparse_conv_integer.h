// SparseConvInteger (domain ortsparse): Y = conv2d(X - x_zero_point, W) in int32, exactly, on NCHW
// tensors, X uint8 or int8, W int8, sparse, constant and packed in quads of four input channels
// at one kernel tap by the rewriter: ONNX's ConvInteger with a symmetric constant weight, as
// dynamic quantization leaves it. SparseQConv's convolution with the sums stored as they are.
// Contract: docs/ops.md.
#pragma once

#include <onnxruntime_cxx_api.h>

#include <optional>
#include <string>

#include "operators/integer_op.h"
#include "operators/op_support.h"
#include "operators/quad_conv.h"

namespace ortsparse {

static_assert(kIntegerInputWeightValues == kQuadConvWeightValuesInput);

class SparseConvIntegerKernel {
 public:
  // Reads the attributes and the packed weights and validates them; throws std::invalid_argument
  // for a malformed node.
  SparseConvIntegerKernel(const OrtApi& api, const OrtKernelInfo* info);

  // Never throws: errors become the returned status.
  OrtStatusPtr ComputeV2(OrtKernelContext* context) const;

 private:
  void Compute(Ort::KernelContext& context) const;

  std::string node_label_;
  bool flip_sign_ = false;  // X is int8
  std::optional<QuadConv> conv_;
};

OrtStatusPtr CreateSparseConvIntegerKernel(const OrtApi& api, const OrtKernelInfo* info,
                                           void** kernel);

// One op per activation type, both named SparseConvInteger (operators/integer_op.h).
template <ONNXTensorElementDataType kType>
struct SparseConvIntegerOp
    : IntegerOp<SparseConvIntegerOp<kType>, SparseConvIntegerKernel, kType> {
  const char* GetName() const { return "SparseConvInteger"; }
  OrtStatusPtr CreateKernelV2(const OrtApi& api, const OrtKernelInfo* info, void** kernel) const {
    return CreateSparseConvIntegerKernel(api, info, kernel);
  }
};

}  // namespace ortsparse
