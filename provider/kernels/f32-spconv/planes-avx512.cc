// AVX-512 plane packer: runs of input columns move 16 at a time through masked loads, whose
// masked-off lanes (the padding) read nothing and come back zero; stride 2 keeps the even (and
// for the next plane the odd) lanes of two such loads.
#include <immintrin.h>

#include "kernels/f32-spconv/planes-impl.h"
#include "kernels/lane-range-avx512.h"

namespace ortsparse::kernels {
namespace {

// 16 pairs of consecutive input columns, from `column` on, as two vectors.
struct ColumnPairs {
  __m512 low, high;

  __m512 Evens() const { return _mm512_permutex2var_ps(low, EvenLanes(), high); }
  __m512 Odds() const {
    return _mm512_permutex2var_ps(low, _mm512_add_epi32(EvenLanes(), _mm512_set1_epi32(1)), high);
  }
  static __m512i EvenLanes() {
    return _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
  }
};

ColumnPairs LoadColumnPairs(const float* row, int64_t width, int64_t column) {
  return {_mm512_maskz_loadu_ps(LaneRange(-column, width - column), row + column),
          _mm512_maskz_loadu_ps(LaneRange(-column - 16, width - column - 16), row + column + 16)};
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
  static void CopyEveryOther(const float* row, int64_t width, int64_t first, size_t count,
                             float* out) {
    const int64_t count_signed = static_cast<int64_t>(count);
    for (int64_t t0 = 0; t0 < count_signed; t0 += 16) {
      const ColumnPairs pairs = LoadColumnPairs(row, width, first + 2 * t0);
      _mm512_mask_storeu_ps(out + t0, LaneRange(0, count_signed - t0), pairs.Evens());
    }
  }
  static void CopyEvenAndOdd(const float* row, int64_t width, int64_t first, size_t count,
                             float* even, float* odd) {
    const int64_t count_signed = static_cast<int64_t>(count);
    for (int64_t t0 = 0; t0 < count_signed; t0 += 16) {
      const ColumnPairs pairs = LoadColumnPairs(row, width, first + 2 * t0);
      const __mmask16 stored = LaneRange(0, count_signed - t0);
      _mm512_mask_storeu_ps(even + t0, stored, pairs.Evens());
      _mm512_mask_storeu_ps(odd + t0, stored, pairs.Odds());
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

void PackInputPlanesAvx512(const float* channels, const InputPlanes& planes_layout,
                           size_t first_plane_row, size_t channel_begin, size_t channel_end,
                           float* planes) {
  PackInputPlanesWith<MaskedRuns>(channels, planes_layout, first_plane_row, channel_begin,
                                  channel_end, planes);
}

}  // namespace ortsparse::kernels
