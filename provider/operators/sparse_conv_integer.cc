#include <memory>
#include <vector>

#include "operators/integer_ops.h"
#include "operators/quantized_output.h"

namespace ortsparse {

template <>
void SparseConvIntegerKernel::Compute(Ort::KernelContext& context) const {
  const Ort::ConstValue x = context.GetInput(kInputX);
  const std::vector<int64_t> x_shape = x.GetTensorTypeAndShapeInfo().GetShape();
  std::vector<int64_t> y_shape;
  const std::shared_ptr<const DirectConvPlan> plan = weights_.PlanFor(x_shape, &y_shape);
  const int32_t zero_point = RunTimeKernelZeroPoint(context, kIntegerInputXZeroPoint, flip_sign_);
  Ort::UnownedValue y = context.GetOutput(0, y_shape);
  const size_t images = static_cast<size_t>(x_shape[0]);
  if (images == 0) return;

  // The padding holds the zero point, so that it multiplies to nothing.
  const size_t n = static_cast<size_t>(weights_.n());
  const std::vector<int32_t> channel_offsets =
      ZeroPointOffsets(zero_point, weights_.packed().channel_sums);
  const QuadMicrokernels& mk = weights_.microkernels();
  const size_t pixels = plan->out_height * plan->out_width;
  int32_t* y_data = y.GetTensorMutableData<int32_t>();
  weights_.Run(context, *plan, static_cast<const uint8_t*>(x.GetTensorRawData()), images,
               static_cast<uint8_t>(flip_sign_ ? 0x80 : 0x00), static_cast<uint8_t>(zero_point),
               [&](const QuadConvTile& tile) {
                 int32_t* y_chunk = y_data + (tile.image * n + tile.channel_begin) * pixels;
                 tile.WithSums([&](const int32_t* acc, size_t acc_stride) {
                   plan->ForEachOutputRun(
                       tile.first, tile.end, [&](size_t position, size_t length, size_t pixel) {
                         mk.store_sums_channels(
                             acc + (position - tile.first), acc_stride, length, tile.channels,
                             channel_offsets.data() + tile.channel_begin, y_chunk + pixel, pixels);
                       });
                 });
               });
}

}  // namespace ortsparse
