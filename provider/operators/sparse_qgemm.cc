#include "operators/sparse_qgemm.h"

#include <limits>
#include <stdexcept>
#include <string>

#include "operators/quad_gemm.h"

namespace ortsparse {

OrtStatusPtr SparseQGemmOp::CreateKernelV2(const OrtApi& api, const OrtKernelInfo* info,
                                           void** kernel) const {
  return RunReportingErrors(NodeLabel(GetName(), Ort::ConstKernelInfo{info}),
                            [&] { *kernel = new SparseQGemmKernel(api, info); });
}

SparseQGemmKernel::SparseQGemmKernel(const OrtApi& /*api*/, const OrtKernelInfo* info) {
  const Ort::ConstKernelInfo kernel_info{info};
  node_label_ = NodeLabel("SparseQGemm", kernel_info);
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
  const int64_t quads = (k_ + 3) / 4;
  weights_ = ReadQuadPackedWeights(kernel_info, kQInputWeightValues, quads,
                                   "ceil(K / 4) = " + std::to_string(quads), n_,
                                   [k = k_](int64_t feature) { return feature < k; });
  output_.emplace(kernel_info, n_, weights_.channel_sums);
  microkernels_ = &SelectQuadMicrokernels();
  panel_offsets_.reserve(weights_.quad_indices.size());
  for (const int32_t q : weights_.quad_indices) {
    panel_offsets_.push_back(q * static_cast<int32_t>(microkernels_->panel_bytes_per_quad));
  }
}

OrtStatusPtr SparseQGemmKernel::ComputeV2(OrtKernelContext* context) const {
  return RunReportingErrors(node_label_, [&] {
    Ort::KernelContext kernel_context{context};
    Compute(kernel_context);
  });
}

void SparseQGemmKernel::Compute(Ort::KernelContext& context) const {
  const Ort::ConstValue x = context.GetInput(kQInputX);
  output_->CheckRunType(x);
  const std::vector<int64_t> x_shape = x.GetTensorTypeAndShapeInfo().GetShape();
  const auto [y_shape, rows] = MatrixProductShape(x_shape, k_, n_);
  Ort::UnownedValue y = context.GetOutput(0, y_shape);
  if (rows == 0) return;

  const kernels::Requantization requantization = output_->requantization();
  const QuadMicrokernels& mk = *microkernels_;
  uint8_t* y_data = static_cast<uint8_t*>(y.GetTensorMutableRawData());
  const size_t n = static_cast<size_t>(n_);
  RunQuadGemm(context, mk, weights_.View(panel_offsets_),
              static_cast<const uint8_t*>(x.GetTensorRawData()),
              {rows, static_cast<size_t>(k_), n}, output_->flip_sign(),
              [&](const int32_t* acc, size_t acc_stride, size_t row0, size_t tile_rows,
                  size_t channel_begin, size_t channels) {
                kernels::Requantization chunk = requantization;
                chunk.channel_offsets += channel_begin;
                chunk.scales += channel_begin;
                mk.requantize(acc, acc_stride, tile_rows, channels, chunk,
                              y_data + row0 * n + channel_begin, n);
              });
}

}  // namespace ortsparse
