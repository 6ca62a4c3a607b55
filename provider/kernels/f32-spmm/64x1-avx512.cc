// CSR tile kernels for AVX-512: one output channel at a time, up to 64 rows (4 vectors).
#include "kernels/f32-spmm/simd-avx512.h"

#include "kernels/f32-spmm/spmm.h"

namespace ortsparse::kernels {

template <typename Rows, size_t kRows, bool kAccumulate>
void SpmmCsrAvx512(const float* base, const TileSegments<typename Rows::Index>& weights,
                   size_t segment_begin, size_t segment_end, float* acc) {
  constexpr size_t kVectors = kRows / 16;
  // Every stored weight adds into the same kVectors accumulators, so a segment's FMAs form
  // dependency chains; narrow tiles split their weights over several accumulator sets. Four FMAs
  // in flight suffice: panel loads, not FMAs, bound this kernel, and more sets cost more to set up
  // and sum per segment.
  constexpr size_t kChains = (4 + kVectors - 1) / kVectors;
  const float* values = weights.values;
  const typename Rows::Index* indices = weights.input_indices;

  for (size_t s = segment_begin; s < segment_end; ++s) {
    float* out = acc + static_cast<uint32_t>(weights.segment_channels[s]) * kAvx512PanelRows;
    __m512 sum[kChains][kVectors];
    for (size_t c = 0; c < kChains; ++c) {
      for (size_t v = 0; v < kVectors; ++v) sum[c][v] = _mm512_setzero_ps();
    }
    auto accumulate = [&](size_t chain, size_t i) {
      const __m512 w = _mm512_set1_ps(values[i]);
      const float* row = base + static_cast<size_t>(indices[i]) * Rows::kScale;
      for (size_t v = 0; v < kVectors; ++v) {
        sum[chain][v] = _mm512_fmadd_ps(_mm512_loadu_ps(row + 16 * v), w, sum[chain][v]);
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
      __m512 total = sum[0][v];
      for (size_t c = 1; c < kChains; ++c) total = _mm512_add_ps(total, sum[c][v]);
      if (kAccumulate) total = _mm512_add_ps(total, _mm512_load_ps(out + 16 * v));
      _mm512_store_ps(out + 16 * v, total);
    }
  }
}

ORTSPARSE_INSTANTIATE_TILE_KERNEL(SpmmCsrAvx512, kAvx512PanelRows, 16)

}  // namespace ortsparse::kernels
