// block4 tile kernels for AVX-512: four output channels share each panel load, up to 64 rows.
#include "kernels/f32-spmm/simd-avx512.h"

#include "kernels/f32-spmm/spmm.h"

namespace ortsparse::kernels {

template <typename Rows, size_t kRows, bool kAccumulate>
void Spmm64x4Avx512(const float* base, const TileSegments<typename Rows::Index>& weights,
                      size_t segment_begin, size_t segment_end, float* acc) {
  constexpr size_t kVectors = kRows / 16;
  // 4 * kVectors independent accumulators per set; a single-vector tile needs a second set to keep
  // enough FMAs in flight.
  constexpr size_t kChains = kVectors >= 2 ? 1 : 2;
  const float* values = weights.values;
  const typename Rows::Index* indices = weights.input_indices;

  for (size_t s = segment_begin; s < segment_end; ++s) {
    float* out = acc + static_cast<uint32_t>(weights.segment_channels[s]) * kAvx512PanelRows;
    __m512 sum[kChains][4][kVectors];
    for (size_t c = 0; c < kChains; ++c) {
      for (size_t j = 0; j < 4; ++j) {
        for (size_t v = 0; v < kVectors; ++v) sum[c][j][v] = _mm512_setzero_ps();
      }
    }
    auto accumulate = [&](size_t chain, size_t i) {
      const float* row = base + static_cast<size_t>(indices[i]) * Rows::kScale;
      __m512 x[kVectors];
      for (size_t v = 0; v < kVectors; ++v) x[v] = _mm512_loadu_ps(row + 16 * v);
      for (size_t j = 0; j < 4; ++j) {
        const __m512 w = _mm512_set1_ps(values[4 * i + j]);
        for (size_t v = 0; v < kVectors; ++v) {
          sum[chain][j][v] = _mm512_fmadd_ps(x[v], w, sum[chain][j][v]);
        }
      }
    };

    size_t i = static_cast<uint32_t>(weights.segment_offsets[s]);
    const size_t end = static_cast<uint32_t>(weights.segment_offsets[s + 1]);
    for (; i + kChains <= end; i += kChains) {
#pragma GCC unroll 2
      for (size_t c = 0; c < kChains; ++c) accumulate(c, i + c);
    }
    if (i < end) accumulate(0, i);

    for (size_t j = 0; j < 4; ++j) {
      for (size_t v = 0; v < kVectors; ++v) {
        float* channel_out = out + j * kAvx512PanelRows + 16 * v;
        __m512 total = sum[0][j][v];
        for (size_t c = 1; c < kChains; ++c) total = _mm512_add_ps(total, sum[c][j][v]);
        if (kAccumulate) total = _mm512_add_ps(total, _mm512_load_ps(channel_out));
        _mm512_store_ps(channel_out, total);
      }
    }
  }
}

ORTSPARSE_INSTANTIATE_TILE_KERNEL(Spmm64x4Avx512, kAvx512PanelRows, 16)

}  // namespace ortsparse::kernels
