// AVX2 INT8 kernels without VNNI: each dword of four activations splits into its even and odd
// bytes, zero-extended to int16, which vpmaddwd multiplies exactly by the weights' even pair
// (w0, w2) and odd pair (w1, w3), adding into 8 int32 lanes.
#include <immintrin.h>

#include "kernels/u8s8-spmm/spmm.h"

namespace ortsparse::kernels {

template <size_t kVectors>
void Spmm32x1c4Avx2(const uint8_t* base, const QuadWeights& weights, size_t group_begin,
                    size_t group_end, int32_t* acc) {
  const __m256i even_bytes = _mm256_set1_epi16(0x00ff);
  for (size_t g = group_begin; g < group_end; ++g) {
    __m256i sum[kVectors];
    for (size_t v = 0; v < kVectors; ++v) sum[v] = _mm256_setzero_si256();
    for (int32_t i = weights.group_offsets[g]; i < weights.group_offsets[g + 1]; ++i) {
      // The quad w0 w1 w2 w3 in every dword; its words (w0, w1) and (w2, w3) sign-extend their
      // low bytes into the even pair (w0, w2) and their high bytes into the odd pair (w1, w3).
      const __m256i weight_quad = _mm256_set1_epi32(weights.values[i]);
      const __m256i even_pair = _mm256_srai_epi16(_mm256_slli_epi16(weight_quad, 8), 8);
      const __m256i odd_pair = _mm256_srai_epi16(weight_quad, 8);
      const uint8_t* quad = base + weights.input_offsets[i];
      for (size_t v = 0; v < kVectors; ++v) {
        const __m256i x = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(quad + 32 * v));
        const __m256i even = _mm256_and_si256(x, even_bytes);
        const __m256i odd = _mm256_srli_epi16(x, 8);
        sum[v] = _mm256_add_epi32(sum[v], _mm256_madd_epi16(even, even_pair));
        sum[v] = _mm256_add_epi32(sum[v], _mm256_madd_epi16(odd, odd_pair));
      }
    }
    int32_t* out = acc + (g - group_begin) * kAvx2QuadPanelRows;
    for (size_t v = 0; v < kVectors; ++v) {
      _mm256_store_si256(reinterpret_cast<__m256i*>(out + 8 * v), sum[v]);
    }
  }
}

template void Spmm32x1c4Avx2<1>(const uint8_t*, const QuadWeights&, size_t, size_t, int32_t*);
template void Spmm32x1c4Avx2<2>(const uint8_t*, const QuadWeights&, size_t, size_t, int32_t*);
template void Spmm32x1c4Avx2<3>(const uint8_t*, const QuadWeights&, size_t, size_t, int32_t*);
template void Spmm32x1c4Avx2<4>(const uint8_t*, const QuadWeights&, size_t, size_t, int32_t*);

}  // namespace ortsparse::kernels
