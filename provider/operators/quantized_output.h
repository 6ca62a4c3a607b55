// What SparseQGemm and SparseQConv share past their weights: the activation type and zero points,
// the output scales, the bias and the output bounds (inputs 4 and 5 and the quantization
// attributes of docs/ops.md), validated and turned into the requantization of the int32 sums.
#pragma once

#include <onnxruntime_cxx_api.h>

#include <cstdint>
#include <vector>

#include "kernels/u8s8-spmm/requantize.h"

namespace ortsparse {

inline constexpr size_t kQuantizedInputOutputScale = 4;
inline constexpr size_t kQuantizedInputBias = 5;

// The values of uint8 or int8.
struct TypeRange {
  int32_t min;
  int32_t max;
};
TypeRange RangeOf(ONNXTensorElementDataType type);

class QuantizedOutput {
 public:
  // channel_sums: the sum of each of the n output channels' weights, which the activation zero
  // point multiplies. Throws std::invalid_argument for a malformed node.
  QuantizedOutput(const Ort::ConstKernelInfo& info, int64_t n,
                  const std::vector<int32_t>& channel_sums);

  ONNXTensorElementDataType x_type() const { return x_type_; }
  // int8 activations are multiplied as x + 128 (x ^ 0x80), which the offsets account for.
  bool flip_sign() const { return x_type_ == ONNX_TENSOR_ELEMENT_DATA_TYPE_INT8; }
  // X's zero point as the kernels see it (after the flip): the byte that multiplies to nothing
  // once the offsets are added, which is what padding must hold.
  uint8_t kernel_zero_point() const { return kernel_zero_point_; }
  // Points into this object: valid while it lives.
  kernels::Requantization requantization() const;
  // Throws std::invalid_argument unless X of a run has the type the session was created with.
  void CheckRunType(const Ort::ConstValue& x) const;

 private:
  ONNXTensorElementDataType x_type_ = ONNX_TENSOR_ELEMENT_DATA_TYPE_UNDEFINED;
  uint8_t kernel_zero_point_ = 0;
  int32_t y_zero_point_ = 0;
  int64_t output_min_ = 0;
  int64_t output_max_ = 0;
  std::vector<float> scales_;
  // bias[n] - (activation zero point, as the kernels see it) * (sum of channel n's weights)
  std::vector<int32_t> channel_offsets_;
};

// The activation zero point given at run time as input `index` (0 when the node has none) as the
// kernels see it: int8 activations flipped to uint8 move it by 128. Throws std::invalid_argument
// unless it holds one value (per-tensor quantization).
int32_t RunTimeKernelZeroPoint(Ort::KernelContext& context, size_t index, bool flip_sign);

// The node's input of undefined type (X, uint8 or int8) gives Y its type, as ORT infers it.
inline ONNXTensorElementDataType QuantizedOpInputType(size_t index, size_t weight_values_input) {
  if (index == 0) return ONNX_TENSOR_ELEMENT_DATA_TYPE_UNDEFINED;
  if (index == weight_values_input) return ONNX_TENSOR_ELEMENT_DATA_TYPE_INT8;
  if (index == kQuantizedInputOutputScale) return ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT;
  return ONNX_TENSOR_ELEMENT_DATA_TYPE_INT32;
}

}  // namespace ortsparse
