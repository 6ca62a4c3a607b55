#include "operators/sparse_conv.h"

#include <algorithm>
#include <limits>
#include <memory>
#include <optional>
#include <stdexcept>
#include <tuple>
#include <utility>

namespace ortsparse {
namespace {

// Planes of all the images of one ParallelFor (a wave) exist at once; waves of as many images as
// fit this many floats bound the scratch memory of large batches (one image per wave at least).
constexpr size_t kMaxWavePlaneFloats = size_t{8} << 20;
// A task's share of packing an image's planes: whole channels, about this many floats.
constexpr size_t kPackPartFloats = size_t{32} << 10;
// Input sizes whose plans a node keeps (dynamic shapes beyond this rebuild plans).
constexpr size_t kMaxPlans = 8;
// Packed planes, and each image's planes, start on a cache line.
constexpr size_t kCacheLineFloats = 64 / sizeof(float);

constexpr int64_t kMaxAttribute = std::numeric_limits<int32_t>::max();

// Everything one wave's parallel tasks read; tasks write disjoint parts of Y and planes.
struct ConvJob {
  const SpmmMicrokernels* microkernels;
  TileKernels<int32_t> tile_kernels;
  const TileWeights* tile_weights;
  const DirectConvPlan* plan;
  kernels::OffsetSegments segments;
  kernels::Epilogue epilogue;
  const float* x;         // at the wave's first image
  const float* bias;
  const float* residual;  // at the wave's first image, or null
  float* y;               // at the wave's first image
  size_t n;
  size_t image_floats;    // C * H * W
  size_t pixels;          // OH * OW
  size_t tiles_per_image;
  size_t channels_per_pack_part;
  float* planes;          // one image's planes every planes_stride floats, unless in place
  size_t planes_stride;
  PackProgress* pack_progress;  // one per image of the wave

  const float* PlanesOf(size_t image) const {
    const float* x_image = x + image * image_floats;
    if (plan->in_place) return x_image;
    float* image_planes = planes + image * planes_stride;
    PackOnce(pack_progress[image], plan->planes.channels, channels_per_pack_part,
             [&](size_t channel_begin, size_t channel_end) {
               microkernels->pack_input_planes(x_image, plan->planes, channel_begin, channel_end,
                                               image_planes);
             });
    return image_planes;
  }

