#include "operators/sparse_qconv.h"

#include <cmath>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace ortsparse {
namespace {

// The residual Add of input R that attributes add_scales, add_zero_points and residual_input
// describe, validated against the output; none when the node has no R.
std::optional<kernels::QuantizedAddition> ReadResidualAddition(const Ort::ConstKernelInfo& info,
                                                               const QuantizedOutput& output) {
  const bool has_residual = NodeHasInput(info, kQConvInputResidual);
  const std::optional<std::vector<float>> scales = FloatsAttribute(info, "add_scales");
  const std::optional<std::vector<int64_t>> zero_points = IntsAttribute(info, "add_zero_points");
  const std::optional<int64_t> residual_input = IntAttribute(info, "residual_input");
  if (has_residual && output.form() == OutputForm::kFloat) {
    throw std::invalid_argument(
        "input R (6) is added to a requantized Y: a node with a float Y takes none");
  }
  if (!has_residual) {
    if (scales || zero_points || residual_input) {
      throw std::invalid_argument(
          "attributes add_scales, add_zero_points and residual_input describe the residual Add "
          "of input R (6), which the node does not have");
    }
    return std::nullopt;
  }
  if (!scales || scales->size() != 3 || !zero_points || zero_points->size() != 3) {
    throw std::invalid_argument(
        "with input R (6), attributes add_scales and add_zero_points must each hold 3 values: "
        "the Add's first operand's, its second's and the sum's");
  }
  for (const float scale : *scales) {
    if (!std::isfinite(scale) || scale <= 0.0f) {
      throw std::invalid_argument("add_scales must hold positive finite values");
    }
  }
  const TypeRange range = RangeOf(output.x_type());
  for (const int64_t zero_point : *zero_points) {
    if (zero_point < range.min || zero_point > range.max) {
      throw std::invalid_argument("add_zero_points must lie within the range of X's type [" +
                                  std::to_string(range.min) + ", " +
                                  std::to_string(range.max) + "]");
    }
  }
  if (residual_input != 0 && residual_input != 1) {
    throw std::invalid_argument(
        "attribute residual_input (which operand of the Add R is) must be 0 or 1");
  }
  const std::vector<float>& s = *scales;
  const std::vector<int64_t>& z = *zero_points;
  return kernels::MakeQuantizedAddition(
      s[0], static_cast<int32_t>(z[0]), s[1], static_cast<int32_t>(z[1]), s[2],
      static_cast<int32_t>(z[2]), /*residual_first=*/*residual_input == 0);
}

}  // namespace

SparseQConvKernel::SparseQConvKernel(const Ort::ConstKernelInfo& info) {
  conv_.emplace(info);
  output_.emplace(info, conv_->n(), conv_->packed().channel_sums);
  residual_addition_ = ReadResidualAddition(info, *output_);
}

