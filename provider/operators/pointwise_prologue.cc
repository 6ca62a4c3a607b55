#include "operators/pointwise_prologue.h"

#include <algorithm>
#include <cstring>
#include <limits>
#include <stdexcept>
#include <string>
#include <utility>

#include "operators/op_support.h"

namespace ortsparse {
namespace {

constexpr char kPrefix[] = "pointwise_";

// A thread's rows of P alternate between two buffers, so that the rows a band shares with the
// one before are copied from the other.
struct PrologueRowsTag;
struct OtherPrologueRowsTag;
struct SmallImageTag;

// The rows of P in one of this thread's buffers, from the previous call.
struct ComputedRows {
  const float* data = nullptr;
  size_t first = 0, end = 0;
  bool in_other_buffer = false;
};
thread_local ComputedRows computed_rows;

}  // namespace

std::optional<PointwisePrologue> PointwisePrologue::Read(const Ort::ConstKernelInfo& info,
                                                         int64_t channels,
                                                         const SpmmMicrokernels& microkernels) {
  if (!IntAttribute(info, "pointwise_K")) return std::nullopt;
  PointwisePrologue prologue;
  prologue.matrix_ = ReadSparseMatrixAttributes(info, kPrefix);
  if (prologue.matrix_.n != channels) {
    throw std::invalid_argument("attribute pointwise_N = " + std::to_string(prologue.matrix_.n) +
                                " must equal C = " + std::to_string(channels) +
                                ": the prologue's output is the product's input");
  }
  if (prologue.matrix_.epilogue.residual_before_activation) {
    throw std::invalid_argument("a pointwise prologue adds no residual");
  }
  const PackedWeights packed = ReadPackedWeightAttributes(info, prologue.matrix_, kPrefix);
  prologue.bias_ = TensorAttribute<float>(info, "pointwise_bias", {channels})
                       .value_or(std::vector<float>(static_cast<size_t>(channels), 0.0f));
  prologue.tile_kernels_ = DirectTileKernelsFor(microkernels, prologue.matrix_.block_size);
  prologue.tile_weights_ = BuildTileWeights(packed, prologue.matrix_, microkernels);
  return prologue;
}

std::vector<int32_t> PointwisePrologue::Offsets(int64_t height, int64_t width) const {
  const int64_t pixels = height * width;
  if (matrix_.k * pixels > std::numeric_limits<int32_t>::max()) {
    throw std::invalid_argument("X of height " + std::to_string(height) + " and width " +
                                std::to_string(width) + " has " +
                                std::to_string(matrix_.k * pixels) +
                                " elements per image, past the pointwise prologue's 32-bit "
                                "offsets");
  }
  const TileWeights& tw = tile_weights_;
  std::vector<int32_t> offsets(tw.input_indices.size());
  for (size_t pass = 0; pass < tw.chunks * tw.k_blocks; ++pass) {
    const size_t block = pass % tw.k_blocks;
    const size_t first = static_cast<size_t>(tw.segment_offsets[tw.pass_offsets[pass]]);
    const size_t end = static_cast<size_t>(tw.segment_offsets[tw.pass_offsets[pass + 1]]);
    for (size_t i = first; i < end; ++i) {
      const size_t k = block * tw.k_block_rows + tw.input_indices[i];
      offsets[i] = static_cast<int32_t>(static_cast<int64_t>(k) * pixels);
    }
  }
  return offsets;
}

void PointwisePrologue::WritePlanes(const std::vector<int32_t>& offsets,
                                    const SpmmMicrokernels& microkernels, const float* x,
                                    size_t height, size_t width,
                                    const kernels::InputPlanes& planes, size_t first_plane_row,
                                    bool follows, float* out) const {
  // The rows of P this band's planes read: those of its first plane row's first row phase to
  // those of its last plane row's last one, within the image (the rest are padding).
  const int64_t pad_top = static_cast<int64_t>(planes.pad_top);
  const int64_t first = static_cast<int64_t>(first_plane_row * planes.stride_height +
                                             planes.row_phases[0]) -
                        pad_top;
  const int64_t last = static_cast<int64_t>((first_plane_row + planes.plane_height - 1) *
                                                planes.stride_height +
                                            planes.row_phases[planes.row_phase_count - 1]) -
                       pad_top;
  const int64_t rows = static_cast<int64_t>(height);
  const int64_t row_begin_signed = std::clamp<int64_t>(first, 0, rows);
  const size_t row_begin = static_cast<size_t>(row_begin_signed);
  const size_t row_end =
      static_cast<size_t>(std::clamp<int64_t>(last + 1, row_begin_signed, rows));
  const size_t channels = static_cast<size_t>(matrix_.n);
  const size_t row_count = row_end - row_begin;
  const ComputedRows previous = follows ? computed_rows : ComputedRows{};
  const bool in_other_buffer = !previous.in_other_buffer;
  const size_t floats = channels * std::max<size_t>(row_count, 1) * width;
  float* band = in_other_buffer ? ThreadLocalFloats<OtherPrologueRowsTag>(floats)
                                : ThreadLocalFloats<PrologueRowsTag>(floats);
  // Rows the previous band computed that this one reads again start it: bands go down the image.
  size_t computed_end = row_begin;
  if (previous.data != nullptr && previous.first <= row_begin && row_begin < previous.end) {
    computed_end = std::min(previous.end, row_end);
    const size_t previous_count = previous.end - previous.first;
    for (size_t c = 0; c < channels; ++c) {
      std::memcpy(band + c * row_count * width,
                  previous.data + (c * previous_count + row_begin - previous.first) * width,
                  (computed_end - row_begin) * width * sizeof(float));
    }
  }
  if (computed_end < row_end) {
    ComputeRows(offsets, microkernels, x, height * width, width, computed_end, row_end, band,
                row_begin, row_count);
  }
  computed_rows = {band, row_begin, row_end, in_other_buffer};
  // The band's rows of P as an image of their own: the packer sees rows before row_begin as
  // padding, and reads none after row_end.
  kernels::InputPlanes band_planes = planes;
  band_planes.in_height = row_count;
  band_planes.pad_top = planes.pad_top + row_begin;
  microkernels.pack_input_planes(band, band_planes, first_plane_row, 0, planes.channels, out);
}

void PointwisePrologue::ComputeRows(const std::vector<int32_t>& offsets,
                                    const SpmmMicrokernels& microkernels, const float* x,
                                    size_t pixels, size_t width, size_t row_begin,
                                    size_t row_end, float* out, size_t out_first_row,
                                    size_t row_count) const {
  const TileWeights& tw = tile_weights_;
  const size_t panel_rows = microkernels.panel_rows;
  const size_t input_channels = static_cast<size_t>(matrix_.k);
  // A tile reads whole vectors, up to a panel past its first position: the tiles of an image
  // smaller than a panel read a copy of it with a panel of zeros after it, and the last tile of
  // a larger one starts early enough to stay inside it.
  if (pixels < panel_rows) {
    float* copy = ThreadLocalFloats<SmallImageTag>(input_channels * pixels + panel_rows);
    std::memcpy(copy, x, input_channels * pixels * sizeof(float));
    std::fill(copy + input_channels * pixels, copy + input_channels * pixels + panel_rows, 0.0f);
    x = copy;
  }
  const kernels::OffsetSegments segments = {tw.values.data(), offsets.data(),
                                            tw.segment_offsets.data(),
                                            tw.segment_channels.data()};
  const size_t channel_floats = row_count * width;
  const size_t position_begin = row_begin * width;
  const size_t position_end = row_end * width;
  alignas(64) float acc[kMaxChunkChannels * kMaxPanelRows + kStoreChannels];
  for (size_t position = position_begin; position < position_end; position += panel_rows) {
    const size_t count = std::min(panel_rows, position_end - position);
    const size_t span = RoundUp(count, microkernels.vector_rows);
    const size_t start =
        pixels >= panel_rows && position + span > pixels ? pixels - span : position;
    const size_t rows = position + count - start;
    for (size_t chunk = 0; chunk < tw.chunks; ++chunk) {
      const size_t chunk_begin = tw.ChunkBegin(chunk);
      const size_t chunk_channels = tw.ChunkChannels(chunk, static_cast<size_t>(matrix_.n));
      MultiplyTile(microkernels, tile_kernels_, tw, segments, x + start, 0, rows, chunk, acc);
      const kernels::OutputBlock block = {
          out + chunk_begin * channel_floats + position - out_first_row * width, nullptr,
          bias_.data() + chunk_begin, channel_floats};
      microkernels.store_channel_rows(acc + (position - start), panel_rows, count,
                                      chunk_channels, block, matrix_.epilogue);
    }
  }
}

}  // namespace ortsparse
