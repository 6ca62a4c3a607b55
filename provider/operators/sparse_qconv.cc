#include "operators/sparse_qconv.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <memory>
#include <stdexcept>
#include <string>

#include "operators/packed_weights.h"
#include "operators/spmm_tiles.h"

namespace ortsparse {
namespace {

// Sums stay exact in int32 while the taps' padded input features * 255 * 128 < 2^31.
constexpr int64_t kMaxFeatures = 65536;
// Output channels per task: their int32 sums for one tile stay within 16 KB of L1.
constexpr size_t kChunkChannels = 64;
// Planes of all the images of one ParallelFor (a wave) exist at once; waves of as many images as
// fit this many bytes bound the scratch memory of large batches (one image per wave at least).
constexpr size_t kMaxWavePlaneBytes = size_t{32} << 20;
// A task's share of packing an image's planes: whole channel quads, about this many bytes.
constexpr size_t kPackPartBytes = size_t{64} << 10;
// Planes are addressed by int32 byte offsets, 4 bytes per element.
constexpr int64_t kMaxPlaneElements = std::numeric_limits<int32_t>::max() / 4;

// Everything one wave's parallel tasks read; tasks write disjoint parts of Y and planes.
struct QConvJob {
  const QuadMicrokernels* microkernels;
  kernels::QuadWeights weights;
  kernels::Requantization requantization;
  const DirectConvPlan* plan;
  kernels::QuadPlanesSource source;  // image: the wave's first
  uint8_t* y;                        // at the wave's first image
  const uint8_t* residual;           // at the wave's first image; null without R
  const kernels::QuantizedAddition* residual_addition;
  bool is_signed;                    // int8 X and Y (else uint8)
  size_t n;
  size_t image_bytes;  // C * H * W
  size_t pixels;       // OH * OW
  size_t tiles_per_image;
  size_t chunks;
  size_t quads_per_pack_part;
  uint32_t* planes;  // one image's planes every planes_stride elements
  size_t planes_stride;
  PackProgress* pack_progress;  // one per image of the wave

