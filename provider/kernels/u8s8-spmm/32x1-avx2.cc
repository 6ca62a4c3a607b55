// AVX2 INT8 kernels without VNNI: activations widened to int16 in the panel, pairs of features
// multiplied and added exactly by vpmaddwd into 8 int32 lanes.
#include <immintrin.h>

#include "kernels/u8s8-spmm/spmm.h"

namespace ortsparse::kernels {

void PackQuadPanelAvx2(const uint8_t* x, size_t x_stride, size_t rows, size_t k, bool flip_sign,
                       uint8_t* panel) {
  const uint8_t flip = flip_sign ? 0x80 : 0x00;
  const size_t quads = (k + 3) / 4;
  int16_t* out = reinterpret_cast<int16_t*>(panel);
  // Slot (quad q, pair p, row r) holds features 4q + 2p and 4q + 2p + 1 of row r as two int16.
  for (size_t q = 0; q < quads; ++q) {
    for (size_t pair = 0; pair < 2; ++pair) {
      int16_t* slots = out + ((2 * q + pair) * kAvx2QuadPanelRows) * 2;
      for (size_t r = 0; r < kAvx2QuadPanelRows; ++r) {
        for (size_t j = 0; j < 2; ++j) {
          const size_t feature = 4 * q + 2 * pair + j;
          slots[2 * r + j] = r < rows && feature < k
                                 ? static_cast<int16_t>(x[r * x_stride + feature] ^ flip)
                                 : int16_t{0};
        }
      }
    }
  }
}

template <size_t kVectors>
void QuadTileAvx2(const uint8_t* panel, const QuadWeights& weights, size_t group_begin,
                  size_t group_end, int32_t* acc) {
  // One pair of features of 32 rows: 32 x 2 int16.
  constexpr size_t kPairBytes = kAvx2QuadPanelRows * 2 * sizeof(int16_t);
  for (size_t g = group_begin; g < group_end; ++g) {
    __m256i sum[kVectors];
    for (size_t v = 0; v < kVectors; ++v) sum[v] = _mm256_setzero_si256();
    for (int32_t i = weights.group_offsets[g]; i < weights.group_offsets[g + 1]; ++i) {
      // Each weight pair, sign-extended to two int16 in one dword, against every row's pair.
      const __m128i quad_weights = _mm_cvtsi32_si128(weights.values[i]);
      const __m128i widened = _mm_cvtepi8_epi16(quad_weights);
      const __m256i low_pair = _mm256_set1_epi32(_mm_extract_epi32(widened, 0));
      const __m256i high_pair = _mm256_set1_epi32(_mm_extract_epi32(widened, 1));
      const uint8_t* quad = panel + static_cast<size_t>(weights.quad_indices[i]) * 2 * kPairBytes;
      for (size_t v = 0; v < kVectors; ++v) {
        const __m256i low = _mm256_load_si256(reinterpret_cast<const __m256i*>(quad + 32 * v));
        const __m256i high =
            _mm256_load_si256(reinterpret_cast<const __m256i*>(quad + kPairBytes + 32 * v));
        sum[v] = _mm256_add_epi32(sum[v], _mm256_madd_epi16(low, low_pair));
        sum[v] = _mm256_add_epi32(sum[v], _mm256_madd_epi16(high, high_pair));
      }
    }
    int32_t* out = acc + (g - group_begin) * kAvx2QuadPanelRows;
    for (size_t v = 0; v < kVectors; ++v) {
      _mm256_store_si256(reinterpret_cast<__m256i*>(out + 8 * v), sum[v]);
    }
  }
}

template void QuadTileAvx2<1>(const uint8_t*, const QuadWeights&, size_t, size_t, int32_t*);
template void QuadTileAvx2<2>(const uint8_t*, const QuadWeights&, size_t, size_t, int32_t*);
template void QuadTileAvx2<3>(const uint8_t*, const QuadWeights&, size_t, size_t, int32_t*);
template void QuadTileAvx2<4>(const uint8_t*, const QuadWeights&, size_t, size_t, int32_t*);

}  // namespace ortsparse::kernels
