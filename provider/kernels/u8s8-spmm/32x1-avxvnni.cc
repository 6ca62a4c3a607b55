// AVX-VNNI INT8 kernels (the VEX-encoded, 256-bit vpdpbusd of CPUs with AVX2 but not always
// AVX-512): one instruction multiplies a quad of 8 rows by a channel's quad of weights and adds
// into 8 int32 lanes, exactly, where the AVX2 kernels need two vpmaddwd and the byte split. They
// read the AVX2 family's 32-row panels and planes.
#include <immintrin.h>

#include "kernels/u8s8-spmm/spmm.h"

namespace ortsparse::kernels {

template <size_t kVectors>
void QuadTileAvxVnni(const uint8_t* base, const QuadWeights& weights, size_t group_begin,
                     size_t group_end, int32_t* acc) {
  for (size_t g = group_begin; g < group_end; ++g) {
    __m256i sum[kVectors];
    for (size_t v = 0; v < kVectors; ++v) sum[v] = _mm256_setzero_si256();
    for (int32_t i = weights.group_offsets[g]; i < weights.group_offsets[g + 1]; ++i) {
      const __m256i w = _mm256_set1_epi32(weights.values[i]);
      const uint8_t* quad = base + weights.input_offsets[i];
      for (size_t v = 0; v < kVectors; ++v) {
        const __m256i x = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(quad + 32 * v));
        sum[v] = _mm256_dpbusd_avx_epi32(sum[v], x, w);
      }
    }
    int32_t* out = acc + (g - group_begin) * kAvx2QuadPanelRows;
    for (size_t v = 0; v < kVectors; ++v) {
      _mm256_store_si256(reinterpret_cast<__m256i*>(out + 8 * v), sum[v]);
    }
  }
}

template void QuadTileAvxVnni<1>(const uint8_t*, const QuadWeights&, size_t, size_t, int32_t*);
template void QuadTileAvxVnni<2>(const uint8_t*, const QuadWeights&, size_t, size_t, int32_t*);
template void QuadTileAvxVnni<3>(const uint8_t*, const QuadWeights&, size_t, size_t, int32_t*);
template void QuadTileAvxVnni<4>(const uint8_t*, const QuadWeights&, size_t, size_t, int32_t*);

}  // namespace ortsparse::kernels