  // Finishes grid positions [first, first + rows) of one chunk's accumulators into Y: the parts
  // of them that are output pixels, one output row at a time unless the grid is as wide as Y.
  void Store(const float* acc, size_t image, size_t first, size_t rows, size_t chunk_begin,
             size_t chunk_channels) const {
    const SpmmMicrokernels& mk = *microkernels;
    const size_t grid_width = plan->planes.plane_width;
    const size_t out_width = plan->out_width;
    const size_t image_offset = (image * n + chunk_begin) * pixels;
    const size_t end = first + rows;
    for (size_t position = first; position < end;) {
      const size_t row = position / grid_width;
      const size_t column = position % grid_width;
      const size_t next_row = (row + 1) * grid_width;
      if (column >= out_width) {
        position = next_row;
        continue;
      }
      const size_t run_end = grid_width == out_width ? end : std::min(end, row * grid_width +
                                                                          out_width);
      const size_t offset = image_offset + row * out_width + column;
      const kernels::OutputBlock out = {
          y + offset, residual != nullptr ? residual + offset : nullptr,
          bias != nullptr ? bias + chunk_begin : nullptr, pixels};
      mk.store_channel_rows(acc + (position - first), mk.panel_rows, run_end - position,
                            chunk_channels, out, epilogue);
      position = grid_width == out_width ? end : next_row;
    }
  }
};

// Task (image, tile of grid positions, channel chunk) of a wave.
void ConvTileTask(void* data, size_t task) {
  const ConvJob& job = *static_cast<const ConvJob*>(data);
  const SpmmMicrokernels& mk = *job.microkernels;
  const TileWeights& tw = *job.tile_weights;
  const size_t tile_of_wave = task / tw.chunks;
  const size_t chunk = task % tw.chunks;
  const size_t image = tile_of_wave / job.tiles_per_image;
  const size_t tile = tile_of_wave % job.tiles_per_image;
  const size_t first = tile * mk.panel_rows;
  const size_t end = std::min(first + mk.panel_rows, job.plan->grid_positions);
  const size_t start = tile + 1 == job.tiles_per_image ? job.plan->last_tile_start : first;
  const float* planes = job.PlanesOf(image);

  alignas(64) float acc[kMaxChunkChannels * kMaxPanelRows];
  MultiplyTile(mk, job.tile_kernels, tw, job.segments, planes + start, 0, end - start, chunk, acc);
  const size_t chunk_begin = tw.ChunkBegin(chunk);
  const size_t chunk_channels = std::min(job.n, tw.ChunkBegin(chunk + 1)) - chunk_begin;
  job.Store(acc + (first - start), image, first, end - first, chunk_begin, chunk_channels);
}

// The stride phases (tap * dilation) % stride of an axis's taps, increasing.
std::vector<size_t> StridePhases(const WindowAxis& axis) {
  std::vector<size_t> phases;
  for (int64_t tap = 0; tap < axis.kernel; ++tap) {
    phases.push_back(static_cast<size_t>(tap * axis.dilation % axis.stride));
  }
  std::sort(phases.begin(), phases.end());
  phases.erase(std::unique(phases.begin(), phases.end()), phases.end());
  return phases;
}

// Where `phase` is in an axis's increasing stride phases.
int64_t PhaseIndex(const std::vector<size_t>& phases, int64_t phase) {
  return std::lower_bound(phases.begin(), phases.end(), static_cast<size_t>(phase)) -
         phases.begin();
}

// How far (in plane positions) an axis's last tap reaches past its first.
int64_t Reach(const WindowAxis& axis) { return (axis.kernel - 1) * axis.dilation / axis.stride; }

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
  tile_kernels_ = DirectTileKernelsFor(*microkernels_, matrix_.block_size);
  tile_weights_ = BuildTileWeights(packed, matrix_, *microkernels_, TapsPerRun());
}

void SparseConvKernel::ReadWindow(const Ort::ConstKernelInfo& info) {
  const int64_t group = IntAttribute(info, "group").value_or(1);
  if (group != 1) {
    throw std::invalid_argument("attribute group must be 1 (the rewriter packs a grouped "
                                "convolution's weights as one block-diagonal matrix), got " +
                                std::to_string(group));
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
}

size_t SparseConvKernel::TapsPerRun() const {
  // A run: the input rows of one channel's plane that the taps of one kernel row read, which
  // overlap but for a few columns. Taps of different row phases, row shifts or column phases
  // read different runs.
  std::vector<std::tuple<int64_t, int64_t, int64_t>> runs;
  for (int64_t i = 0; i < height_.kernel; ++i) {
    for (int64_t j = 0; j < width_.kernel; ++j) {
      const int64_t row = i * height_.dilation;
      runs.emplace_back(row % height_.stride, row / height_.stride,
                        j * width_.dilation % width_.stride);
    }
  }
  std::sort(runs.begin(), runs.end());
  const size_t distinct = static_cast<size_t>(std::unique(runs.begin(), runs.end()) - runs.begin());
  return static_cast<size_t>(height_.kernel * width_.kernel) / distinct;
}

OrtStatusPtr SparseConvKernel::ComputeV2(OrtKernelContext* context) const {
  return RunReportingErrors(node_label_, [&] {
    Ort::KernelContext kernel_context{context};
    Compute(kernel_context);
  });
}

std::shared_ptr<const DirectConvPlan> SparseConvKernel::PlanFor(
    const std::vector<int64_t>& x_shape) const {
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
  {
    const std::lock_guard<std::mutex> lock(plans_mutex_);
    for (const auto& plan : plans_) {
      if (plan->in_height == x_shape[2] && plan->in_width == x_shape[3]) return plan;
    }
  }
  // Built outside the lock: two runs meeting a new size at once both build it, harmlessly.
  std::shared_ptr<const DirectConvPlan> plan = BuildPlan(x_shape[2], x_shape[3]);
  const std::lock_guard<std::mutex> lock(plans_mutex_);
  if (plans_.size() == kMaxPlans) plans_.erase(plans_.begin());
  plans_.push_back(plan);
  return plan;
}

std::shared_ptr<const DirectConvPlan> SparseConvKernel::BuildPlan(int64_t in_height,
                                                                  int64_t in_width) const {
  auto plan = std::make_shared<DirectConvPlan>();
  plan->in_height = in_height;
  plan->in_width = in_width;
  plan->out_height = static_cast<size_t>(height_.OutputSize(in_height));
  plan->out_width = static_cast<size_t>(width_.OutputSize(in_width));
  plan->row_phases = StridePhases(height_);
  plan->column_phases = StridePhases(width_);

  kernels::InputPlanes& planes = plan->planes;
  planes.channels = static_cast<size_t>(channels_);
  planes.in_height = static_cast<size_t>(in_height);
  planes.in_width = static_cast<size_t>(in_width);
  planes.stride_height = static_cast<size_t>(height_.stride);
  planes.stride_width = static_cast<size_t>(width_.stride);
  planes.pad_top = static_cast<size_t>(height_.pad_begin);
  planes.pad_left = static_cast<size_t>(width_.pad_begin);
  planes.row_phases = plan->row_phases.data();
  planes.row_phase_count = plan->row_phases.size();
  planes.column_phases = plan->column_phases.data();
  planes.column_phase_count = plan->column_phases.size();
  planes.plane_height = plan->out_height + static_cast<size_t>(Reach(height_));
  planes.plane_width = plan->out_width + static_cast<size_t>(Reach(width_));
  plan->grid_positions = (plan->out_height - 1) * planes.plane_width + plan->out_width;

  // Offsets of every tap, k = (c * kH + i) * kW + j, in floats from the planes' start; returns
  // the largest. Sizes are products of attributes and dims below 2^31 and of at most a few such
  // factors, so int64 holds them; what must also fit int32 is checked once, below.
  std::vector<int64_t> tap_offsets;
  auto lay_out_planes = [&](size_t plane_stride) {
    planes.plane_stride = plane_stride;
    const int64_t channel_floats = static_cast<int64_t>(planes.ChannelFloats());
    const int64_t column_phases = static_cast<int64_t>(planes.column_phase_count);
    const int64_t plane_width = static_cast<int64_t>(planes.plane_width);
    tap_offsets.clear();
    for (int64_t c = 0; c < channels_; ++c) {
      for (int64_t i = 0; i < height_.kernel; ++i) {
        const int64_t row_reach = i * height_.dilation;
        const int64_t a = PhaseIndex(plan->row_phases, row_reach % height_.stride);
        for (int64_t j = 0; j < width_.kernel; ++j) {
          const int64_t column_reach = j * width_.dilation;
          const int64_t b = PhaseIndex(plan->column_phases, column_reach % width_.stride);
          tap_offsets.push_back(c * channel_floats +
                                (a * column_phases + b) * static_cast<int64_t>(plane_stride) +
                                row_reach / height_.stride * plane_width +
                                column_reach / width_.stride);
        }
      }
    }
    return *std::max_element(tap_offsets.begin(), tap_offsets.end());
  };

  // The last tile's kernel variant reads its positions rounded up to a whole vector.
  const size_t panel_rows = microkernels_->panel_rows;
  const size_t last_first = (CeilDiv(plan->grid_positions, panel_rows) - 1) * panel_rows;
  const size_t last_span = RoundUp(plan->grid_positions - last_first, microkernels_->vector_rows);
  plan->last_tile_start = last_first;
  // Stride 1 and no padding: X's channels are the planes. The reads of grid position p stay inside
  // X while p < grid_positions (its last tap is then X's last float at most), so X is read in
  // place when a whole last span fits before that. Otherwise the planes are packed, each on a
  // cache line.
  const bool unpadded = height_.pad_begin == 0 && height_.pad_end == 0 &&
                        width_.pad_begin == 0 && width_.pad_end == 0;
  const size_t plane_floats = planes.plane_height * planes.plane_width;
  int64_t max_offset = 0;
  if (height_.stride == 1 && width_.stride == 1 && unpadded &&
      plan->grid_positions >= last_span) {
    max_offset = lay_out_planes(plane_floats);
    plan->in_place = true;
    plan->last_tile_start = std::min(last_first, plan->grid_positions - last_span);
  } else {
    max_offset = lay_out_planes(RoundUp(plane_floats, kCacheLineFloats));
  }
  const int64_t floats_read = static_cast<int64_t>(last_first + last_span) + max_offset;
  const int64_t planes_floats = channels_ * static_cast<int64_t>(planes.ChannelFloats());
  const int64_t total_floats = std::max(floats_read, planes_floats);
  if (total_floats > kMaxAttribute) {
    throw std::invalid_argument("X of height " + std::to_string(in_height) + " and width " +
                                std::to_string(in_width) + " needs " +
                                std::to_string(total_floats) +
                                " floats of input planes per image, past the 2^31 that "
                                "SparseConv's 32-bit offsets reach");
  }
  planes.total_floats = static_cast<size_t>(total_floats);

  const TileWeights& tw = tile_weights_;
  plan->offsets.resize(tw.input_indices.size());
  for (size_t chunk = 0; chunk < tw.chunks; ++chunk) {
    for (size_t block = 0; block < tw.k_blocks; ++block) {
      const size_t pass = chunk * tw.k_blocks + block;
      const size_t first = static_cast<size_t>(tw.segment_offsets[tw.pass_offsets[pass]]);
      const size_t end = static_cast<size_t>(tw.segment_offsets[tw.pass_offsets[pass + 1]]);
      for (size_t i = first; i < end; ++i) {
        const size_t k = block * tw.k_block_rows + tw.input_indices[i];
        plan->offsets[i] = static_cast<int32_t>(tap_offsets[k]);
      }
    }
  }
  return plan;
}

void SparseConvKernel::Compute(Ort::KernelContext& context) const {
  const Ort::ConstValue x = context.GetInput(kInputX);
  const std::vector<int64_t> x_shape = x.GetTensorTypeAndShapeInfo().GetShape();
  const std::shared_ptr<const DirectConvPlan> plan = PlanFor(x_shape);
  ConvJob job{};
  job.plan = plan.get();
  const size_t images = static_cast<size_t>(x_shape[0]);
  const std::vector<int64_t> y_shape = {x_shape[0], matrix_.n,
                                        static_cast<int64_t>(plan->out_height),
                                        static_cast<int64_t>(plan->out_width)};
  job.bias = BiasForRun(context, constant_bias_, matrix_.n);
  const float* residual = ResidualForRun(context, y_shape);
  Ort::UnownedValue y = context.GetOutput(0, y_shape);
  if (images == 0) return;

  job.microkernels = microkernels_;
  job.tile_kernels = tile_kernels_;
  job.tile_weights = &tile_weights_;
  job.segments = {tile_weights_.values.data(), plan->offsets.data(),
                  tile_weights_.segment_offsets.data(), tile_weights_.segment_channels.data()};
  job.epilogue = matrix_.epilogue;
  job.n = static_cast<size_t>(matrix_.n);
  job.image_floats = static_cast<size_t>(channels_ * x_shape[2] * x_shape[3]);
  job.pixels = plan->out_height * plan->out_width;
  job.tiles_per_image = CeilDiv(plan->grid_positions, microkernels_->panel_rows);
  job.channels_per_pack_part =
      std::max<size_t>(1, kPackPartFloats / plan->planes.ChannelFloats());

  job.planes_stride = plan->in_place ? 0 : RoundUp(plan->planes.total_floats, kCacheLineFloats);
  const size_t wave_images =
      plan->in_place ? images
                     : std::clamp<size_t>(kMaxWavePlaneFloats / job.planes_stride, 1, images);
  const ScratchBuffer planes(context, wave_images * job.planes_stride);
  job.planes = planes.data();

  const float* x_data = x.GetTensorData<float>();
  float* y_data = y.GetTensorMutableData<float>();
  const size_t y_image_floats = job.n * job.pixels;
  for (size_t first = 0; first < images; first += wave_images) {
    const size_t count = std::min(wave_images, images - first);
    job.x = x_data + first * job.image_floats;
    job.y = y_data + first * y_image_floats;
    job.residual = residual != nullptr ? residual + first * y_image_floats : nullptr;
    const std::unique_ptr<PackProgress[]> pack_progress(new PackProgress[count]);
    job.pack_progress = pack_progress.get();
    context.ParallelFor(ConvTileTask, count * job.tiles_per_image * tile_weights_.chunks, 0,
                        &job);
  }
}

}  // namespace ortsparse