  const uint8_t* PlanesOf(size_t image) const {
    uint32_t* image_planes = planes + image * planes_stride;
    kernels::QuadPlanesSource image_source = source;
    image_source.image += image * image_bytes;
    PackOnce(pack_progress[image], plan->planes.channels, quads_per_pack_part,
             [&](size_t quad_begin, size_t quad_end) {
               microkernels->pack_quad_planes(image_source, plan->planes, quad_begin, quad_end,
                                              image_planes);
             });
    return reinterpret_cast<const uint8_t*>(image_planes);
  }
};

// Task (image, tile of grid positions, channel chunk) of a wave.
void QConvTileTask(void* data, size_t task) {
  const QConvJob& job = *static_cast<const QConvJob*>(data);
  const QuadMicrokernels& mk = *job.microkernels;
  const size_t tile_of_wave = task / job.chunks;
  const size_t chunk = task % job.chunks;
  const size_t image = tile_of_wave / job.tiles_per_image;
  const size_t tile = tile_of_wave % job.tiles_per_image;
  const size_t first = tile * mk.panel_rows;
  const size_t end = std::min(first + mk.panel_rows, job.plan->grid_positions);
  const uint8_t* tile_base = job.PlanesOf(image) + first * sizeof(uint32_t);

  const size_t channel_begin = chunk * kChunkChannels;
  const size_t channels = std::min(kChunkChannels, job.n - channel_begin);
  alignas(64) int32_t acc[kChunkChannels * kMaxPanelRows];
  mk.TileFor(end - first)(tile_base, job.weights, channel_begin, channel_begin + channels, acc);

  kernels::Requantization chunk_requantization = job.requantization;
  chunk_requantization.channel_offsets += channel_begin;
  chunk_requantization.scales += channel_begin;
  const size_t chunk_offset = (image * job.n + channel_begin) * job.pixels;
  uint8_t* y_chunk = job.y + chunk_offset;
  job.plan->ForEachOutputRun(first, end, [&](size_t position, size_t length, size_t pixel) {
    const int32_t* run_acc = acc + (position - first);
    if (job.residual == nullptr) {
      mk.requantize_channels(run_acc, mk.panel_rows, length, channels, chunk_requantization,
                             y_chunk + pixel, job.pixels);
    } else {
      mk.requantize_add_channels(run_acc, mk.panel_rows, length, channels, chunk_requantization,
                                 *job.residual_addition, job.is_signed,
                                 job.residual + chunk_offset + pixel, y_chunk + pixel,
                                 job.pixels);
    }
  });
}

}  // namespace

OrtStatusPtr CreateSparseQConvKernel(const OrtApi& api, const OrtKernelInfo* info,
                                     void** kernel) {
  return RunReportingErrors(NodeLabel("SparseQConv", Ort::ConstKernelInfo{info}),
                            [&] { *kernel = new SparseQConvKernel(api, info); });
}

SparseQConvKernel::SparseQConvKernel(const OrtApi& /*api*/, const OrtKernelInfo* info) {
  const Ort::ConstKernelInfo kernel_info{info};
  node_label_ = NodeLabel("SparseQConv", kernel_info);
  window_ = ReadConvWindow(kernel_info);
  channels_ = ReadInputChannels(kernel_info);
  const std::optional<int64_t> n = IntAttribute(kernel_info, "N");
  if (!n || *n < 1 || *n > std::numeric_limits<int32_t>::max()) {
    throw std::invalid_argument("integer attribute N (output channels) in [1, 2^31) is required");
  }
  n_ = *n;
  const std::optional<std::string> format = StringAttribute(kernel_info, "format");
  if (format != "quad4") {
    throw std::invalid_argument("attribute format must be 'quad4', got '" +
                                format.value_or("(missing)") + "'");
  }
  channel_quads_ = (channels_ + 3) / 4;
  const int64_t taps = window_.Taps();
  // Both factors are below 2^31, so the product is exact in int64 before it is compared.
  if (taps > kMaxFeatures || 4 * channel_quads_ * taps > kMaxFeatures) {
    throw std::invalid_argument(
        "ceil(C / 4) * 4 * kH * kW = " + std::to_string(4 * channel_quads_) + " * " +
        std::to_string(taps) + " input features per output exceed " +
        std::to_string(kMaxFeatures) + ", past which int32 sums may overflow");
  }
  const int64_t quads = taps * channel_quads_;
  const int64_t channels = channels_;
  const int64_t tap_features = 4 * channel_quads_;
  weights_ = ReadQuadPackedWeights(
      kernel_info, kQConvInputWeightValues, quads,
      "kH * kW * ceil(C / 4) = " + std::to_string(quads), n_,
      [channels, tap_features](int64_t feature) { return feature % tap_features < channels; });
  output_.emplace(kernel_info, n_, weights_.channel_sums);
  ReadResidual(kernel_info);
  microkernels_ = &SelectQuadMicrokernels();
}

void SparseQConvKernel::ReadResidual(const Ort::ConstKernelInfo& info) {
  const bool has_residual =
      info.GetInputCount() > kQConvInputResidual && !info.GetInputName(kQConvInputResidual).empty();
  const std::optional<std::vector<float>> scales = FloatsAttribute(info, "add_scales");
  const std::optional<std::vector<int64_t>> zero_points = IntsAttribute(info, "add_zero_points");
  const std::optional<int64_t> residual_input = IntAttribute(info, "residual_input");
  if (!has_residual) {
    if (scales || zero_points || residual_input) {
      throw std::invalid_argument(
          "attributes add_scales, add_zero_points and residual_input describe the residual Add "
          "of input R (6), which the node does not have");
    }
    return;
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
  const TypeRange range = RangeOf(output_->x_type());
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
  residual_addition_ = kernels::MakeQuantizedAddition(
      s[0], static_cast<int32_t>(z[0]), s[1], static_cast<int32_t>(z[1]), s[2],
      static_cast<int32_t>(z[2]), /*residual_first=*/*residual_input == 0);
}

OrtStatusPtr SparseQConvKernel::ComputeV2(OrtKernelContext* context) const {
  return RunReportingErrors(node_label_, [&] {
    Ort::KernelContext kernel_context{context};
    Compute(kernel_context);
  });
}

std::shared_ptr<const DirectConvPlan> SparseQConvKernel::BuildPlan(int64_t in_height,
                                                                   int64_t in_width) const {
  auto plan = std::make_shared<DirectConvPlan>();
  const PlaneReading reading = {microkernels_->panel_rows, microkernels_->vector_rows,
                                /*may_read_in_place=*/false, kMaxPlaneElements};
  const std::vector<int64_t> tap_offsets = LayOutDirectConv(
      window_, static_cast<size_t>(channel_quads_), in_height, in_width, reading, *plan);
  // Quad q is channel quad q % ceil(C / 4) at tap q / ceil(C / 4); tap_offsets lists the taps of
  // each channel quad in turn.
  const int64_t taps = window_.Taps();
  plan->offsets.reserve(weights_.quad_indices.size());
  for (const int32_t q : weights_.quad_indices) {
    const int64_t tap = q / channel_quads_;
    const int64_t channel_quad = q % channel_quads_;
    plan->offsets.push_back(static_cast<int32_t>(
        sizeof(uint32_t) * static_cast<size_t>(tap_offsets[channel_quad * taps + tap])));
  }
  return plan;
}

void SparseQConvKernel::Compute(Ort::KernelContext& context) const {
  const Ort::ConstValue x = context.GetInput(kQConvInputX);
  const std::vector<int64_t> x_shape = x.GetTensorTypeAndShapeInfo().GetShape();
  const auto [out_height, out_width] = ConvOutputSize(x_shape, channels_, window_);
  const std::shared_ptr<const DirectConvPlan> plan = plans_.Get(
      x_shape[2], x_shape[3],
      [this](int64_t height, int64_t width) { return BuildPlan(height, width); });
  const std::vector<int64_t> y_shape = {x_shape[0], n_, out_height, out_width};
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

  const QuadMicrokernels& mk = *microkernels_;
  QConvJob job{};
  job.microkernels = microkernels_;
  job.weights = weights_.View(plan->offsets);
  job.requantization = output_->requantization();
  job.residual_addition = residual_addition_ ? &*residual_addition_ : nullptr;
  job.is_signed = output_->x_type() == ONNX_TENSOR_ELEMENT_DATA_TYPE_INT8;
  job.plan = plan.get();
  job.n = static_cast<size_t>(n_);
  job.image_bytes = static_cast<size_t>(channels_ * x_shape[2] * x_shape[3]);
  job.pixels = plan->out_height * plan->out_width;
  job.tiles_per_image = CeilDiv(plan->grid_positions, mk.panel_rows);
  job.chunks = CeilDiv(job.n, kChunkChannels);
  const size_t quad_plane_bytes = plan->planes.ChannelElements() * sizeof(uint32_t);
  job.quads_per_pack_part = std::max<size_t>(1, kPackPartBytes / quad_plane_bytes);

  // Each image's planes start on a cache line.
  job.planes_stride = RoundUp(plan->planes.total_elements, 64 / sizeof(uint32_t));
  const size_t wave_images = std::clamp<size_t>(
      kMaxWavePlaneBytes / (job.planes_stride * sizeof(uint32_t)), 1, images);
  const ScratchBuffer planes(context, wave_images * job.planes_stride);
  job.planes = reinterpret_cast<uint32_t*>(planes.data());

  const uint8_t* x_data = static_cast<const uint8_t*>(x.GetTensorRawData());
  uint8_t* y_data = static_cast<uint8_t*>(y.GetTensorMutableRawData());
  job.source = {nullptr, static_cast<size_t>(channels_),
                static_cast<uint8_t>(output_->flip_sign() ? 0x80 : 0x00),
                output_->kernel_zero_point()};
  for (size_t first = 0; first < images; first += wave_images) {
    const size_t count = std::min(wave_images, images - first);
    job.source.image = x_data + first * job.image_bytes;
    job.y = y_data + first * job.n * job.pixels;
    job.residual = residual != nullptr ? residual + first * job.n * job.pixels : nullptr;
    const std::unique_ptr<PackProgress[]> pack_progress(new PackProgress[count]);
    job.pack_progress = pack_progress.get();
    context.ParallelFor(QConvTileTask, count * job.tiles_per_image * job.chunks, 0, &job);
  }
}

}  // namespace ortsparse
