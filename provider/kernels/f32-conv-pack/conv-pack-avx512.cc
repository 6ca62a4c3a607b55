// AVX-512 panel packer: runs of input columns move 16 at a time through masked loads, whose
// masked-off lanes (the padding) read nothing and come back zero.
#include <immintrin.h>

#include <algorithm>

#include "kernels/f32-conv-pack/conv-pack-impl.h"

namespace ortsparse::kernels {
namespace {

// Lanes l of [0, 16) with begin <= l < end (both clamped to [0, 16]).
__mmask16 LaneRange(int64_t begin, int64_t end) {
  const int64_t lo = std::clamp<int64_t>(begin, 0, 16);
  const int64_t hi = std::clamp<int64_t>(end, lo, 16);
  return static_cast<__mmask16>(((1u << hi) - 1) & ~((1u << lo) - 1));
}

struct MaskedRuns {
  static void Copy(const float* row, int64_t width, int64_t first, size_t count, float* out) {
    const int64_t count_signed = static_cast<int64_t>(count);
    for (int64_t t0 = 0; t0 < count_signed; t0 += 16) {
      const int64_t column = first + t0;
      const __mmask16 inside = LaneRange(-column, width - column);
      // Addresses of masked-off lanes are never accessed, even outside the image.
      const __m512 v = _mm512_maskz_loadu_ps(inside, row + column);
      _mm512_mask_storeu_ps(out + t0, LaneRange(0, count_signed - t0), v);
    }
  }
  static void Zero(float* out, size_t count) {
    const int64_t count_signed = static_cast<int64_t>(count);
    for (int64_t t0 = 0; t0 < count_signed; t0 += 16) {
      _mm512_mask_storeu_ps(out + t0, LaneRange(0, count_signed - t0), _mm512_setzero_ps());
    }
  }
};

}  // namespace

void PackConvPanelAvx512(const float* image, const ConvGeometry& geometry, size_t pixel_begin,
                         size_t rows, size_t k_begin, size_t k_end, size_t panel_rows,
                         float* panel) {
  PackConvPanelWith<MaskedRuns>(image, geometry, pixel_begin, rows, k_begin, k_end, panel_rows,
                                panel);
}

}  // namespace ortsparse::kernels
