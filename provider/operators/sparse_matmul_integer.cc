#include "operators/sparse_matmul_integer.h"

#include <limits>
#include <stdexcept>
#include <string>

#include "operators/quad_gemm.h"

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
  const std::optional<int64_t> k = IntAttribute(kernel_info, "K");
  const std::optional<int64_t> n = IntAttribute(kernel_info, "N");
  if (!k || !n) throw std::invalid_argument("integer attributes K and N are required");
  if (*k < 1 || *k > kMaxQuadGemmK || *n < 1 || *n > std::numeric_limits<int32_t>::max()) {
    throw std::invalid_argument("K must be in [1, " + std::to_string(kMaxQuadGemmK) +
                                "] (int32 sums stay exact) and N in [1, 2^31), got K=" +
                                std::to_string(*k) + ", N=" + std::to_string(*n));
  }
  k_ = *k;
  n_ = *n;
  const std::optional<std::string> format = StringAttribute(kernel_info, "format");
  if (format != "quad4") {
    throw std::invalid_argument("attribute format must be 'quad4', got '" +
                                format.value_or("(missing)") + "'");
  }
  flip_sign_ = kernel_info.GetInputTypeInfo(kIntegerInputX)
                   .GetTensorTypeAndShapeInfo()
                   .GetElementType() == ONNX_TENSOR_ELEMENT_DATA_TYPE_INT8;
  const int64_t quads = (k_ + 3) / 4;
  weights_ = ReadQuadPackedWeights(kernel_info, kIntegerInputWeightValues, quads,
                                   "ceil(K / 4) = " + std::to_string(quads), n_,
                                   [k = k_](int64_t feature) { return feature < k; });
  microkernels_ = &SelectQuadMicrokernels();
  panel_offsets_.reserve(weights_.quad_indices.size());
  for (const int32_t q : weights_.quad_indices) {
    panel_offsets_.push_back(q * static_cast<int32_t>(microkernels_->panel_bytes_per_quad));
  }
}

OrtStatusPtr SparseMatMulIntegerKernel::ComputeV2(OrtKernelContext* context) const {
  return RunReportingErrors(node_label_, [&] {
    Ort::KernelContext kernel_context{context};
    Compute(kernel_context);
  });
}

int32_t SparseMatMulIntegerKernel::KernelZeroPoint(Ort::KernelContext& context) const {
  const int32_t flip = flip_sign_ ? 128 : 0;
  if (context.GetInputCount() <= kIntegerInputXZeroPoint) return flip;
  const Ort::ConstValue zero_point = context.GetInput(kIntegerInputXZeroPoint);
  if (zero_point == nullptr) return flip;
  const Ort::TensorTypeAndShapeInfo info = zero_point.GetTensorTypeAndShapeInfo();
  if (info.GetElementCount() != 1) {
    throw std::invalid_argument("x_zero_point must hold one value (per-tensor quantization), got "
                                "shape " + ShapeString(info.GetShape()));
  }
  return flip + (flip_sign_ ? int32_t{zero_point.GetTensorData<int8_t>()[0]}
                            : int32_t{zero_point.GetTensorData<uint8_t>()[0]});
}

void SparseMatMulIntegerKernel::Compute(Ort::KernelContext& context) const {
  const Ort::ConstValue x = context.GetInput(kIntegerInputX);
  const std::vector<int64_t> x_shape = x.GetTensorTypeAndShapeInfo().GetShape();
  const auto [y_shape, rows] = MatrixProductShape(x_shape, k_, n_);
  const int32_t zero_point = KernelZeroPoint(context);
  Ort::UnownedValue y = context.GetOutput(0, y_shape);
  if (rows == 0) return;

  // Σ (x - zp) w = Σ x w - zp Σ w. |zp Σ w| <= 255 * 127 * K stays within int32 for K <= 2^16,
  // and so does the result, so adding the two in int32 is exact.
  const size_t n = static_cast<size_t>(n_);
  std::vector<int32_t> channel_offsets(n);
  for (size_t c = 0; c < n; ++c) channel_offsets[c] = -zero_point * weights_.channel_sums[c];
  const QuadMicrokernels& mk = *microkernels_;
  int32_t* y_data = y.GetTensorMutableData<int32_t>();
  RunQuadGemm(context, mk, weights_.View(panel_offsets_),
              static_cast<const uint8_t*>(x.GetTensorRawData()),
              {rows, static_cast<size_t>(k_), n}, flip_sign_,
              [&](const int32_t* acc, size_t acc_stride, size_t row0, size_t tile_rows,
                  size_t channel_begin, size_t channels) {
                mk.store_sums(acc, acc_stride, tile_rows, channels,
                              channel_offsets.data() + channel_begin,
                              y_data + row0 * n + channel_begin, n);
              });
}

}  // namespace ortsparse
