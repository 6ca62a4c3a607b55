#include "operators/sparse_conv.h"

#include <algorithm>
#include <limits>
#include <memory>
#include <optional>
#include <stdexcept>
#include <utility>

namespace ortsparse {
namespace {

// Panels of all the images of one ParallelFor (a wave) exist at once; waves of as many images as
// fit this many floats bound the scratch memory of large batches (one image per wave at least).
constexpr size_t kMaxWavePanelFloats = size_t{8} << 20;

constexpr int64_t kMaxAttribute = std::numeric_limits<int32_t>::max();

static_assert(kMaxPanelRows <= kernels::kMaxConvPanelRows);

// Everything one wave's parallel tasks read; tasks write disjoint parts of Y and panels.
struct ConvJob {
  const SpmmMicrokernels* microkernels;
  TileKernels tile_kernels;
  const TileWeights* tile_weights;
  kernels::WeightSegments segments;
  kernels::Epilogue epilogue;
  kernels::ConvGeometry geometry;
  bool pointwise;
  const float* x;         // at the wave's first image
  const float* bias;
  const float* residual;  // at the wave's first image, or null
  float* y;               // at the wave's first image
  size_t k;
  size_t n;
  size_t image_floats;  // C * H * W
  size_t pixels;        // OH * OW
  size_t tiles_per_image;
  float* panels;  // one panel of k * panel_rows floats per tile of the wave
  PanelProgress* panel_progress;  // one per tile of the wave

