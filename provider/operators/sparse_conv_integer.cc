#include "operators/sparse_conv_integer.h"

#include <memory>
#include <vector>

#include "operators/quantized_output.h"

namespace ortsparse {

OrtStatusPtr CreateSparseConvIntegerKernel(const OrtApi& api, const OrtKernelInfo* info,
                                           void** kernel) {
  return RunReportingErrors(NodeLabel("SparseConvInteger", Ort::ConstKernelInfo{info}),
                            [&] { *kernel = new SparseConvIntegerKernel(api, info); });
}

SparseConvIntegerKernel::SparseConvIntegerKernel(const OrtApi& /*api*/,
                                                 const OrtKernelInfo* info) {
  const Ort::ConstKernelInfo kernel_info{info};
  node_label_ = NodeLabel("SparseConvInteger", kernel_info);
  flip_sign_ = kernel_info.GetInputTypeInfo(kIntegerInputX)
                   .GetTensorTypeAndShapeInfo()
                   .GetElementType() == ONNX_TENSOR_ELEMENT_DATA_TYPE_INT8;
  conv_.emplace(kernel_info);
}

OrtStatusPtr SparseConvIntegerKernel::ComputeV2(OrtKernelContext* context) const {
  return RunReportingErrors(node_label_, [&] {
    Ort::KernelContext kernel_context{context};
    Compute(kernel_context);
  });
}

void SparseConvIntegerKernel::Compute(Ort::KernelContext& context) const {
  const Ort::ConstValue x = context.GetInput(kIntegerInputX);
  const std::vector<int64_t> x_shape = x.GetTensorTypeAndShapeInfo().GetShape();
  std::vector<int64_t> y_shape;
  const std::shared_ptr<const DirectConvPlan> plan = conv_->PlanFor(x_shape, &y_shape);
  const int32_t zero_point =
      RunTimeKernelZeroPoint(context, kIntegerInputXZeroPoint, flip_sign_);
  Ort::UnownedValue y = context.GetOutput(0, y_shape);
  const size_t images = static_cast<size_t>(x_shape[0]);
  if (images == 0) return;

  // As in SparseMatMulInteger: Σ (x - zp) w = Σ x w - zp Σ w, exact in int32. The padding holds
  // the zero point, so that it multiplies to nothing.
  const size_t n = static_cast<size_t>(conv_->n());
  const std::vector<int32_t>& channel_sums = conv_->packed().channel_sums;
  std::vector<int32_t> channel_offsets(n);
  for (size_t c = 0; c < n; ++c) channel_offsets[c] = -zero_point * channel_sums[c];
  const QuadMicrokernels& mk = conv_->microkernels();
  const size_t pixels = plan->out_height * plan->out_width;
  int32_t* y_data = y.GetTensorMutableData<int32_t>();
  conv_->Run(context, *plan, static_cast<const uint8_t*>(x.GetTensorRawData()), images,
             static_cast<uint8_t>(flip_sign_ ? 0x80 : 0x00), static_cast<uint8_t>(zero_point),
             [&](const QuadConvTile& tile) {
               int32_t* y_chunk = y_data + (tile.image * n + tile.channel_begin) * pixels;
               tile.WithSums([&](const int32_t* acc, size_t acc_stride) {
                 plan->ForEachOutputRun(tile.first, tile.end, [&](size_t position, size_t length,
                                                                  size_t pixel) {
                   mk.store_sums_channels(acc + (position - tile.first), acc_stride, length,
                                          tile.channels,
                                          channel_offsets.data() + tile.channel_begin,
                                          y_chunk + pixel, pixels);
                 });
               });
             });
}

}  // namespace ortsparse
