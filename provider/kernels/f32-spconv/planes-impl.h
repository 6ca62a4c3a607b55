// The plane packer's structure, shared by the ISA variants (planes-*.cc), each of which supplies
// how to copy a run of input columns at stride 1 and at stride 2, and how to zero a run.
//
// Included once per ISA file and compiled with that file's flags: everything here has internal
// linkage, so that no variant's copy can stand in for another's at link time.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>

#include "kernels/f32-spconv/spconv.h"

namespace ortsparse::kernels {
namespace {

// out[t] = row[first + t * stride] for t < count, 0 where that column falls outside [0, width):
// the strides that no variant has a vector path for.
void GatherStridedRun(const float* row, int64_t width, int64_t first, size_t stride,
                      size_t count, float* out) {
  for (size_t t = 0; t < count; ++t) {
    const int64_t column = first + static_cast<int64_t>(t * stride);
    out[t] = column >= 0 && column < width ? row[column] : 0.0f;
  }
}

// Runs: struct with static void Copy(row, width, first, count, out) and CopyEveryOther(...), which
// are GatherStridedRun for strides 1 and 2, CopyEvenAndOdd(row, width, first, count, even, odd),
// which is CopyEveryOther from first into even and from first + 1 into odd, and static void
// Zero(out, count).
template <typename Runs>
void PackInputPlanesWith(const float* channels, const InputPlanes& p, size_t first_plane_row,
                         size_t channel_begin, size_t channel_end, float* planes) {
  const int64_t height = static_cast<int64_t>(p.in_height);
  const int64_t width = static_cast<int64_t>(p.in_width);
  const size_t plane_floats = p.plane_height * p.plane_width;
  // Stride 2 with both column phases: each input row is read once for the two planes, which
  // split its even and odd columns. One pass per plane read every row twice: packing YOLOv5s-like
  // model.1's input (32 channels, 320x320) took 1.5-2.4 ms on an AVX-512 thread, now 0.9-1.0.
  const bool split_columns = p.stride_width == 2 && p.column_phase_count == 2;
  const size_t planes_per_pass = split_columns ? 2 : 1;
  float* plane = planes + channel_begin * p.ChannelElements();
  for (size_t c = channel_begin; c < channel_end; ++c) {
    const float* channel = channels + (c - channel_begin) * p.in_height * p.in_width;
    for (size_t a = 0; a < p.row_phase_count; ++a) {
      for (size_t b = 0; b < p.column_phase_count;
           b += planes_per_pass, plane += planes_per_pass * p.plane_stride) {
        const int64_t first_column =
            static_cast<int64_t>(p.column_phases[b]) - static_cast<int64_t>(p.pad_left);
        // With split_columns, the odd column phase's plane follows this one.
        float* const odd_plane = plane + p.plane_stride;
        for (size_t i = 0; i < p.plane_height; ++i) {
          float* const out = plane + i * p.plane_width;
          const int64_t row =
              static_cast<int64_t>((first_plane_row + i) * p.stride_height + p.row_phases[a]) -
              static_cast<int64_t>(p.pad_top);
          if (row < 0 || row >= height) {
            Runs::Zero(out, p.plane_width);
            if (split_columns) Runs::Zero(odd_plane + i * p.plane_width, p.plane_width);
          } else if (split_columns) {
            Runs::CopyEvenAndOdd(channel + row * width, width, first_column, p.plane_width, out,
                                 odd_plane + i * p.plane_width);
          } else if (p.stride_width == 1) {
            Runs::Copy(channel + row * width, width, first_column, p.plane_width, out);
          } else if (p.stride_width == 2) {
            Runs::CopyEveryOther(channel + row * width, width, first_column, p.plane_width, out);
          } else {
            GatherStridedRun(channel + row * width, width, first_column, p.stride_width,
                             p.plane_width, out);
          }
        }
        Runs::Zero(plane + plane_floats, p.plane_stride - plane_floats);
        if (split_columns) Runs::Zero(odd_plane + plane_floats, p.plane_stride - plane_floats);
      }
    }
  }
  if (channel_end == p.channels) {
    const size_t planes_floats = p.channels * p.ChannelElements();
    Runs::Zero(planes + planes_floats, p.total_elements - planes_floats);
  }
}

}  // namespace
}  // namespace ortsparse::kernels
