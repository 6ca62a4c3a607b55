// The quad plane packer's structure, shared by the ISA variants (planes-*.cc), each of which
// supplies how to interleave a run of input columns.
//
// Included once per ISA file and compiled with that file's flags: everything here has internal
// linkage, so that no variant's copy can stand in for another's at link time.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>

#include "kernels/u8s8-spconv/planes.h"

namespace ortsparse::kernels {
namespace {

// One input row of a channel quad: its four channels' rows (null past C).
struct QuadRow {
  const uint8_t* channel_rows[4];
  int64_t width;
};

inline uint32_t Replicated(uint8_t byte) { return uint32_t{byte} * 0x01010101u; }

// out[t] = the quad at column first + t * stride of `row`, XORed with flip, or pad where that
// column falls outside [0, width): the runs that no variant has a vector path for.
void InterleaveRunScalar(const QuadRow& row, int64_t first, size_t stride, size_t count,
                         uint32_t flip, uint32_t pad, uint32_t* out) {
  for (size_t t = 0; t < count; ++t) {
    const int64_t column = first + static_cast<int64_t>(t * stride);
    if (column < 0 || column >= row.width) {
      out[t] = pad;
      continue;
    }
    uint32_t quad = 0;
    for (size_t j = 0; j < 4; ++j) {
      if (row.channel_rows[j] != nullptr) quad |= uint32_t{row.channel_rows[j][column]} << (8 * j);
    }
    out[t] = quad ^ flip;
  }
}

// Interleave: static void Run(row, first, stride, count, flip, pad, out), InterleaveRunScalar's
// contract.
template <typename Interleave>
void PackQuadPlanesWith(const QuadPlanesSource& source, const InputPlanes& p, size_t quad_begin,
                        size_t quad_end, uint32_t* planes) {
  const int64_t height = static_cast<int64_t>(p.in_height);
  const int64_t width = static_cast<int64_t>(p.in_width);
  const size_t channel_bytes = p.in_height * p.in_width;
  const size_t plane_elements = p.plane_height * p.plane_width;
  const uint32_t flip = Replicated(source.flip);
  const uint32_t pad = Replicated(source.pad);
  // The plane is the channels' planes unchanged: one run, not one per row.
  const bool whole_planes = p.stride_height == 1 && p.stride_width == 1 && p.pad_top == 0 &&
                            p.pad_left == 0 && p.plane_width == p.in_width &&
                            p.plane_height == p.in_height;
  uint32_t* plane = planes + quad_begin * p.ChannelElements();
  for (size_t u = quad_begin; u < quad_end; ++u) {
    // The quad's four channels from byte `offset` of each on, `width` columns wide.
    auto quad_row = [&](size_t offset, int64_t row_width) {
      QuadRow row{{}, row_width};
      for (size_t j = 0; j < 4; ++j) {
        const size_t channel = 4 * u + j;
        row.channel_rows[j] =
            channel < source.channels ? source.image + channel * channel_bytes + offset : nullptr;
      }
      return row;
    };
    for (size_t a = 0; a < p.row_phase_count; ++a) {
      for (size_t b = 0; b < p.column_phase_count; ++b, plane += p.plane_stride) {
        if (whole_planes) {
          Interleave::Run(quad_row(0, height * width), 0, 1, plane_elements, flip, pad, plane);
          std::fill_n(plane + plane_elements, p.plane_stride - plane_elements, pad);
          continue;
        }
        const int64_t first_column =
            static_cast<int64_t>(p.column_phases[b]) - static_cast<int64_t>(p.pad_left);
        uint32_t* out = plane;
        for (size_t i = 0; i < p.plane_height; ++i, out += p.plane_width) {
          const int64_t row = static_cast<int64_t>(i * p.stride_height + p.row_phases[a]) -
                              static_cast<int64_t>(p.pad_top);
          if (row < 0 || row >= height) {
            std::fill_n(out, p.plane_width, pad);
          } else {
            Interleave::Run(quad_row(static_cast<size_t>(row) * p.in_width, width), first_column,
                            p.stride_width, p.plane_width, flip, pad, out);
          }
        }
        std::fill_n(out, p.plane_stride - plane_elements, pad);
      }
    }
  }
  const size_t quads = p.channels;
  if (quad_end == quads) {
    const size_t planes_elements = quads * p.ChannelElements();
    std::fill_n(planes + planes_elements, p.total_elements - planes_elements, pad);
  }
}

}  // namespace
}  // namespace ortsparse::kernels
