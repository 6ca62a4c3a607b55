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

class SparseQGemmKernel {
 public:
  // Reads the attributes and the constant inputs, validates them and prepares the requantization;
  // throws std::invalid_argument for a malformed node.
  SparseQGemmKernel(const OrtApi& api, const OrtKernelInfo* info);

  // Never throws: errors become the returned status.
  OrtStatusPtr ComputeV2(OrtKernelContext* context) const;

 private:
  void Compute(Ort::KernelContext& context) const;

  std::string node_label_;
  std::optional<QuadGemmWeights> weights_;
  std::optional<QuantizedOutput> output_;
};

// A new SparseQGemmKernel, or the status of its creation error.
OrtStatusPtr CreateSparseQGemmKernel(const OrtApi& api, const OrtKernelInfo* info, void** kernel);

// One op per output form, both named SparseQGemm: ORT picks the one whose bias type matches the
// node's.
template <OutputForm kForm>
struct SparseQGemmOp
    : Ort::CustomOpBase<SparseQGemmOp<kForm>, SparseQGemmKernel, /*WithStatus=*/true> {
  const char* GetName() const { return "SparseQGemm"; }
  OrtStatusPtr CreateKernelV2(const OrtApi& api, const OrtKernelInfo* info, void** kernel) const {
    return CreateSparseQGemmKernel(api, info, kernel);
  }

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
