// SparseQGemm (domain ortsparse): Y = requantize((X - x_zero_point) · W + bias) with X uint8 or
// int8, W int8, sparse, constant and packed in quads along K by the rewriter; Y has X's type.
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

struct SparseQGemmOp : Ort::CustomOpBase<SparseQGemmOp, SparseQGemmKernel, /*WithStatus=*/true> {
  const char* GetName() const { return "SparseQGemm"; }
  OrtStatusPtr CreateKernelV2(const OrtApi& api, const OrtKernelInfo* info, void** kernel) const;

  size_t GetInputTypeCount() const { return kQInputCount; }
  ONNXTensorElementDataType GetInputType(size_t index) const {
    return QuantizedOpInputType(index, kQInputWeightValues);
  }
  OrtCustomOpInputOutputCharacteristic GetInputCharacteristic(size_t index) const {
    return index == kQInputBias ? OrtCustomOpInputOutputCharacteristic::INPUT_OUTPUT_OPTIONAL
                                : OrtCustomOpInputOutputCharacteristic::INPUT_OUTPUT_REQUIRED;
  }
  size_t GetOutputTypeCount() const { return 1; }
  // Undefined: ORT gives Y the type of X, the one input of undefined type.
  ONNXTensorElementDataType GetOutputType(size_t /*index*/) const {
    return ONNX_TENSOR_ELEMENT_DATA_TYPE_UNDEFINED;
  }
};

}  // namespace ortsparse
