// What SparseQGemm and SparseQConv share past their weights: the activation type and zero points,
// the output scales, the bias and the output bounds (inputs 4 and 5 and the quantization
// attributes of docs/ops.md), validated and turned into the requantization of the int32 sums, or
// into their dequantization where Y is float.
#pragma once

#include <onnxruntime_cxx_api.h>

#include <cstdint>
#include <vector>

#include "kernels/u8s8-spmm/dequantize.h"
#include "kernels/u8s8-spmm/requantize.h"
#include "operators/op_support.h"

namespace ortsparse {

// The inputs SparseQGemm and SparseQConv share after X and the weights; SparseQConv's R follows.
enum QuantizedOpInput : size_t {
  kQuantizedInputOutputScale = kWeightInputsEnd,
  kQuantizedInputBias,
  kQuantizedInputCount,
};

// The values of uint8 or int8.
struct TypeRange {
  int32_t min;
  int32_t max;
};
TypeRange RangeOf(ONNXTensorElementDataType type);

// What Y holds: the product requantized to X's type, or dequantized to float (the op variant whose
// bias is float), where the graph feeds the product to float operators instead of quantizing it.
enum class OutputForm { kRequantized, kFloat };

class QuantizedOutput {
 public:
  // channel_sums: the sum of each of the n output channels' weights, which the activation zero
  // point multiplies. The form is Y's type's. Throws std::invalid_argument for a malformed node.
  QuantizedOutput(const Ort::ConstKernelInfo& info, int64_t n,
                  const std::vector<int32_t>& channel_sums);

  ONNXTensorElementDataType x_type() const { return x_type_; }
  OutputForm form() const { return form_; }
  // int8 activations are multiplied as x + 128 (x ^ 0x80), which the offsets account for.
  bool flip_sign() const { return x_type_ == ONNX_TENSOR_ELEMENT_DATA_TYPE_INT8; }
  // X's zero point as the kernels see it (after the flip): the byte that multiplies to nothing
  // once the offsets are added, which is what padding must hold.
  uint8_t kernel_zero_point() const { return kernel_zero_point_; }
  // Both point into this object: valid while it lives. Requantization for OutputForm::kRequantized,
  // dequantization for kFloat.
  kernels::Requantization requantization() const;
  kernels::Dequantization dequantization() const;
  // Throws std::invalid_argument unless X of a run has the type the session was created with.
  void CheckRunType(const Ort::ConstValue& x) const;

 private:
  void ReadRequantizedBounds(const Ort::ConstKernelInfo& info);
  void CheckNoRequantizedBounds(const Ort::ConstKernelInfo& info) const;

  ONNXTensorElementDataType x_type_ = ONNX_TENSOR_ELEMENT_DATA_TYPE_UNDEFINED;
  OutputForm form_ = OutputForm::kRequantized;
  uint8_t kernel_zero_point_ = 0;
  int32_t y_zero_point_ = 0;
  int64_t output_min_ = 0;
  int64_t output_max_ = 0;
  std::vector<float> scales_;
  // Requantized: bias[n] - (activation zero point, as the kernels see it) * (sum of channel n's
  // weights). Float: the same without the bias, which is float and added after the scaling.
  std::vector<int32_t> channel_offsets_;
  std::vector<float> float_bias_;
};

// The activation zero point given at run time as input `index` (0 when the node has none) as the
// kernels see it: int8 activations flipped to uint8 move it by 128. Throws std::invalid_argument
// unless it holds one value (per-tensor quantization).
int32_t RunTimeKernelZeroPoint(Ort::KernelContext& context, size_t index, bool flip_sign);

// The declared types of the inputs past X. The bias's type tells the two forms apart: ORT infers a
// custom op's output type from the first variant whose input types match the node's.
inline ONNXTensorElementDataType QuantizedOpInputType(size_t index, OutputForm form) {
  if (index == kInputWeightValues) return ONNX_TENSOR_ELEMENT_DATA_TYPE_INT8;
  if (index == kQuantizedInputOutputScale) return ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT;
  if (index == kQuantizedInputBias && form == OutputForm::kFloat) {
    return ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT;
  }
  return ONNX_TENSOR_ELEMENT_DATA_TYPE_INT32;
}

}  // namespace ortsparse
