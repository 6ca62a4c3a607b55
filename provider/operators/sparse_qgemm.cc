#include "operators/sparse_qgemm.h"

#include "operators/quad_gemm.h"

namespace ortsparse {

SparseQGemmKernel::SparseQGemmKernel(const Ort::ConstKernelInfo& info) {
  weights_.emplace(info);
  output_.emplace(info, weights_->n(), weights_->packed().channel_sums);
}

void SparseQGemmKernel::Compute(Ort::KernelContext& context) const {
  const Ort::ConstValue x = context.GetInput(kInputX);
  output_->CheckRunType(x);
  const std::vector<int64_t> x_shape = x.GetTensorTypeAndShapeInfo().GetShape();
  const auto [y_shape, rows] = MatrixProductShape(x_shape, weights_->k(), weights_->n());
  Ort::UnownedValue y = context.GetOutput(0, y_shape);
  if (rows == 0) return;

  const QuadMicrokernels& mk = weights_->microkernels();
  const size_t n = static_cast<size_t>(weights_->n());
  const uint8_t* x_data = static_cast<const uint8_t*>(x.GetTensorRawData());
  if (output_->form() == OutputForm::kFloat) {
    const kernels::Dequantization dequantization = output_->dequantization();
    float* y_data = y.GetTensorMutableData<float>();
    RunQuadGemm(context, *weights_, x_data, rows, output_->flip_sign(),
                [&](const int32_t* acc, size_t acc_stride, size_t row0, size_t tile_rows,
                    size_t channel_begin, size_t channels) {
                  const kernels::Dequantization chunk = dequantization.FromChannel(channel_begin);
                  kernels::DequantizeTile(acc, acc_stride, tile_rows, channels, chunk,
                                          y_data + row0 * n + channel_begin, n);
                });
    return;
  }
  const kernels::Requantization requantization = output_->requantization();
  uint8_t* y_data = static_cast<uint8_t*>(y.GetTensorMutableRawData());
  RunQuadGemm(context, *weights_, x_data, rows, output_->flip_sign(),
              [&](const int32_t* acc, size_t acc_stride, size_t row0, size_t tile_rows,
                  size_t channel_begin, size_t channels) {
                const kernels::Requantization chunk = requantization.FromChannel(channel_begin);
                mk.requantize(acc, acc_stride, tile_rows, channels, chunk,
                              y_data + row0 * n + channel_begin, n);
              });
}

}  // namespace ortsparse
