#include "operators/conv_geometry.h"

#include <algorithm>
#include <limits>
#include <optional>
#include <stdexcept>
#include <string>
#include <tuple>
#include <utility>

#include "operators/op_support.h"

namespace ortsparse {
namespace {

constexpr int64_t kMaxAttribute = std::numeric_limits<int32_t>::max();
// Input sizes whose plans a node keeps (dynamic shapes beyond this rebuild plans).
constexpr size_t kMaxPlans = 8;
// Packed planes start on a cache line: 16 elements of 4 bytes.
constexpr size_t kCacheLineElements = 16;

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

size_t ConvWindow::TapsPerRun() const {
  std::vector<std::tuple<int64_t, int64_t, int64_t>> runs;
  for (int64_t i = 0; i < height.kernel; ++i) {
    for (int64_t j = 0; j < width.kernel; ++j) {
      const int64_t row = i * height.dilation;
      runs.emplace_back(row % height.stride, row / height.stride,
                        j * width.dilation % width.stride);
    }
  }
  std::sort(runs.begin(), runs.end());
  const size_t distinct = static_cast<size_t>(std::unique(runs.begin(), runs.end()) - runs.begin());
  return static_cast<size_t>(Taps()) / distinct;
}

ConvWindow ReadConvWindow(const Ort::ConstKernelInfo& info) {
  const int64_t group = IntAttribute(info, "group").value_or(1);
  if (group != 1) {
    throw std::invalid_argument("attribute group must be 1 (the rewriter packs a grouped "
                                "convolution's weights as one block-diagonal matrix), got " +
                                std::to_string(group));
  }
  return ReadWindowAttributes(info, "");
}

ConvWindow ReadWindowAttributes(const Ort::ConstKernelInfo& info, const std::string& prefix) {
  using Ints = std::vector<int64_t>;
  const auto read = [&](const char* name, size_t count, int64_t min_value,
                        std::optional<Ints> fallback) {
    return ReadInts(info, (prefix + name).c_str(), count, min_value, std::move(fallback));
  };
  const Ints kernel = read("kernel_shape", 2, 1, std::nullopt);
  const Ints strides = read("strides", 2, 1, Ints{1, 1});
  const Ints dilations = read("dilations", 2, 1, Ints{1, 1});
  const Ints pads = read("pads", 4, 0, Ints{0, 0, 0, 0});
  return {{kernel[0], strides[0], dilations[0], pads[0], pads[2]},
          {kernel[1], strides[1], dilations[1], pads[1], pads[3]}};
}

int64_t ReadInputChannels(const Ort::ConstKernelInfo& info) {
  const std::optional<int64_t> channels = IntAttribute(info, "C");
  if (!channels || *channels < 1 || *channels > kMaxAttribute) {
    throw std::invalid_argument("integer attribute C (input channels) in [1, 2^31) is required");
  }
  return *channels;
}

std::pair<int64_t, int64_t> ConvOutputSize(const std::vector<int64_t>& x_shape, int64_t channels,
                                           const ConvWindow& window,
                                           const char* channels_attribute) {
  if (x_shape.size() != 4) {
    throw std::invalid_argument("X must have rank 4 (NCHW), got shape " + ShapeString(x_shape));
  }
  if (x_shape[1] != channels) {
    throw std::invalid_argument("X has " + std::to_string(x_shape[1]) + " channels (shape " +
                                ShapeString(x_shape) + ") but attribute " +
                                channels_attribute + " is " +
                                std::to_string(channels));
  }
  const int64_t out_height = window.height.OutputSize(x_shape[2]);
  const int64_t out_width = window.width.OutputSize(x_shape[3]);
  if (out_height < 1 || out_width < 1) {
    throw std::invalid_argument("output size " + std::to_string(out_height) + "x" +
                                std::to_string(out_width) + " < 1 for X of shape " +
                                ShapeString(x_shape) + ": the dilated kernel does not fit the "
                                "padded image");
  }
  return {out_height, out_width};
}

std::vector<int64_t> LayOutDirectConv(const ConvWindow& window, size_t units, int64_t in_height,
                                      int64_t in_width, const PlaneReading& reading,
                                      DirectConvPlan& plan) {
  const WindowAxis& height = window.height;
  const WindowAxis& width = window.width;
  plan.in_height = in_height;
  plan.in_width = in_width;
  plan.out_height = static_cast<size_t>(height.OutputSize(in_height));
  plan.out_width = static_cast<size_t>(width.OutputSize(in_width));
  plan.row_phases = StridePhases(height);
  plan.column_phases = StridePhases(width);

  kernels::InputPlanes& planes = plan.planes;
  planes.channels = units;
  planes.in_height = static_cast<size_t>(in_height);
  planes.in_width = static_cast<size_t>(in_width);
  planes.stride_height = static_cast<size_t>(height.stride);
  planes.stride_width = static_cast<size_t>(width.stride);
  planes.pad_top = static_cast<size_t>(height.pad_begin);
  planes.pad_left = static_cast<size_t>(width.pad_begin);
  planes.row_phases = plan.row_phases.data();
  planes.row_phase_count = plan.row_phases.size();
  planes.column_phases = plan.column_phases.data();
  planes.column_phase_count = plan.column_phases.size();
  plan.band_rows = reading.band_rows;
  plan.in_place = false;
  const size_t grid_rows =
      plan.band_rows == 0 ? plan.out_height : std::min(plan.band_rows, plan.out_height);
  planes.plane_height = grid_rows + static_cast<size_t>(Reach(height));
  planes.plane_width = plan.out_width + static_cast<size_t>(Reach(width));
  plan.grid_positions = (grid_rows - 1) * planes.plane_width + plan.out_width;

  // Sizes are products of attributes and dims below 2^31 and of at most a few such factors, so
  // int64 holds them; what must also fit the op's offsets is checked once, below.
  std::vector<int64_t> tap_offsets;
  auto lay_out_planes = [&](size_t plane_stride) {
    planes.plane_stride = plane_stride;
    const int64_t unit_elements = static_cast<int64_t>(planes.ChannelElements());
    const int64_t column_phases = static_cast<int64_t>(planes.column_phase_count);
    const int64_t plane_width = static_cast<int64_t>(planes.plane_width);
    tap_offsets.clear();
    for (int64_t c = 0; c < static_cast<int64_t>(units); ++c) {
      for (int64_t i = 0; i < height.kernel; ++i) {
        const int64_t row_reach = i * height.dilation;
        const int64_t a = PhaseIndex(plan.row_phases, row_reach % height.stride);
        for (int64_t j = 0; j < width.kernel; ++j) {
          const int64_t column_reach = j * width.dilation;
          const int64_t b = PhaseIndex(plan.column_phases, column_reach % width.stride);
          tap_offsets.push_back(c * unit_elements +
                                (a * column_phases + b) * static_cast<int64_t>(plane_stride) +
                                row_reach / height.stride * plane_width +
                                column_reach / width.stride);
        }
      }
    }
    return *std::max_element(tap_offsets.begin(), tap_offsets.end());
  };

  // The last tile's kernel variant reads its positions rounded up to a whole vector.
  const size_t last_first =
      (CeilDiv(plan.grid_positions, reading.panel_rows) - 1) * reading.panel_rows;
  const size_t last_span = RoundUp(plan.grid_positions - last_first, reading.vector_rows);
  plan.last_tile_start = last_first;
  // Stride 1 and no padding: X's channels are the planes. The reads of grid position p stay inside
  // X while p < grid_positions (its last tap is then X's last element at most), so X is read in
  // place when a whole last span fits before that. Otherwise the planes are packed, each on a
  // cache line.
  const bool unpadded = height.pad_begin == 0 && height.pad_end == 0 && width.pad_begin == 0 &&
                        width.pad_end == 0;
  const size_t plane_elements = planes.plane_height * planes.plane_width;
  int64_t max_offset = 0;
  if (reading.may_read_in_place && plan.band_rows == 0 && height.stride == 1 &&
      width.stride == 1 && unpadded && plan.grid_positions >= last_span) {
    max_offset = lay_out_planes(plane_elements);
    plan.in_place = true;
    plan.last_tile_start = std::min(last_first, plan.grid_positions - last_span);
  } else {
    max_offset = lay_out_planes(RoundUp(plane_elements, kCacheLineElements));
  }
  const int64_t elements_read = static_cast<int64_t>(last_first + last_span) + max_offset;
  const int64_t planes_elements =
      static_cast<int64_t>(units) * static_cast<int64_t>(planes.ChannelElements());
  const int64_t total_elements = std::max(elements_read, planes_elements);
  if (total_elements > reading.max_elements) {
    throw std::invalid_argument("X of height " + std::to_string(in_height) + " and width " +
                                std::to_string(in_width) + " needs " +
                                std::to_string(total_elements) +
                                " elements of input planes per image, past the " +
                                std::to_string(reading.max_elements) +
                                " that the op's 32-bit offsets reach");
  }
  planes.total_elements = static_cast<size_t>(total_elements);
  return tap_offsets;
}

std::shared_ptr<const DirectConvPlan> DirectConvPlans::Get(
    int64_t in_height, int64_t in_width, const std::vector<size_t>& x_part_channels,
    const Builder& build) const {
  {
    const std::lock_guard<std::mutex> lock(mutex_);
    for (const auto& plan : plans_) {
      if (plan->XHeight() == in_height && plan->XWidth() == in_width &&
          plan->x_part_channels == x_part_channels) {
        return plan;
      }
    }
  }
  // Built outside the lock: two runs meeting a new size at once both build it, harmlessly.
  std::shared_ptr<const DirectConvPlan> plan = build(in_height, in_width);
  const std::lock_guard<std::mutex> lock(mutex_);
  if (plans_.size() == kMaxPlans) plans_.erase(plans_.begin());
  plans_.push_back(plan);
  return plan;
}

}  // namespace ortsparse
