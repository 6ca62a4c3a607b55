// What SparseMatMulInteger and SparseConvInteger declare alike to ORT: X (uint8 or int8), the
// quad-packed weights, an optional run-time x_zero_point of X's type, and an int32 Y, as ONNX's
// MatMulInteger and ConvInteger. One op is registered per activation type, so that x_zero_point's
// type can be X's.
#pragma once

#include <onnxruntime_cxx_api.h>

#include <cstddef>

namespace ortsparse {

enum IntegerOpInput : size_t {
  kIntegerInputX = 0,
  kIntegerInputWeightValues = 1,
  kIntegerInputWeightGroupOffsets = 2,
  kIntegerInputWeightInputIndices = 3,
  kIntegerInputXZeroPoint = 4,
  kIntegerInputCount = 5,
};

// Op: the op's own type (CRTP), with GetName and CreateKernelV2.
template <typename Op, typename Kernel, ONNXTensorElementDataType kType>
struct IntegerOp : Ort::CustomOpBase<Op, Kernel, /*WithStatus=*/true> {
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
