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

enum SparseQGemmInput : size_t {
  kQInputX = 0,
  kQInputWeightValues = kQuadGemmWeightValuesInput,
  kQInputWeightGroupOffsets = 2,
  kQInputWeightInputIndices = 3,
  kQInputOutputScale = kQuantizedInputOutputScale,
  kQInputBias = kQuantizedInputBias,
  kQInputCount = 6,
};

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
  const char* GetName() const { return "SparseQGemm"; }
  size_t GetInputTypeCount() const { return kQInputCount; }
  ONNXTensorElementDataType GetInputType(size_t index) const {
    // X of undefined type takes uint8 and int8 alike; requantized, Y gets X's type from it.
    return index == kQInputX ? ONNX_TENSOR_ELEMENT_DATA_TYPE_UNDEFINED
                             : QuantizedOpInputType(index, kQInputWeightValues, kForm);
  }
  OrtCustomOpInputOutputCharacteristic GetInputCharacteristic(size_t index) const {
    return index == kQInputBias ? OrtCustomOpInputOutputCharacteristic::INPUT_OUTPUT_OPTIONAL
                                : OrtCustomOpInputOutputCharacteristic::INPUT_OUTPUT_REQUIRED;
  }
  size_t GetOutputTypeCount() const { return 1; }
  ONNXTensorElementDataType GetOutputType(size_t /*index*/) const {
    return kForm == OutputForm::kFloat ? ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT
                                       : ONNX_TENSOR_ELEMENT_DATA_TYPE_UNDEFINED;
  }
};

}  // namespace ortsparse
