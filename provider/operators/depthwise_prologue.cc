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

// The float tensor attribute `name` of `shape`, or nothing when the node has none; throws
// std::invalid_argument for another type or shape.
std::optional<std::vector<float>> FloatTensorAttribute(const Ort::ConstKernelInfo& info,
                                                       const char* name,
                                                       const std::vector<int64_t>& shape) {
  Ort::AllocatorWithDefaultOptions allocator;
  Ort::Value value{nullptr};
  try {
    value = info.GetTensorAttribute(name, allocator);
  } catch (const Ort::Exception&) {
    return std::nullopt;  // ORT reports a missing attribute as an error
  }
  const Ort::TensorTypeAndShapeInfo type_and_shape = value.GetTensorTypeAndShapeInfo();
  if (type_and_shape.GetElementType() != ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT ||
      type_and_shape.GetShape() != shape) {
    throw std::invalid_argument("attribute " + std::string(name) +
                                " must be a float tensor of shape " + ShapeString(shape) +
                                ", got shape " + ShapeString(type_and_shape.GetShape()));
  }
  const float* data = value.GetTensorData<float>();
  return std::vector<float>(data, data + type_and_shape.GetElementCount());
}

struct SourcePlanesTag;
struct SumsTag;

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
      FloatTensorAttribute(info, "depthwise_weight", {channels, 1, height.kernel, width.kernel})
          .value_or(std::vector<float>());
  if (prologue.weights_.empty()) {
    throw std::invalid_argument(
        "attribute depthwise_weight (float [C, 1, kH, kW]) is required "
        "with depthwise_kernel_shape");
  }
  prologue.bias_ = FloatTensorAttribute(info, "depthwise_bias", {channels})
                       .value_or(std::vector<float>(static_cast<size_t>(channels), 0.0f));
  prologue.epilogue_ = ReadActivation(info, "depthwise_");
  return prologue;
}

std::unique_ptr<const DirectConvPlan> DepthwisePrologue::Plan(int64_t in_height, int64_t in_width,
                                                              size_t band_rows) const {
  auto plan = std::make_unique<DirectConvPlan>();
  // DepthwiseTaps sums whole vectors of positions: the planes hold what the last one reads.
  const PlaneReading reading = {kernels::kDepthwiseMaxLanes, kernels::kDepthwiseMaxLanes,
                                /*may_read_in_place=*/false, kMaxElements, band_rows};
  const std::vector<int64_t> tap_offsets =
      LayOutDirectConv(window_, 1, in_height, in_width, reading, *plan);
  plan->offsets.assign(tap_offsets.begin(), tap_offsets.end());
  return plan;
}

void DepthwisePrologue::WritePlanes(const DirectConvPlan& depthwise,
                                    const SpmmMicrokernels& microkernels, const float* channels,
                                    const kernels::InputPlanes& planes, size_t first_plane_row,
                                    size_t channel_begin, size_t channel_end, float* out) const {
  const kernels::InputPlanes& source = depthwise.planes;
  const size_t channel_floats = source.in_height * source.in_width;
  // Rows of this band that are depthwise output; the planes' rows past them are zero.
  const size_t rows = first_plane_row < depthwise.out_height
                          ? std::min(planes.plane_height, depthwise.out_height - first_plane_row)
                          : 0;
  const size_t positions = rows == 0 ? 0 : (rows - 1) * source.plane_width + depthwise.out_width;
  float* source_planes = ThreadLocalFloats<SourcePlanesTag>(source.total_elements);
  float* sums = ThreadLocalFloats<SumsTag>(RoundUp(positions, kernels::kDepthwiseMaxLanes));
  const size_t written = rows * planes.plane_width;
  for (size_t c = channel_begin; c < channel_end; ++c) {
    float* plane = out + c * planes.ChannelElements();
    if (rows != 0) {
      microkernels.pack_input_planes(channels + (c - channel_begin) * channel_floats, source,
                                     first_plane_row, 0, 1, source_planes);
      microkernels.depthwise_taps(source_planes, depthwise.offsets.data(),
                                  weights_.data() + c * taps_, taps_, positions, sums);
      const kernels::OutputBlock finished = {nullptr, nullptr, bias_.data() + c, 0};
      for (size_t r = 0; r < rows; ++r) {
        kernels::OutputBlock row = finished;
        row.y = plane + r * planes.plane_width;
        microkernels.store_channel_rows(sums + r * source.plane_width, 0, depthwise.out_width, 1,
                                        row, epilogue_);
      }
    }
    std::fill(plane + written, plane + planes.ChannelElements(), 0.0f);
  }
  if (channel_end == planes.channels) {
    std::fill(out + planes.channels * planes.ChannelElements(), out + planes.total_elements, 0.0f);
  }
}

}  // namespace ortsparse
