#include <stdexcept>
#include <vector>

#include "operators/integer_ops.h"
#include "operators/quad_gemm.h"
#include "operators/quantized_output.h"

namespace ortsparse {

template <>
void SparseMatMulIntegerKernel::Compute(Ort::KernelContext& context) const {
  const Ort::ConstValue x = context.GetInput(kInputX);
  const std::vector<int64_t> x_shape = x.GetTensorTypeAndShapeInfo().GetShape();
  const auto [y_shape, rows] = MatrixProductShape(x_shape, weights_.k(), weights_.n());
  const int32_t zero_point = RunTimeKernelZeroPoint(context, kIntegerInputXZeroPoint, flip_sign_);
  Ort::UnownedValue y = context.GetOutput(0, y_shape);
  if (rows == 0) return;

  const size_t n = static_cast<size_t>(weights_.n());
  const std::vector<int32_t> channel_offsets =
      ZeroPointOffsets(zero_point, weights_.packed().channel_sums);
  const QuadMicrokernels& mk = weights_.microkernels();
  int32_t* y_data = y.GetTensorMutableData<int32_t>();
  RunQuadGemm(context, weights_, static_cast<const uint8_t*>(x.GetTensorRawData()), rows,
              flip_sign_,
              [&](const int32_t* acc, size_t acc_stride, size_t row0, size_t tile_rows,
                  size_t channel_begin, size_t channels) {
                mk.store_sums(acc, acc_stride, tile_rows, channels,
                              channel_offsets.data() + channel_begin,
                              y_data + row0 * n + channel_begin, n);
              });
}

}  // namespace ortsparse
