// AVX2 plane packer: runs of input columns move 8 at a time through masked loads, whose
// masked-off lanes (the padding) read nothing and come back zero; stride 2 keeps the even lanes
// of two such loads.
#include <immintrin.h>

#include <algorithm>

#include "kernels/f32-spconv/planes-impl.h"

namespace ortsparse::kernels {
namespace {

// All-ones in lanes l of [0, 8) with begin <= l < end.
__m256i LaneRange(int64_t begin, int64_t end) {
  const __m256i lanes = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  const __m256i below_end =
      _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(std::clamp<int64_t>(end, 0, 8))),
                         lanes);
  const __m256i below_begin =
      _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(std::clamp<int64_t>(begin, 0, 8))),
                         lanes);
  return _mm256_andnot_si256(below_begin, below_end);
}

struct MaskedRuns {
  static void Copy(const float* row, int64_t width, int64_t first, size_t count, float* out) {
    const int64_t count_signed = static_cast<int64_t>(count);
    for (int64_t t0 = 0; t0 < count_signed; t0 += 8) {
      const int64_t column = first + t0;
      // Addresses of masked-off lanes are never accessed, even outside the image.
      const __m256 v = _mm256_maskload_ps(row + column, LaneRange(-column, width - column));
      _mm256_maskstore_ps(out + t0, LaneRange(0, count_signed - t0), v);
    }
  }
  static void CopyEveryOther(const float* row, int64_t width, int64_t first, size_t count,
                             float* out) {
    const int64_t count_signed = static_cast<int64_t>(count);
    for (int64_t t0 = 0; t0 < count_signed; t0 += 8) {
      const int64_t column = first + 2 * t0;
      const __m256 low = _mm256_maskload_ps(row + column, LaneRange(-column, width - column));
      const __m256 high =
          _mm256_maskload_ps(row + column + 8, LaneRange(-column - 8, width - column - 8));
      // Even lanes of each 128-bit half, then the halves' 64-bit pairs back in order.
      const __m256 evens = _mm256_shuffle_ps(low, high, _MM_SHUFFLE(2, 0, 2, 0));
      const __m256 ordered = _mm256_castpd_ps(
          _mm256_permute4x64_pd(_mm256_castps_pd(evens), _MM_SHUFFLE(3, 1, 2, 0)));
      _mm256_maskstore_ps(out + t0, LaneRange(0, count_signed - t0), ordered);
    }
  }
  static void CopyEvenAndOdd(const float* row, int64_t width, int64_t first, size_t count,
                             float* even, float* odd) {
    CopyEveryOther(row, width, first, count, even);
    CopyEveryOther(row, width, first + 1, count, odd);
  }
  static void Zero(float* out, size_t count) {
    const int64_t count_signed = static_cast<int64_t>(count);
    for (int64_t t0 = 0; t0 < count_signed; t0 += 8) {
      _mm256_maskstore_ps(out + t0, LaneRange(0, count_signed - t0), _mm256_setzero_ps());
    }
  }
};

}  // namespace

void PackInputPlanesAvx2(const float* channels, const InputPlanes& planes_layout,
                         size_t first_plane_row, size_t channel_begin, size_t channel_end,
                         float* planes) {
  PackInputPlanesWith<MaskedRuns>(channels, planes_layout, first_plane_row, channel_begin,
                                  channel_end, planes);
}

}  // namespace ortsparse::kernels
