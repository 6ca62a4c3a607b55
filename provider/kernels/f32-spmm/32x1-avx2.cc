// CSR tile kernels for AVX2: one output channel at a time, up to 32 rows (4 vectors).
#include <immintrin.h>

#include "kernels/f32-spmm/spmm.h"

namespace ortsparse::kernels {

template <typename Rows, size_t kRows, bool kAccumulate>
void Spmm32x1Avx2(const float* base, const TileSegments<typename Rows::Index>& weights,
                 size_t segment_begin, size_t segment_end, float* acc) {
  constexpr size_t kVectors = kRows / 8;
  // See Spmm64x1Avx512 for the accumulator sets.
  constexpr size_t kChains = (4 + kVectors - 1) / kVectors;
  const float* values = weights.values;
  const typename Rows::Index* indices = weights.input_indices;

  for (size_t s = segment_begin; s < segment_end; ++s) {
    float* out = acc + static_cast<uint32_t>(weights.segment_channels[s]) * kAvx2PanelRows;
    __m256 sum[kChains][kVectors];
    for (size_t c = 0; c < kChains; ++c) {
      for (size_t v = 0; v < kVectors; ++v) sum[c][v] = _mm256_setzero_ps();
    }
    auto accumulate = [&](size_t chain, size_t i) {
      const __m256 w = _mm256_broadcast_ss(values + i);
      const float* row = base + static_cast<size_t>(indices[i]) * Rows::kScale;
      for (size_t v = 0; v < kVectors; ++v) {
        sum[chain][v] = _mm256_fmadd_ps(_mm256_loadu_ps(row + 8 * v), w, sum[chain][v]);
      }
    };

    size_t i = static_cast<uint32_t>(weights.segment_offsets[s]);
    const size_t end = static_cast<uint32_t>(weights.segment_offsets[s + 1]);
    for (; i + kChains <= end; i += kChains) {
#pragma GCC unroll 4
      for (size_t c = 0; c < kChains; ++c) accumulate(c, i + c);
    }
#pragma GCC unroll 4
    for (size_t c = 0; c + 1 < kChains; ++c) {
      if (i + c < end) accumulate(c, i + c);
    }

    // Earlier blocks' sums join last, so that no FMA waits for them.
    for (size_t v = 0; v < kVectors; ++v) {
      __m256 total = sum[0][v];
      for (size_t c = 1; c < kChains; ++c) total = _mm256_add_ps(total, sum[c][v]);
      if (kAccumulate) total = _mm256_add_ps(total, _mm256_load_ps(out + 8 * v));
      _mm256_store_ps(out + 8 * v, total);
    }
  }
}

ORTSPARSE_INSTANTIATE_TILE_KERNEL(Spmm32x1Avx2, kAvx2PanelRows, 8)

}  // namespace ortsparse::kernels
