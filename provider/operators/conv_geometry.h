// The geometry SparseConv and SparseQConv share: the convolution window's attributes, and the
// plan of a direct convolution for X of one height and width (kernels/f32-spconv/spconv.h
// explains the planes and the wide grid). The two ops differ in what a plane element is (a float
// of one channel, or a dword of four int8 channels) but not in where the elements go.
#pragma once

#include <onnxruntime_cxx_api.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "kernels/f32-spconv/compiled.h"
#include "kernels/f32-spconv/spconv.h"

namespace ortsparse {

// One spatial axis of the convolution window.
struct WindowAxis {
  int64_t kernel = 1;
  int64_t stride = 1;
  int64_t dilation = 1;
  int64_t pad_begin = 0;
  int64_t pad_end = 0;

  // Output positions along an input of `input` positions; 0 when the dilated kernel does not fit.
  int64_t OutputSize(int64_t input) const;
};

struct ConvWindow {
  WindowAxis height;
  WindowAxis width;

  int64_t Taps() const { return height.kernel * width.kernel; }
  // Kernel taps per run of input rows that they share in L1: a run is the input rows of one
  // plane that the taps of one kernel row read, which overlap but for a few columns. Taps of
  // different row phases, row shifts or column phases read different runs.
  size_t TapsPerRun() const;
};

// Attributes group (which must be 1), kernel_shape, strides, dilations and pads (explicit; the
// rewriter resolves auto_pad); throws std::invalid_argument for missing or malformed ones.
ConvWindow ReadConvWindow(const Ort::ConstKernelInfo& info);

// Attributes `prefix`kernel_shape, strides, dilations and pads, as ReadConvWindow reads them.
ConvWindow ReadWindowAttributes(const Ort::ConstKernelInfo& info, const std::string& prefix);

// The required attribute C, in [1, 2^31).
int64_t ReadInputChannels(const Ort::ConstKernelInfo& info);

// Y's height and width for X of x_shape (NCHW with `channels` channels, the node's attribute
// `channels_attribute`); throws std::invalid_argument for another rank or channel count, or an
// empty output.
std::pair<int64_t, int64_t> ConvOutputSize(const std::vector<int64_t>& x_shape, int64_t channels,
                                           const ConvWindow& window,
                                           const char* channels_attribute = "C");

// How X of one height and width is convolved: the input planes' layout (or X read in place) and
// each stored weight's input offset, in the op's tile order. The planes layout points into the
// phase vectors, so a plan is never copied.
struct DirectConvPlan {
  int64_t in_height = 0;
  int64_t in_width = 0;
  size_t out_height = 0;
  size_t out_width = 0;
  std::vector<size_t> row_phases;
  std::vector<size_t> column_phases;
  // planes.channels counts plane elements' channel units: channels, or quads of channels.
  kernels::InputPlanes planes{};
  bool in_place = false;  // X is the planes (stride 1, unpadded)
  // 0 when the planes are the whole image's; else they are those of a band of this many output
  // rows, which the op packs and multiplies one at a time (the last band may have fewer rows).
  size_t band_rows = 0;
  // Grid positions up to the last output pixel (of a whole band, for a band's planes); the
  // columns past it are never computed.
  size_t grid_positions = 0;
  // Where the last tile starts computing: in place, early enough that its reads stay inside X
  // (recomputing some of the previous tile's positions), else at its first position.
  size_t last_tile_start = 0;
  std::vector<int32_t> offsets;
  // The channels of each part of X for a SparseConv whose X comes in parts (else empty): read in
  // place, each part is its own base of the compiled code.
  std::vector<size_t> x_part_channels;
  // SparseConv's weights compiled for these planes, when its family compiles them; the tile
  // kernels and `offsets` serve otherwise.
  std::unique_ptr<const kernels::CompiledConv> compiled;
  // SparseConv's depthwise prologue (operators/depthwise_prologue.h): the depthwise convolution
  // of X whose output these planes hold, laid out for one channel and a strip of its band_rows
  // output rows, which the op computes one at a time; `offsets` are its taps'. Null without a
  // prologue.
  std::unique_ptr<const DirectConvPlan> depthwise;
  // SparseConv's pointwise prologue (operators/pointwise_prologue.h): its weights' input offsets
  // in X of this size; empty without one. Its planes are always laid out in bands.
  std::vector<int32_t> pointwise_offsets;

  // The size of the op's X this plan is for: the depthwise convolution's input where there is
  // one, else the planes' input.
  int64_t XHeight() const { return depthwise != nullptr ? depthwise->in_height : in_height; }
  int64_t XWidth() const { return depthwise != nullptr ? depthwise->in_width : in_width; }

  // Calls run(position, length, pixel) for the parts of grid positions [first, end) that are
  // output pixels: `length` positions from `position` that are the output pixels from `pixel` on
  // (oh * OW + ow), one output row at a time unless the grid is as wide as Y.
  template <typename Run>
  void ForEachOutputRun(size_t first, size_t end, Run&& run) const {
    const size_t grid_width = planes.plane_width;
    for (size_t position = first; position < end;) {
      const size_t row = position / grid_width;
      const size_t column = position % grid_width;
      const size_t next_row = (row + 1) * grid_width;
      if (column >= out_width) {
        position = next_row;
        continue;
      }
      const size_t run_end =
          grid_width == out_width ? end : std::min(end, row * grid_width + out_width);
      run(position, run_end - position, row * out_width + column);
      position = grid_width == out_width ? end : next_row;
    }
  }

  DirectConvPlan() = default;
  DirectConvPlan(const DirectConvPlan&) = delete;
  DirectConvPlan& operator=(const DirectConvPlan&) = delete;
};

// How the op reads planes: tiles of panel_rows grid positions whose kernels read whole vectors of
// vector_rows; whether X may be read in place when the convolution allows it; how many plane
// elements its 32-bit offsets reach; and whether it packs the whole image's planes at once (0) or
// bands of band_rows output rows (then X is never read in place).
struct PlaneReading {
  size_t panel_rows;
  size_t vector_rows;
  bool may_read_in_place;
  int64_t max_elements;
  size_t band_rows = 0;
};

// Lays out `plan`'s geometry and planes for `units` channel units and X of in_height x in_width,
// and returns the offset of every tap from the planes' start, in elements, ordered
// (unit * kH + i) * kW + j. Throws std::invalid_argument when the planes would pass
// reading.max_elements.
std::vector<int64_t> LayOutDirectConv(const ConvWindow& window, size_t units, int64_t in_height,
                                      int64_t in_width, const PlaneReading& reading,
                                      DirectConvPlan& plan);

// The plans of the input sizes a node has seen, the most recent last; a run holds its plan while
// another run's size may evict it. A SparseConv whose X comes in parts also tells their channels,
// which its plans depend on (DirectConvPlan::x_part_channels).
class DirectConvPlans {
 public:
  using Builder = std::function<std::shared_ptr<const DirectConvPlan>(int64_t, int64_t)>;

  std::shared_ptr<const DirectConvPlan> Get(int64_t in_height, int64_t in_width,
                                            const std::vector<size_t>& x_part_channels,
                                            const Builder& build) const;

 private:
  mutable std::mutex mutex_;
  mutable std::vector<std::shared_ptr<const DirectConvPlan>> plans_;
};

}  // namespace ortsparse
