// SparseQGemm (domain ortsparse): Y = requantize((X - x_zero_point) · W + bias) with X uint8 or
// int8, W int8, sparse, constant and packed in quads along K by the rewriter; Y has X's type, or
// is float (dequantized, with a float bias) where the graph dequantizes the product.
// Contract: docs/ops.md.
#pragma once

#include <onnxruntime_cxx_api.h>

#include <cstdint>
#include <optional>
#include <string>

#include "operators/op_support.h"
#include "operators/quad_gemm.h"
#include "operators/quantized_output.h"

namespace ortsparse {


class SparseQGemmKernel : public NodeKernel<SparseQGemmKernel> {
 public:
  // Reads the attributes and the constant inputs, validates them and prepares the requantization;
  // throws std::invalid_argument for a malformed node.
  explicit SparseQGemmKernel(const Ort::ConstKernelInfo& info);
  void Compute(Ort::KernelContext& context) const;

 private:
  std::optional<QuadGemmWeights> weights_;
  std::optional<QuantizedOutput> output_;
};

// One op per output form, both named SparseQGemm: ORT picks the one whose bias type matches the
// node's.
template <OutputForm kForm>
struct SparseQGemmOp : NodeOp<SparseQGemmOp<kForm>, SparseQGemmKernel> {
  static constexpr size_t kFirstOptionalInput = kQuantizedInputBias;
  const char* GetName() const { return "SparseQGemm"; }
  size_t GetInputTypeCount() const { return kQuantizedInputCount; }
  ONNXTensorElementDataType GetInputType(size_t index) const {
    // X of undefined type takes uint8 and int8 alike; requantized, Y gets X's type from it.
    return index == kInputX ? ONNX_TENSOR_ELEMENT_DATA_TYPE_UNDEFINED
                            : QuantizedOpInputType(index, kForm);
  }
  ONNXTensorElementDataType GetOutputType(size_t /*index*/) const {
    return kForm == OutputForm::kFloat ? ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT
                                       : ONNX_TENSOR_ELEMENT_DATA_TYPE_UNDEFINED;
  }
};

}  // namespace ortsparse
