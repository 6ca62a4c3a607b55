// The im2col panel packer's structure, shared by the ISA variants (conv-pack-*.cc), each of which
// supplies how to copy a run of input columns and how to zero one.
//
// Included once per ISA file and compiled with that file's flags: everything here has internal
// linkage, so that no variant's copy can stand in for another's at link time.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>

#include "kernels/f32-conv-pack/conv-pack.h"

namespace ortsparse::kernels {
namespace {

// The part of a tile that lies on one output row: panel rows [panel_row, panel_row + count),
// whose window starts at input (row, column) = origin + the tap's offset.
struct OutputRun {
  size_t panel_row;
  size_t count;
  int64_t origin_row;
  int64_t origin_column;
};

// out[t] = row[first + t * stride] for t < count, 0 where that column falls outside [0, width):
// strided windows, for which no variant has anything better than element copies.
void GatherStridedRun(const float* row, int64_t width, int64_t first, size_t stride,
                      size_t count, float* out) {
  for (size_t t = 0; t < count; ++t) {
    const int64_t column = first + static_cast<int64_t>(t * stride);
    out[t] = column >= 0 && column < width ? row[column] : 0.0f;
  }
}

// Runs: struct with static void Copy(row, width, first, count, out), which is GatherStridedRun
// for stride 1, and static void Zero(out, count).
template <typename Runs>
void PackConvPanelWith(const float* image, const ConvGeometry& g, size_t pixel_begin,
                       size_t rows, size_t k_begin, size_t k_end, size_t panel_rows,
                       float* panel) {
  // The runs are the same for every tap; only the offset into the image changes.
  OutputRun runs[kMaxConvPanelRows];
  size_t run_count = 0;
  size_t oh = pixel_begin / g.out_width;
  size_t ow = pixel_begin % g.out_width;
  for (size_t r = 0; r < rows; r += runs[run_count++].count, ++oh, ow = 0) {
    runs[run_count] = {
        r, std::min(g.out_width - ow, rows - r),
        static_cast<int64_t>(oh * g.stride_height) - static_cast<int64_t>(g.pad_top),
        static_cast<int64_t>(ow * g.stride_width) - static_cast<int64_t>(g.pad_left)};
  }

  const int64_t height = static_cast<int64_t>(g.in_height);
  const int64_t width = static_cast<int64_t>(g.in_width);
  const size_t taps = g.kernel_height * g.kernel_width;
  // k = (c * kH + i) * kW + j, stepped through without dividing per tap.
  size_t c = k_begin / taps;
  size_t i = k_begin % taps / g.kernel_width;
  size_t j = k_begin % g.kernel_width;
  for (size_t k = k_begin; k < k_end; ++k) {
    const float* channel = image + c * g.in_height * g.in_width;
    const int64_t tap_row = static_cast<int64_t>(i * g.dilation_height);
    const int64_t tap_column = static_cast<int64_t>(j * g.dilation_width);
    float* out = panel + k * panel_rows;
    for (size_t run = 0; run < run_count; ++run) {
      const OutputRun& o = runs[run];
      const int64_t ih = o.origin_row + tap_row;
      float* run_out = out + o.panel_row;
      if (ih < 0 || ih >= height) {
        Runs::Zero(run_out, o.count);
      } else if (g.stride_width == 1) {
        Runs::Copy(channel + ih * width, width, o.origin_column + tap_column, o.count, run_out);
      } else {
        GatherStridedRun(channel + ih * width, width, o.origin_column + tap_column,
                         g.stride_width, o.count, run_out);
      }
    }
    Runs::Zero(out + rows, panel_rows - rows);
    if (++j == g.kernel_width) {
      j = 0;
      if (++i == g.kernel_height) {
        i = 0;
        ++c;
      }
    }
  }
}

}  // namespace
}  // namespace ortsparse::kernels
