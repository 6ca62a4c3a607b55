#include "operators/quad_conv.h"

#include <limits>
#include <optional>
#include <stdexcept>
#include <string>

namespace ortsparse {
namespace {

// Sums stay exact in int32 while the taps' padded input features * 255 * 128 < 2^31.
constexpr int64_t kMaxFeatures = 65536;
// Planes are addressed by int32 byte offsets, 4 bytes per element.
constexpr int64_t kMaxPlaneElements = std::numeric_limits<int32_t>::max() / 4;

}  // namespace

QuadConv::QuadConv(const Ort::ConstKernelInfo& info) {
  window_ = ReadConvWindow(info);
  channels_ = ReadInputChannels(info);
  const std::optional<int64_t> n = IntAttribute(info, "N");
  if (!n || *n < 1 || *n > std::numeric_limits<int32_t>::max()) {
    throw std::invalid_argument("integer attribute N (output channels) in [1, 2^31) is required");
  }
  n_ = *n;
  const std::optional<std::string> format = StringAttribute(info, "format");
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
  packed_ = ReadQuadPackedWeights(
      info, kInputWeightValues, quads, "kH * kW * ceil(C / 4) = " + std::to_string(quads), n_,
      [channels, tap_features](int64_t feature) { return feature % tap_features < channels; });
  microkernels_ = &SelectQuadMicrokernels();
}

std::shared_ptr<const DirectConvPlan> QuadConv::PlanFor(const std::vector<int64_t>& x_shape,
                                                        std::vector<int64_t>* y_shape) const {
  const auto [out_height, out_width] = ConvOutputSize(x_shape, channels_, window_);
  *y_shape = {x_shape[0], n_, out_height, out_width};
  return plans_.Get(x_shape[2], x_shape[3], {}, [this](int64_t height, int64_t width) {
    return BuildPlan(height, width);
  });
}

std::shared_ptr<const DirectConvPlan> QuadConv::BuildPlan(int64_t in_height,
                                                          int64_t in_width) const {
  auto plan = std::make_shared<DirectConvPlan>();
  const PlaneReading reading = {microkernels_->panel_rows, microkernels_->vector_rows,
                                /*may_read_in_place=*/false, kMaxPlaneElements};
  const std::vector<int64_t> tap_offsets = LayOutDirectConv(
      window_, static_cast<size_t>(channel_quads_), in_height, in_width, reading, *plan);
  // Quad q is channel quad q % ceil(C / 4) at tap q / ceil(C / 4); tap_offsets lists the taps of
  // each channel quad in turn.
  const int64_t taps = window_.Taps();
  plan->offsets.reserve(packed_.quad_indices.size());
  for (const int32_t q : packed_.quad_indices) {
    const int64_t tap = q / channel_quads_;
    const int64_t channel_quad = q % channel_quads_;
    plan->offsets.push_back(static_cast<int32_t>(
        sizeof(uint32_t) * static_cast<size_t>(tap_offsets[channel_quad * taps + tap])));
  }
  return plan;
}

}  // namespace ortsparse