void SparseQConvKernel::Compute(Ort::KernelContext& context) const {
  const Ort::ConstValue x = context.GetInput(kInputX);
  const std::vector<int64_t> x_shape = x.GetTensorTypeAndShapeInfo().GetShape();
  std::vector<int64_t> y_shape;
  const std::shared_ptr<const DirectConvPlan> plan = conv_->PlanFor(x_shape, &y_shape);
  const uint8_t* residual = nullptr;
  if (residual_addition_) {
    const Ort::ConstValue r = context.GetInput(kQConvInputResidual);
    // R's type is X's: ORT only runs the op whose declared types match the node's.
    const std::vector<int64_t> r_shape = r.GetTensorTypeAndShapeInfo().GetShape();
    if (r_shape != y_shape) {
      throw std::invalid_argument("R has shape " + ShapeString(r_shape) + ", expected Y's " +
                                  ShapeString(y_shape));
    }
    residual = static_cast<const uint8_t*>(r.GetTensorRawData());
  }
  Ort::UnownedValue y = context.GetOutput(0, y_shape);
  const size_t images = static_cast<size_t>(x_shape[0]);
  if (images == 0) return;
  if (output_->form() == OutputForm::kFloat) {
    ComputeFloat(context, *plan, static_cast<const uint8_t*>(x.GetTensorRawData()), images,
                 y.GetTensorMutableData<float>());
    return;
  }

  const QuadMicrokernels& mk = conv_->microkernels();
  const kernels::Requantization requantization = output_->requantization();
  const bool is_signed = output_->x_type() == ONNX_TENSOR_ELEMENT_DATA_TYPE_INT8;
  const size_t n = static_cast<size_t>(conv_->n());
  const size_t pixels = plan->out_height * plan->out_width;
  uint8_t* y_data = static_cast<uint8_t*>(y.GetTensorMutableRawData());
  // Where the grid is Y (no padding columns), the tile kernels can write Y's rows themselves.
  const kernels::QuadResidual residual_type = residual == nullptr ? kernels::QuadResidual::kNone
                                              : is_signed       ? kernels::QuadResidual::kInt8
                                                                : kernels::QuadResidual::kUint8;
  const kernels::QuadRequantizeTileFn* requantize_tiles =
      plan->planes.plane_width == plan->out_width ? mk.RequantizeTilesFor(residual_type)
                                                  : nullptr;
  conv_->Run(
      context, *plan, static_cast<const uint8_t*>(x.GetTensorRawData()), images,
      static_cast<uint8_t>(output_->flip_sign() ? 0x80 : 0x00), output_->kernel_zero_point(),
      [&](const QuadConvTile& tile) {
        const kernels::Requantization chunk = requantization.FromChannel(tile.channel_begin);
        const size_t chunk_offset = (tile.image * n + tile.channel_begin) * pixels;
        if (requantize_tiles != nullptr) {
          const size_t at = chunk_offset + tile.first;
          const kernels::RequantizedChannels out = {
              y_data + at,
              residual != nullptr ? residual + at : nullptr,
              pixels,
              tile.end - tile.first,
              chunk,
              residual_addition_.value_or(kernels::QuantizedAddition{})};
          requantize_tiles[mk.VariantFor(tile.end - tile.first)](
              tile.base, *tile.weights, tile.channel_begin, tile.channel_begin + tile.channels,
              out);
          return;
        }
        tile.WithSums([&](const int32_t* acc, size_t acc_stride) {
          plan->ForEachOutputRun(tile.first, tile.end, [&](size_t position, size_t length,
                                                           size_t pixel) {
            const int32_t* run_acc = acc + (position - tile.first);
            uint8_t* run_y = y_data + chunk_offset + pixel;
            if (residual == nullptr) {
              mk.requantize_channels(run_acc, acc_stride, length, tile.channels, chunk, run_y,
                                     pixels);
            } else {
              mk.requantize_add_channels(run_acc, acc_stride, length, tile.channels, chunk,
                                         *residual_addition_, is_signed,
                                         residual + chunk_offset + pixel, run_y, pixels);
            }
          });
        });
      });
}

void SparseQConvKernel::ComputeFloat(Ort::KernelContext& context, const DirectConvPlan& plan,
                                     const uint8_t* x, size_t images, float* y) const {
  const kernels::Dequantization dequantization = output_->dequantization();
  const size_t n = static_cast<size_t>(conv_->n());
  const size_t pixels = plan.out_height * plan.out_width;
  conv_->Run(
      context, plan, x, images, static_cast<uint8_t>(output_->flip_sign() ? 0x80 : 0x00),
      output_->kernel_zero_point(), [&](const QuadConvTile& tile) {
        const kernels::Dequantization chunk = dequantization.FromChannel(tile.channel_begin);
        float* y_chunk = y + (tile.image * n + tile.channel_begin) * pixels;
        tile.WithSums([&](const int32_t* acc, size_t acc_stride) {
          plan.ForEachOutputRun(tile.first, tile.end, [&](size_t position, size_t length,
                                                          size_t pixel) {
            kernels::DequantizeChannels(acc + (position - tile.first), acc_stride, length,
                                        tile.channels, chunk, y_chunk + pixel, pixels);
          });
        });
      });
}

}  // namespace ortsparse
