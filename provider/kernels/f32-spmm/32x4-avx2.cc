// block4 tile kernels for AVX2: four output channels share each panel load, up to 32 rows.
#include <immintrin.h>

#include "kernels/f32-spmm/spmm.h"

namespace ortsparse::kernels {

template <typename Rows, size_t kRows, bool kAccumulate>
void Spmm32x4Avx2(const float* base, const TileSegments<typename Rows::Index>& weights,
                    size_t segment_begin, size_t segment_end, float* acc) {
  constexpr size_t kVectors = kRows / 8;
  // 16 registers: a 4 x 3 tile (with 3 inputs and 1 weight) is the largest that fits, so the
  // 4-vector variant runs as two 2-vector halves. A single-vector tile needs a second accumulator
  // set to keep enough FMAs in flight.
  constexpr size_t kChains = kVectors >= 2 ? 1 : 2;
  const float* values = weights.values;
  const typename Rows::Index* indices = weights.input_indices;

  for (size_t s = segment_begin; s < segment_end; ++s) {
    float* out = acc + static_cast<uint32_t>(weights.segment_channels[s]) * kAvx2PanelRows;
    const size_t begin = static_cast<uint32_t>(weights.segment_offsets[s]);
    const size_t end = static_cast<uint32_t>(weights.segment_offsets[s + 1]);
    constexpr size_t kHalves = kVectors == 4 ? 2 : 1;
    constexpr size_t kHalfVectors = kVectors / kHalves;
    for (size_t h = 0; h < kHalves; ++h) {
      const float* half_base = base + h * 8 * kHalfVectors;
      __m256 sum[kChains][4][kHalfVectors];
      for (size_t c = 0; c < kChains; ++c) {
        for (size_t j = 0; j < 4; ++j) {
          for (size_t v = 0; v < kHalfVectors; ++v) sum[c][j][v] = _mm256_setzero_ps();
        }
      }
      auto accumulate = [&](size_t chain, size_t i) {
        const float* row = half_base + static_cast<size_t>(indices[i]) * Rows::kScale;
        __m256 x[kHalfVectors];
        for (size_t v = 0; v < kHalfVectors; ++v) x[v] = _mm256_loadu_ps(row + 8 * v);
        for (size_t j = 0; j < 4; ++j) {
          const __m256 w = _mm256_broadcast_ss(values + 4 * i + j);
          for (size_t v = 0; v < kHalfVectors; ++v) {
            sum[chain][j][v] = _mm256_fmadd_ps(x[v], w, sum[chain][j][v]);
          }
        }
      };
      size_t i = begin;
      for (; i + kChains <= end; i += kChains) {
#pragma GCC unroll 2
        for (size_t c = 0; c < kChains; ++c) accumulate(c, i + c);
      }
      if (i < end) accumulate(0, i);

      for (size_t j = 0; j < 4; ++j) {
        for (size_t v = 0; v < kHalfVectors; ++v) {
          float* channel_out = out + j * kAvx2PanelRows + h * 8 * kHalfVectors + 8 * v;
          __m256 total = sum[0][j][v];
          for (size_t c = 1; c < kChains; ++c) total = _mm256_add_ps(total, sum[c][j][v]);
          if (kAccumulate) total = _mm256_add_ps(total, _mm256_load_ps(channel_out));
          _mm256_store_ps(channel_out, total);
        }
      }
    }
  }
}

ORTSPARSE_INSTANTIATE_TILE_KERNEL(Spmm32x4Avx2, kAvx2PanelRows, 8)

}  // namespace ortsparse::kernels
