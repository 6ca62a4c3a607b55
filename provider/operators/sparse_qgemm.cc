#include "operators/sparse_qgemm.h"

#include <algorithm>
#include <limits>
#include <memory>
#include <stdexcept>
#include <string>

#include "operators/spmm_tiles.h"

namespace ortsparse {
namespace {

// Sums stay exact in int32 while K * 255 * 128 < 2^31.
constexpr int64_t kMaxK = 65536;
// Output channels per task: their int32 sums for one tile stay within 16 KB of L1.
constexpr size_t kChunkChannels = 64;
static_assert(kernels::kVnniPanelRows <= kMaxPanelRows &&
              kernels::kAvx2QuadPanelRows <= kMaxPanelRows &&
              kernels::kScalarQuadPanelRows <= kMaxPanelRows);

struct QGemmJob {
  const QuadMicrokernels* microkernels;
  kernels::QuadWeights weights;
  const kernels::Requantization* requantization;
  const uint8_t* x;
  uint8_t* y;
  size_t rows;
  size_t k;
  size_t n;
  bool flip_sign;
  size_t chunks;
  uint8_t* panels;  // one per tile
  size_t panel_bytes;
  PackProgress* panel_progress;  // one per tile
};

void QGemmTileTask(void* data, size_t task) {
  const QGemmJob& job = *static_cast<const QGemmJob*>(data);
  const QuadMicrokernels& mk = *job.microkernels;
  const size_t tile = task / job.chunks;
  const size_t chunk = task % job.chunks;
  const size_t row0 = tile * mk.panel_rows;
  const size_t rows = std::min(mk.panel_rows, job.rows - row0);
  uint8_t* panel = job.panels + tile * job.panel_bytes;
  PackOnce(job.panel_progress[tile], 1, 1, [&](size_t, size_t) {
    mk.pack_panel(job.x + row0 * job.k, job.k, rows, job.k, job.flip_sign, panel);
  });

  const size_t channel_begin = chunk * kChunkChannels;
  const size_t channels = std::min(kChunkChannels, job.n - channel_begin);
  alignas(64) int32_t acc[kChunkChannels * kMaxPanelRows];
  mk.TileFor(rows)(panel, job.weights, channel_begin, channel_begin + channels, acc);

  kernels::Requantization chunk_requantization = *job.requantization;
  chunk_requantization.channel_offsets += channel_begin;
  chunk_requantization.scales += channel_begin;
  mk.requantize(acc, mk.panel_rows, rows, channels, chunk_requantization,
                job.y + row0 * job.n + channel_begin, job.n);
}

}  // namespace

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
  if (*k < 1 || *k > kMaxK || *n < 1 || *n > std::numeric_limits<int32_t>::max()) {
    throw std::invalid_argument("K must be in [1, " + std::to_string(kMaxK) +
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

  const QuadMicrokernels& mk = *microkernels_;
  QGemmJob job{};
  job.microkernels = microkernels_;
  job.weights = weights_.View(panel_offsets_);
  const kernels::Requantization requantization = output_->requantization();
  job.requantization = &requantization;
  job.x = static_cast<const uint8_t*>(x.GetTensorRawData());
  job.y = static_cast<uint8_t*>(y.GetTensorMutableRawData());
  job.rows = rows;
  job.k = static_cast<size_t>(k_);
  job.n = static_cast<size_t>(n_);
  job.flip_sign = output_->flip_sign();
  job.chunks = CeilDiv(job.n, kChunkChannels);
  job.panel_bytes = CeilDiv(job.k, 4) * mk.panel_bytes_per_quad;
  const size_t tiles = CeilDiv(rows, mk.panel_rows);
  const ScratchBuffer panels(context, CeilDiv(tiles * job.panel_bytes, sizeof(float)));
  job.panels = reinterpret_cast<uint8_t*>(panels.data());
  const std::unique_ptr<PackProgress[]> panel_progress(new PackProgress[tiles]);
  job.panel_progress = panel_progress.get();
  context.ParallelFor(QGemmTileTask, tiles * job.chunks, 0, &job);
}

}  // namespace ortsparse
