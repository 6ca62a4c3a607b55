#include "operators/sparse_qgemm.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <memory>
#include <stdexcept>

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

struct TypeRange {
  int32_t min;
  int32_t max;
};

TypeRange RangeOf(ONNXTensorElementDataType type) {
  return type == ONNX_TENSOR_ELEMENT_DATA_TYPE_UINT8 ? TypeRange{0, 255} : TypeRange{-128, 127};
}

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

ONNXTensorElementDataType SparseQGemmOp::GetInputType(size_t index) const {
  switch (index) {
    case kQInputX:
      return ONNX_TENSOR_ELEMENT_DATA_TYPE_UNDEFINED;  // uint8 or int8, checked by the kernel
    case kQInputWeightValues:
      return ONNX_TENSOR_ELEMENT_DATA_TYPE_INT8;
    case kQInputOutputScale:
      return ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT;
    default:
      return ONNX_TENSOR_ELEMENT_DATA_TYPE_INT32;
  }
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
  weights_ = ReadQuadPackedWeights(kernel_info, kQInputWeightValues, k_, n_);
  ReadQuantization(kernel_info);
  microkernels_ = &SelectQuadMicrokernels();
}

void SparseQGemmKernel::ReadQuantization(const Ort::ConstKernelInfo& info) {
  x_type_ = info.GetInputTypeInfo(kQInputX).GetTensorTypeAndShapeInfo().GetElementType();
  if (x_type_ != ONNX_TENSOR_ELEMENT_DATA_TYPE_UINT8 &&
      x_type_ != ONNX_TENSOR_ELEMENT_DATA_TYPE_INT8) {
    throw std::invalid_argument("X must be uint8 or int8");
  }
  const TypeRange range = RangeOf(x_type_);
  const int32_t x_zero_point = ZeroPointAttribute(info, "x_zero_point", range);
  const int32_t y_zero_point = ZeroPointAttribute(info, "y_zero_point", range);
  const int64_t output_min = IntAttribute(info, "output_min").value_or(range.min);
  const int64_t output_max = IntAttribute(info, "output_max").value_or(range.max);
  if (output_min < range.min || output_max > range.max || output_min > output_max) {
    throw std::invalid_argument("attributes output_min = " + std::to_string(output_min) +
                                " and output_max = " + std::to_string(output_max) +
                                " must be ordered and within the range of X's type");
  }

  int is_constant = 0;
  const Ort::ConstValue scale = info.GetTensorConstantInput(kQInputOutputScale, &is_constant);
  if (!is_constant || scale == nullptr) {
    throw std::invalid_argument("output_scale (input 4) must be a constant initializer");
  }
  const std::vector<int64_t> scale_shape = scale.GetTensorTypeAndShapeInfo().GetShape();
  if (scale_shape != std::vector<int64_t>{n_}) {
    throw std::invalid_argument("output_scale has shape " + ShapeString(scale_shape) +
                                ", expected [" + std::to_string(n_) + "]");
  }
  scales_.assign(scale.GetTensorData<float>(), scale.GetTensorData<float>() + n_);
  for (const float value : scales_) {
    if (!std::isfinite(value) || value <= 0.0f) {
      throw std::invalid_argument("output_scale must hold positive finite values");
    }
  }

  std::vector<int32_t> bias(static_cast<size_t>(n_), 0);
  if (info.GetInputCount() > kQInputBias && !info.GetInputName(kQInputBias).empty()) {
    const Ort::ConstValue value = info.GetTensorConstantInput(kQInputBias, &is_constant);
    if (!is_constant || value == nullptr) {
      throw std::invalid_argument("bias (input 5) must be a constant initializer");
    }
    const std::vector<int64_t> shape = value.GetTensorTypeAndShapeInfo().GetShape();
    if (shape != std::vector<int64_t>{n_}) {
      throw std::invalid_argument("bias has shape " + ShapeString(shape) + ", expected [" +
                                  std::to_string(n_) + "]");
    }
    bias.assign(value.GetTensorData<int32_t>(), value.GetTensorData<int32_t>() + n_);
  }
  // The kernels multiply int8 activations as x + 128, which moves their zero point by as much.
  const int64_t kernel_zero_point =
      x_zero_point + (x_type_ == ONNX_TENSOR_ELEMENT_DATA_TYPE_INT8 ? 128 : 0);
  channel_offsets_.resize(static_cast<size_t>(n_));
  for (size_t c = 0; c < channel_offsets_.size(); ++c) {
    const int64_t offset = int64_t{bias[c]} - kernel_zero_point * weights_.channel_sums[c];
    if (offset < std::numeric_limits<int32_t>::min() ||
        offset > std::numeric_limits<int32_t>::max()) {
      throw std::invalid_argument("bias of output channel " + std::to_string(c) +
                                  " overflows int32 once the zero point is applied");
    }
    channel_offsets_[c] = static_cast<int32_t>(offset);
  }
  requantization_ = {channel_offsets_.data(), scales_.data(), y_zero_point,
                     static_cast<float>(output_min - y_zero_point),
                     static_cast<float>(output_max - y_zero_point)};
}

OrtStatusPtr SparseQGemmKernel::ComputeV2(OrtKernelContext* context) const {
  return RunReportingErrors(node_label_, [&] {
    Ort::KernelContext kernel_context{context};
    Compute(kernel_context);
  });
}

void SparseQGemmKernel::Compute(Ort::KernelContext& context) const {
  const Ort::ConstValue x = context.GetInput(kQInputX);
  const Ort::TensorTypeAndShapeInfo x_info = x.GetTensorTypeAndShapeInfo();
  if (x_info.GetElementType() != x_type_) {
    throw std::invalid_argument("X's element type changed since the session was created");
  }
  const std::vector<int64_t> x_shape = x_info.GetShape();
  const auto [y_shape, rows] = MatrixProductShape(x_shape, k_, n_);
  Ort::UnownedValue y = context.GetOutput(0, y_shape);
  if (rows == 0) return;

  const QuadMicrokernels& mk = *microkernels_;
  QGemmJob job{};
  job.microkernels = microkernels_;
  job.weights = weights_.View();
  job.requantization = &requantization_;
  job.x = static_cast<const uint8_t*>(x.GetTensorRawData());
  job.y = static_cast<uint8_t*>(y.GetTensorMutableRawData());
  job.rows = rows;
  job.k = static_cast<size_t>(k_);
  job.n = static_cast<size_t>(n_);
  job.flip_sign = x_type_ == ONNX_TENSOR_ELEMENT_DATA_TYPE_INT8;
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
