// SparseMatMulInteger (domain ortsparse): Y = (X - x_zero_point) · W in int32, exactly, with X
// uint8 or int8, W int8, sparse, constant and packed in quads along K by the rewriter: ONNX's
// MatMulInteger with a symmetric constant weight, as dynamic quantization leaves it (its Cast and
// scale Mul after it stay in the graph). Contract: docs/ops.md.
#pragma once

#include <onnxruntime_cxx_api.h>

#include <cstdint>
#include <optional>
#include <string>

#include "operators/op_support.h"
#include "operators/quad_gemm.h"

namespace ortsparse {

enum SparseMatMulIntegerInput : size_t {
  kIntegerInputX = 0,
  kIntegerInputWeightValues = kQuadGemmWeightValuesInput,
  kIntegerInputWeightGroupOffsets = 2,
  kIntegerInputWeightInputIndices = 3,
  kIntegerInputXZeroPoint = 4,
  kIntegerInputCount = 5,
};

class SparseMatMulIntegerKernel {
 public:
  // Reads the attributes and the packed weights and validates them; throws std::invalid_argument
  // for a malformed node.
  SparseMatMulIntegerKernel(const OrtApi& api, const OrtKernelInfo* info);

  // Never throws: errors become the returned status.
  OrtStatusPtr ComputeV2(OrtKernelContext* context) const;

 private:
  void Compute(Ort::KernelContext& context) const;

  std::string node_label_;
  bool flip_sign_ = false;  // X is int8
  std::optional<QuadGemmWeights> weights_;
};

OrtStatusPtr CreateSparseMatMulIntegerKernel(const OrtApi& api, const OrtKernelInfo* info,
                                             void** kernel);

// One op per activation type, both named SparseMatMulInteger: x_zero_point has X's type.
template <ONNXTensorElementDataType kType>
struct SparseMatMulIntegerOp : Ort::CustomOpBase<SparseMatMulIntegerOp<kType>,
                                                 SparseMatMulIntegerKernel, /*WithStatus=*/true> {
  const char* GetName() const { return "SparseMatMulInteger"; }
  OrtStatusPtr CreateKernelV2(const OrtApi& api, const OrtKernelInfo* info, void** kernel) const {
    return CreateSparseMatMulIntegerKernel(api, info, kernel);
  }

  size_t GetInputTypeCount() const { return kIntegerInputCount; }
  ONNXTensorElementDataType GetInputType(size_t index) const {
    switch (index) {
      case kIntegerInputX:
      case kIntegerInputXZeroPoint:
        return kType;
      case kIntegerInputWeightValues:
        return ONNX_TENSOR_ELEMENT_DATA_TYPE_INT8;
      default:
        return ONNX_TENSOR_ELEMENT_DATA_TYPE_INT32;
    }
  }
  OrtCustomOpInputOutputCharacteristic GetInputCharacteristic(size_t index) const {
    return index == kIntegerInputXZeroPoint
               ? OrtCustomOpInputOutputCharacteristic::INPUT_OUTPUT_OPTIONAL
               : OrtCustomOpInputOutputCharacteristic::INPUT_OUTPUT_REQUIRED;
  }
  size_t GetOutputTypeCount() const { return 1; }
  ONNXTensorElementDataType GetOutputType(size_t /*index*/) const {
    return ONNX_TENSOR_ELEMENT_DATA_TYPE_INT32;
  }
};

}  // namespace ortsparse