  void PackColumns(const float* image, size_t pixel_begin, size_t rows, size_t k_begin,
                   size_t k_end, float* panel) const {
    const size_t panel_rows = microkernels->panel_rows;
    if (pointwise) {
      kernels::PackPointwisePanel(image, pixels, pixel_begin, rows, k_begin, k_end, panel_rows,
                                  panel);
    } else {
      microkernels->pack_conv_panel(image, geometry, pixel_begin, rows, k_begin, k_end,
                                    panel_rows, panel);
    }
  }
};

// Task (image, pixel tile, channel chunk) of a wave.
void ConvTileTask(void* data, size_t task) {
  const ConvJob& job = *static_cast<const ConvJob*>(data);
  const SpmmMicrokernels& mk = *job.microkernels;
  const TileWeights& tw = *job.tile_weights;
  const size_t tile_of_wave = task / tw.chunks;
  const size_t chunk = task % tw.chunks;
  const size_t image = tile_of_wave / job.tiles_per_image;
  const size_t pixel_begin = tile_of_wave % job.tiles_per_image * mk.panel_rows;
  const size_t rows = std::min(mk.panel_rows, job.pixels - pixel_begin);
  float* panel = job.panels + tile_of_wave * job.k * mk.panel_rows;
  const float* x = job.x + image * job.image_floats;
  PackPanelOnce(job.panel_progress[tile_of_wave], job.k, [&](size_t k_begin, size_t k_end) {
    job.PackColumns(x, pixel_begin, rows, k_begin, k_end, panel);
  });

  alignas(64) float acc[kMaxChunkChannels * kMaxPanelRows];
  MultiplyPanel(mk, job.tile_kernels, tw, job.segments, panel, rows, chunk, acc);
  const size_t chunk_begin = tw.ChunkBegin(chunk);
  const size_t chunk_channels = std::min(job.n, tw.ChunkBegin(chunk + 1)) - chunk_begin;
  const size_t offset = (image * job.n + chunk_begin) * job.pixels + pixel_begin;
  const kernels::OutputBlock out = {
      job.y + offset, job.residual != nullptr ? job.residual + offset : nullptr,
      job.bias != nullptr ? job.bias + chunk_begin : nullptr, job.pixels};
  mk.store_channel_rows(acc, mk.panel_rows, rows, chunk_channels, out, job.epilogue);
}

// The attribute's `count` values, each in [min_value, 2^31); `fallback` when it is absent, or an
// error when there is none.
std::vector<int64_t> ReadInts(const Ort::ConstKernelInfo& info, const char* name, size_t count,
                              int64_t min_value,
                              std::optional<std::vector<int64_t>> fallback = std::nullopt) {
  std::optional<std::vector<int64_t>> values = IntsAttribute(info, name);
  if (!values) values = std::move(fallback);
  if (!values) throw std::invalid_argument("attribute " + std::string(name) + " is required");
  if (values->size() != count) {
    throw std::invalid_argument("attribute " + std::string(name) + " must have " +
                                std::to_string(count) + " values, got " + ShapeString(*values));
  }
  for (const int64_t value : *values) {
    if (value < min_value || value > kMaxAttribute) {
      throw std::invalid_argument("attribute " + std::string(name) + " = " +
                                  ShapeString(*values) + " must hold values in [" +
                                  std::to_string(min_value) + ", 2^31)");
    }
  }
  return *values;
}

}  // namespace

int64_t WindowAxis::OutputSize(int64_t input) const {
  const int64_t last_start = input + pad_begin + pad_end - dilation * (kernel - 1) - 1;
  return last_start < 0 ? 0 : last_start / stride + 1;
}

SparseConvKernel::SparseConvKernel(const OrtApi& /*api*/, const OrtKernelInfo* info) {
  const Ort::ConstKernelInfo kernel_info{info};
  node_label_ = NodeLabel("SparseConv", kernel_info);
  matrix_ = ReadSparseMatrixAttributes(kernel_info);
  ReadWindow(kernel_info);
  PackedWeights packed = ReadPackedWeights(kernel_info, matrix_);
  constant_bias_ = ReadConstantBias(kernel_info, matrix_.n);
  microkernels_ = &SelectMicrokernels();
  tile_kernels_ = TileKernelsFor(*microkernels_, matrix_.block_size);
  tile_weights_ = BuildTileWeights(packed, matrix_, *microkernels_);
}

void SparseConvKernel::ReadWindow(const Ort::ConstKernelInfo& info) {
  const int64_t group = IntAttribute(info, "group").value_or(1);
  if (group != 1) {
    throw std::invalid_argument("attribute group must be 1 (grouped and depthwise convolutions "
                                "are left to ORT), got " + std::to_string(group));
  }
  const std::optional<int64_t> channels = IntAttribute(info, "C");
  if (!channels || *channels < 1 || *channels > kMaxAttribute) {
    throw std::invalid_argument("integer attribute C (input channels) in [1, 2^31) is required");
  }
  channels_ = *channels;
  using Ints = std::vector<int64_t>;
  const Ints kernel = ReadInts(info, "kernel_shape", 2, 1);
  const Ints strides = ReadInts(info, "strides", 2, 1, Ints{1, 1});
  const Ints dilations = ReadInts(info, "dilations", 2, 1, Ints{1, 1});
  const Ints pads = ReadInts(info, "pads", 4, 0, Ints{0, 0, 0, 0});
  height_ = {kernel[0], strides[0], dilations[0], pads[0], pads[2]};
  width_ = {kernel[1], strides[1], dilations[1], pads[1], pads[3]};

  // K < 2^31 and every factor >= 1, so a product past K is detected before it can overflow.
  const int64_t taps = kernel[0] * kernel[1];
  if (taps > matrix_.k || channels_ * taps != matrix_.k) {
    throw std::invalid_argument("attribute K = " + std::to_string(matrix_.k) +
                                " must equal C * kH * kW = " + std::to_string(channels_) + " * " +
                                std::to_string(kernel[0]) + " * " + std::to_string(kernel[1]));
  }
  pointwise_ = taps == 1 && strides == Ints{1, 1} && pads == Ints{0, 0, 0, 0};
}

OrtStatusPtr SparseConvKernel::ComputeV2(OrtKernelContext* context) const {
  return RunReportingErrors(node_label_, [&] {
    Ort::KernelContext kernel_context{context};
    Compute(kernel_context);
  });
}

kernels::ConvGeometry SparseConvKernel::GeometryFor(const std::vector<int64_t>& x_shape) const {
  if (x_shape.size() != 4) {
    throw std::invalid_argument("X must have rank 4 (NCHW), got shape " + ShapeString(x_shape));
  }
  if (x_shape[1] != channels_) {
    throw std::invalid_argument("X has " + std::to_string(x_shape[1]) + " channels (shape " +
                                ShapeString(x_shape) + ") but attribute C is " +
                                std::to_string(channels_));
  }
  const int64_t out_height = height_.OutputSize(x_shape[2]);
  const int64_t out_width = width_.OutputSize(x_shape[3]);
  if (out_height < 1 || out_width < 1) {
    throw std::invalid_argument("output size " + std::to_string(out_height) + "x" +
                                std::to_string(out_width) + " < 1 for X of shape " +
                                ShapeString(x_shape) + ": the dilated kernel does not fit the "
                                "padded image");
  }
  auto size = [](int64_t value) { return static_cast<size_t>(value); };
  kernels::ConvGeometry geometry;
  geometry.in_height = size(x_shape[2]);
  geometry.in_width = size(x_shape[3]);
  geometry.out_height = size(out_height);
  geometry.out_width = size(out_width);
  geometry.kernel_height = size(height_.kernel);
  geometry.kernel_width = size(width_.kernel);
  geometry.stride_height = size(height_.stride);
  geometry.stride_width = size(width_.stride);
  geometry.dilation_height = size(height_.dilation);
  geometry.dilation_width = size(width_.dilation);
  geometry.pad_top = size(height_.pad_begin);
  geometry.pad_left = size(width_.pad_begin);
  return geometry;
}

void SparseConvKernel::Compute(Ort::KernelContext& context) const {
  const Ort::ConstValue x = context.GetInput(kInputX);
  const std::vector<int64_t> x_shape = x.GetTensorTypeAndShapeInfo().GetShape();
  ConvJob job{};
  job.geometry = GeometryFor(x_shape);
  const size_t images = static_cast<size_t>(x_shape[0]);
  const std::vector<int64_t> y_shape = {x_shape[0], matrix_.n,
                                        static_cast<int64_t>(job.geometry.out_height),
                                        static_cast<int64_t>(job.geometry.out_width)};
  job.bias = BiasForRun(context, constant_bias_, matrix_.n);
  const float* residual = ResidualForRun(context, y_shape);
  Ort::UnownedValue y = context.GetOutput(0, y_shape);
  if (images == 0) return;

  job.microkernels = microkernels_;
  job.tile_kernels = tile_kernels_;
  job.tile_weights = &tile_weights_;
  job.segments = tile_weights_.View();
  job.epilogue = matrix_.epilogue;
  job.pointwise = pointwise_;
  job.k = static_cast<size_t>(matrix_.k);
  job.n = static_cast<size_t>(matrix_.n);
  job.image_floats = static_cast<size_t>(channels_) * job.geometry.in_height *
                     job.geometry.in_width;
  job.pixels = job.geometry.out_height * job.geometry.out_width;
  const size_t panel_rows = microkernels_->panel_rows;
  job.tiles_per_image = CeilDiv(job.pixels, panel_rows);

  const size_t image_panel_floats = job.tiles_per_image * job.k * panel_rows;
  const size_t wave_images = std::clamp<size_t>(kMaxWavePanelFloats / image_panel_floats, 1,
                                                images);
  const size_t wave_tiles = wave_images * job.tiles_per_image;
  const ScratchBuffer panels(context, wave_tiles * job.k * panel_rows);
  job.panels = panels.data();

  const float* x_data = x.GetTensorData<float>();
  float* y_data = y.GetTensorMutableData<float>();
  const size_t y_image_floats = job.n * job.pixels;
  for (size_t first = 0; first < images; first += wave_images) {
    const size_t count = std::min(wave_images, images - first);
    job.x = x_data + first * job.image_floats;
    job.y = y_data + first * y_image_floats;
    job.residual = residual != nullptr ? residual + first * y_image_floats : nullptr;
    const std::unique_ptr<PanelProgress[]> panel_progress(new PanelProgress[wave_tiles]);
    job.panel_progress = panel_progress.get();
    context.ParallelFor(ConvTileTask, count * job.tiles_per_image * tile_weights_.chunks, 0,
                        &job);
  }
}

}  // namespace ortsparse
