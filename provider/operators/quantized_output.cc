#include "operators/quantized_output.h"

#include <cmath>
#include <limits>
#include <stdexcept>
#include <string>

#include "operators/op_support.h"

namespace ortsparse {

TypeRange RangeOf(ONNXTensorElementDataType type) {
  return type == ONNX_TENSOR_ELEMENT_DATA_TYPE_UINT8 ? TypeRange{0, 255} : TypeRange{-128, 127};
}

namespace {

int32_t ZeroPointAttribute(const Ort::ConstKernelInfo& info, const char* name, TypeRange range) {
  const int64_t value = IntAttribute(info, name).value_or(0);
  if (value < range.min || value > range.max) {
    throw std::invalid_argument("attribute " + std::string(name) + " = " + std::to_string(value) +
                                " is outside the range of X's type [" +
                                std::to_string(range.min) + ", " + std::to_string(range.max) +
                                "]");
  }
  return static_cast<int32_t>(value);
}

}  // namespace

QuantizedOutput::QuantizedOutput(const Ort::ConstKernelInfo& info, int64_t n,
                                 const std::vector<int32_t>& channel_sums) {
  x_type_ = info.GetInputTypeInfo(0).GetTensorTypeAndShapeInfo().GetElementType();
  if (x_type_ != ONNX_TENSOR_ELEMENT_DATA_TYPE_UINT8 &&
      x_type_ != ONNX_TENSOR_ELEMENT_DATA_TYPE_INT8) {
    throw std::invalid_argument("X must be uint8 or int8");
  }
  form_ = info.GetOutputTypeInfo(0).GetTensorTypeAndShapeInfo().GetElementType() ==
                  ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT
              ? OutputForm::kFloat
              : OutputForm::kRequantized;
  const int32_t x_zero_point = ZeroPointAttribute(info, "x_zero_point", RangeOf(x_type_));
  if (form_ == OutputForm::kFloat) {
    CheckNoRequantizedBounds(info);
  } else {
    ReadRequantizedBounds(info);
  }

  const size_t channels = static_cast<size_t>(n);
  int is_constant = 0;
  const Ort::ConstValue scale =
      info.GetTensorConstantInput(kQuantizedInputOutputScale, &is_constant);
  if (!is_constant || scale == nullptr) {
    throw std::invalid_argument("output_scale (input 4) must be a constant initializer");
  }
  const std::vector<int64_t> scale_shape = scale.GetTensorTypeAndShapeInfo().GetShape();
  if (scale_shape != std::vector<int64_t>{n}) {
    throw std::invalid_argument("output_scale has shape " + ShapeString(scale_shape) +
                                ", expected [" + std::to_string(n) + "]");
  }
  scales_.assign(scale.GetTensorData<float>(), scale.GetTensorData<float>() + channels);
  for (const float value : scales_) {
    if (!std::isfinite(value) || value <= 0.0f) {
      throw std::invalid_argument("output_scale must hold positive finite values");
    }
  }

  std::vector<int32_t> bias(channels, 0);
  const bool has_bias = NodeHasInput(info, kQuantizedInputBias);
  if (has_bias) {
    const Ort::ConstValue value = info.GetTensorConstantInput(kQuantizedInputBias, &is_constant);
    if (!is_constant || value == nullptr) {
      throw std::invalid_argument("bias (input 5) must be a constant initializer");
    }
    const std::vector<int64_t> shape = value.GetTensorTypeAndShapeInfo().GetShape();
    if (shape != std::vector<int64_t>{n}) {
      throw std::invalid_argument("bias has shape " + ShapeString(shape) + ", expected [" +
                                  std::to_string(n) + "]");
    }
    if (form_ == OutputForm::kFloat) {
      float_bias_.assign(value.GetTensorData<float>(), value.GetTensorData<float>() + channels);
      for (const float b : float_bias_) {
        if (!std::isfinite(b)) throw std::invalid_argument("bias must hold finite values");
      }
    } else {
      bias.assign(value.GetTensorData<int32_t>(), value.GetTensorData<int32_t>() + channels);
    }
  }
  // ORT matches a node without input 5 to the requantizing variant: this only keeps the arrays
  // whole.
  if (form_ == OutputForm::kFloat && float_bias_.empty()) float_bias_.assign(channels, 0.0f);
  const int64_t kernel_zero_point = x_zero_point + (flip_sign() ? 128 : 0);
  kernel_zero_point_ = static_cast<uint8_t>(kernel_zero_point);
  channel_offsets_.resize(channels);
  for (size_t c = 0; c < channels; ++c) {
    const int64_t offset = int64_t{bias[c]} - kernel_zero_point * channel_sums[c];
    if (offset < std::numeric_limits<int32_t>::min() ||
        offset > std::numeric_limits<int32_t>::max()) {
      throw std::invalid_argument("bias of output channel " + std::to_string(c) +
                                  " overflows int32 once the zero point is applied");
    }
    channel_offsets_[c] = static_cast<int32_t>(offset);
  }
}

void QuantizedOutput::ReadRequantizedBounds(const Ort::ConstKernelInfo& info) {
  const TypeRange range = RangeOf(x_type_);
  y_zero_point_ = ZeroPointAttribute(info, "y_zero_point", range);
  output_min_ = IntAttribute(info, "output_min").value_or(range.min);
  output_max_ = IntAttribute(info, "output_max").value_or(range.max);
  if (output_min_ < range.min || output_max_ > range.max || output_min_ > output_max_) {
    throw std::invalid_argument("attributes output_min = " + std::to_string(output_min_) +
                                " and output_max = " + std::to_string(output_max_) +
                                " must be ordered and within the range of X's type");
  }
}

void QuantizedOutput::CheckNoRequantizedBounds(const Ort::ConstKernelInfo& info) const {
  for (const char* name : {"y_zero_point", "output_min", "output_max"}) {
    if (IntAttribute(info, name)) {
      throw std::invalid_argument("attribute " + std::string(name) +
                                  " quantizes Y, which is float in this node");
    }
  }
}

kernels::Requantization QuantizedOutput::requantization() const {
  return {channel_offsets_.data(), scales_.data(), y_zero_point_,
          static_cast<float>(output_min_ - y_zero_point_),
          static_cast<float>(output_max_ - y_zero_point_)};
}

kernels::Dequantization QuantizedOutput::dequantization() const {
  return {channel_offsets_.data(), scales_.data(), float_bias_.data()};
}

int32_t RunTimeKernelZeroPoint(Ort::KernelContext& context, size_t index, bool flip_sign) {
  const int32_t flip = flip_sign ? 128 : 0;
  if (context.GetInputCount() <= index) return flip;
  const Ort::ConstValue zero_point = context.GetInput(index);
  if (zero_point == nullptr) return flip;
  const Ort::TensorTypeAndShapeInfo info = zero_point.GetTensorTypeAndShapeInfo();
  if (info.GetElementCount() != 1) {
    throw std::invalid_argument("x_zero_point must hold one value (per-tensor quantization), got "
                                "shape " + ShapeString(info.GetShape()));
  }
  return flip + (flip_sign ? int32_t{zero_point.GetTensorData<int8_t>()[0]}
                           : int32_t{zero_point.GetTensorData<uint8_t>()[0]});
}

void QuantizedOutput::CheckRunType(const Ort::ConstValue& x) const {
  if (x.GetTensorTypeAndShapeInfo().GetElementType() != x_type_) {
    throw std::invalid_argument("X's element type changed since the session was created");
  }
}

}  // namespace ortsparse
