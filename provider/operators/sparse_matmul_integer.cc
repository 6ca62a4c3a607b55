#include "operators/sparse_matmul_integer.h"

#include <stdexcept>
#include <vector>

#include "operators/quad_gemm.h"
#include "operators/quantized_output.h"

namespace ortsparse {

OrtStatusPtr CreateSparseMatMulIntegerKernel(const OrtApi& api, const OrtKernelInfo* info,
                                             void** kernel) {
  return RunReportingErrors(NodeLabel("SparseMatMulInteger", Ort::ConstKernelInfo{info}),
                            [&] { *kernel = new SparseMatMulIntegerKernel(api, info); });
}

SparseMatMulIntegerKernel::SparseMatMulIntegerKernel(const OrtApi& /*api*/,
                                                     const OrtKernelInfo* info) {
  const Ort::ConstKernelInfo kernel_info{info};
  node_label_ = NodeLabel("SparseMatMulInteger", kernel_info);
  flip_sign_ = kernel_info.GetInputTypeInfo(kIntegerInputX)
                   .GetTensorTypeAndShapeInfo()
                   .GetElementType() == ONNX_TENSOR_ELEMENT_DATA_TYPE_INT8;
  weights_.emplace(kernel_info);
}

OrtStatusPtr SparseMatMulIntegerKernel::ComputeV2(OrtKernelContext* context) const {
  return RunReportingErrors(node_label_, [&] {
    Ort::KernelContext kernel_context{context};
    Compute(kernel_context);
  });
}

void SparseMatMulIntegerKernel::Compute(Ort::KernelContext& context) const {
  const Ort::ConstValue x = context.GetInput(kIntegerInputX);
  const std::vector<int64_t> x_shape = x.GetTensorTypeAndShapeInfo().GetShape();
  const auto [y_shape, rows] = MatrixProductShape(x_shape, weights_->k(), weights_->n());
  const int32_t zero_point = RunTimeKernelZeroPoint(context, kIntegerInputXZeroPoint, flip_sign_);
  Ort::UnownedValue y = context.GetOutput(0, y_shape);
  if (rows == 0) return;

  // Σ (x - zp) w = Σ x w - zp Σ w. |zp Σ w| <= 255 * 127 * K stays within int32 for K <= 2^16,
  // and so does the result, so adding the two in int32 is exact.
  const size_t n = static_cast<size_t>(weights_->n());
  const std::vector<int32_t>& channel_sums = weights_->packed().channel_sums;
  std::vector<int32_t> channel_offsets(n);
  for (size_t c = 0; c < n; ++c) channel_offsets[c] = -zero_point * channel_sums[c];
  const QuadMicrokernels& mk = weights_->microkernels();
  int32_t* y_data = y.GetTensorMutableData<int32_t>();
  RunQuadGemm(context, *weights_, static_cast<const uint8_t*>(x.GetTensorRawData()), rows,
              flip_sign_,
              [&](const int32_t* acc, size_t acc_stride, size_t row0, size_t tile_rows,
                  size_t channel_begin, size_t channels) {
                mk.store_sums(acc, acc_stride, tile_rows, channels,
                              channel_offsets.data() + channel_begin,
                              y_data + row0 * n + channel_begin, n);
              });
}

}  // namespace ortsparse
