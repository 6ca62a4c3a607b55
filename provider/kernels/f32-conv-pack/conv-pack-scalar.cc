// Portable panel packers: the C library's copies and fills.
#include <algorithm>

#include "kernels/f32-conv-pack/conv-pack-impl.h"

namespace ortsparse::kernels {
namespace {

struct LibraryRuns {
  static void Copy(const float* row, int64_t width, int64_t first, size_t count, float* out) {
    const int64_t count_signed = static_cast<int64_t>(count);
    const size_t begin = static_cast<size_t>(std::clamp<int64_t>(-first, 0, count_signed));
    const size_t end =
        static_cast<size_t>(std::clamp<int64_t>(width - first, static_cast<int64_t>(begin),
                                                count_signed));
    std::fill(out, out + begin, 0.0f);
    std::fill(out + end, out + count, 0.0f);
    if (begin == end) return;  // nothing but padding, and no column of the image to point at
    const float* source = row + (first + static_cast<int64_t>(begin));
    std::copy(source, source + (end - begin), out + begin);
  }
  static void Zero(float* out, size_t count) { std::fill(out, out + count, 0.0f); }
};

}  // namespace

void PackConvPanelScalar(const float* image, const ConvGeometry& geometry, size_t pixel_begin,
                         size_t rows, size_t k_begin, size_t k_end, size_t panel_rows,
                         float* panel) {
  PackConvPanelWith<LibraryRuns>(image, geometry, pixel_begin, rows, k_begin, k_end, panel_rows,
                                 panel);
}

void PackPointwisePanel(const float* image, size_t pixels, size_t pixel_begin, size_t rows,
                        size_t k_begin, size_t k_end, size_t panel_rows, float* panel) {
  for (size_t k = k_begin; k < k_end; ++k) {
    const float* source = image + k * pixels + pixel_begin;
    float* out = panel + k * panel_rows;
    std::copy(source, source + rows, out);
    std::fill(out + rows, out + panel_rows, 0.0f);
  }
}

}  // namespace ortsparse::kernels
