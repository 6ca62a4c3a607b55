#include "operators/depthwise_prologue.h"

#include <algorithm>
#include <limits>
#include <stdexcept>
#include <string>
#include <utility>

#include "operators/op_support.h"
#include "operators/packed_weights.h"

namespace ortsparse {
namespace {

constexpr int64_t kMaxElements = std::numeric_limits<int32_t>::max();
// A strip's input planes take about this many floats, so that they stay in L1 from packing to
// summing: on whole images the planes (52 KB a channel at 112x112) were read back from L2 by every
// kernel row's taps.
constexpr size_t kStripFloats = size_t{6} << 10;

struct SourcePlanesTag;

}  // namespace

std::optional<DepthwisePrologue> DepthwisePrologue::Read(const Ort::ConstKernelInfo& info,
                                                         int64_t channels,
                                                         const ConvWindow& product) {
  if (!IntsAttribute(info, "depthwise_kernel_shape")) return std::nullopt;
  const bool pointwise = product.Taps() == 1 && product.height.stride == 1 &&
                         product.width.stride == 1 && product.height.pad_begin == 0 &&
                         product.height.pad_end == 0 && product.width.pad_begin == 0 &&
                         product.width.pad_end == 0;
  if (!pointwise) {
    throw std::invalid_argument(
        "a depthwise prologue feeds a 1x1 product of stride 1 without "
        "padding, not this node's kernel_shape, strides and pads");
  }
  DepthwisePrologue prologue;
  prologue.window_ = ReadWindowAttributes(info, "depthwise_");
  prologue.taps_ = static_cast<size_t>(prologue.window_.Taps());
  const WindowAxis& height = prologue.window_.height;
  const WindowAxis& width = prologue.window_.width;
  prologue.weights_ =
      TensorAttribute<float>(info, "depthwise_weight", {channels, 1, height.kernel, width.kernel})
          .value_or(std::vector<float>());
  if (prologue.weights_.empty()) {
    throw std::invalid_argument(
        "attribute depthwise_weight (float [C, 1, kH, kW]) is required "
        "with depthwise_kernel_shape");
  }
  prologue.bias_ = TensorAttribute<float>(info, "depthwise_bias", {channels})
                       .value_or(std::vector<float>(static_cast<size_t>(channels), 0.0f));
  prologue.epilogue_ = ReadActivation(info, "depthwise_");
  prologue.reads_x_ = height.stride <= 2 && width.stride <= 2 &&
                      static_cast<size_t>(width.kernel) <= kernels::kMaxDirectKernelWidth;
  return prologue;
}

std::unique_ptr<const DirectConvPlan> DepthwisePrologue::Plan(int64_t in_height,
                                                              int64_t in_width) const {
  auto plan = std::make_unique<DirectConvPlan>();
  // DepthwiseRows reads no position past a row's width: no tile reaches beyond the grid.
  PlaneReading reading = {/*panel_rows=*/1, /*vector_rows=*/1, /*may_read_in_place=*/false,
                          kMaxElements, /*band_rows=*/1};
  LayOutDirectConv(window_, 1, in_height, in_width, reading, *plan);
  // A strip of S rows takes phases * (S + reach) plane rows.
  const kernels::InputPlanes& planes = plan->planes;
  const size_t phases = planes.row_phase_count * planes.column_phase_count;
  const size_t reach = planes.plane_height - 1;
  const size_t row_budget = kStripFloats / planes.plane_width / phases;
  const size_t strip_rows = row_budget > reach ? row_budget - reach : 1;
  reading.band_rows = std::clamp<size_t>(strip_rows, 1, plan->out_height);
  const std::vector<int64_t> tap_offsets =
      LayOutDirectConv(window_, 1, in_height, in_width, reading, *plan);
  plan->offsets.assign(tap_offsets.begin(), tap_offsets.end());
  return plan;
}

void DepthwisePrologue::WritePlanes(const DirectConvPlan& depthwise,
                                    const SpmmMicrokernels& microkernels, const float* channels,
                                    const kernels::InputPlanes& planes, size_t first_plane_row,
                                    size_t channel_begin, size_t channel_end, float* out) const {
  const size_t channel_floats = depthwise.planes.in_height * depthwise.planes.in_width;
  // Rows of this band that are depthwise output; the planes' rows past them are zero.
  const size_t rows = first_plane_row < depthwise.out_height
                          ? std::min(planes.plane_height, depthwise.out_height - first_plane_row)
                          : 0;
  for (size_t c = channel_begin; c < channel_end; ++c) {
    const float* channel = channels + (c - channel_begin) * channel_floats;
    float* plane = out + c * planes.ChannelElements();
    if (reads_x_) {
      WriteRowsOfX(depthwise, microkernels, channel, c, first_plane_row, rows, plane,
                   planes.plane_width);
    } else {
      WritePackedPlanes(depthwise, microkernels, channel, c, first_plane_row, rows, plane,
                        planes.plane_width);
    }
    std::fill(plane + rows * planes.plane_width, plane + planes.ChannelElements(), 0.0f);
  }
  if (channel_end == planes.channels) {
    std::fill(out + planes.channels * planes.ChannelElements(), out + planes.total_elements, 0.0f);
  }
}

void DepthwisePrologue::WritePackedPlanes(const DirectConvPlan& depthwise,
                                          const SpmmMicrokernels& microkernels,
                                          const float* channel, size_t c, size_t first_row,
                                          size_t rows, float* plane, size_t plane_width) const {
  const kernels::InputPlanes& source = depthwise.planes;
  const size_t strip_rows = depthwise.band_rows;
  float* source_planes = ThreadLocalFloats<SourcePlanesTag>(source.total_elements);
  for (size_t first = 0; first < rows; first += strip_rows) {
    microkernels.pack_input_planes(channel, source, first_row + first, 0, 1, source_planes);
    const kernels::DepthwiseRows strip = {source_planes,
                                          source.plane_width,
                                          depthwise.offsets.data(),
                                          weights_.data() + c * taps_,
                                          taps_,
                                          std::min(strip_rows, rows - first),
                                          depthwise.out_width,
                                          bias_[c],
                                          plane + first * plane_width,
                                          plane_width};
    microkernels.depthwise_rows(strip, epilogue_);
  }
}

void DepthwisePrologue::WriteRowsOfX(const DirectConvPlan& depthwise,
                                     const SpmmMicrokernels& microkernels, const float* channel,
                                     size_t c, size_t first_row, size_t rows, float* plane,
                                     size_t plane_width) const {
  const WindowAxis& height = window_.height;
  const WindowAxis& width = window_.width;
  const int64_t in_height = depthwise.in_height;
  const size_t in_width = static_cast<size_t>(depthwise.in_width);
  // The padding's rows read this row of zeros, which only grows (with zeros) and is never
  // written.
  thread_local std::vector<float> zero_row;
  if (zero_row.size() < in_width) zero_row.resize(in_width, 0.0f);
  thread_local std::vector<const float*> input_rows;
  // Output row first_row + r reads input_rows[r * stride + i * dilation] for kernel row i.
  const size_t stride = static_cast<size_t>(height.stride);
  input_rows.resize(rows == 0 ? 0
                              : (rows - 1) * stride +
                                    static_cast<size_t>((height.kernel - 1) * height.dilation) + 1);
  for (size_t k = 0; k < input_rows.size(); ++k) {
    const int64_t row = static_cast<int64_t>(first_row * stride + k) - height.pad_begin;
    input_rows[k] = row >= 0 && row < in_height ? channel + static_cast<size_t>(row) * in_width
                                                : zero_row.data();
  }
  const kernels::DepthwiseRowsOfX strip = {input_rows.data(),
                                           in_width,
                                           static_cast<size_t>(height.kernel),
                                           static_cast<size_t>(width.kernel),
                                           stride,
                                           static_cast<size_t>(width.stride),
                                           static_cast<size_t>(height.dilation),
                                           static_cast<size_t>(width.dilation),
                                           static_cast<size_t>(width.pad_begin),
                                           weights_.data() + c * taps_,
                                           rows,
                                           depthwise.out_width,
                                           bias_[c],
                                           plane,
                                           plane_width};
  microkernels.depthwise_rows_of_x(strip, epilogue_);
}

}  // namespace ortsparse
