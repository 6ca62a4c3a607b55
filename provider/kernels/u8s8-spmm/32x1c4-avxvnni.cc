// AVX-VNNI INT8 kernels (the VEX-encoded, 256-bit vpdpbusd of CPUs with AVX2 but not always
// AVX-512): one instruction multiplies a quad of 8 rows by a channel's quad of weights and adds
// into 8 int32 lanes, exactly, where the AVX2 kernels need two vpmaddwd and the byte split. They
// read the AVX2 family's 32-row panels and planes.
#include <immintrin.h>

#include "kernels/u8s8-spmm/spmm.h"

namespace ortsparse::kernels {

template <size_t kVectors>
void Spmm32x1c4AvxVnni(const uint8_t* base, const QuadWeights& weights, size_t group_begin,
                       size_t group_end, int32_t* acc) {
  // As in the AVX-512 VNNI kernels: short tiles spread their quads over several sets of sums so
  // that four vpdpbusd are in flight.
  constexpr size_t kChains = (4 + kVectors - 1) / kVectors;
  for (size_t g = group_begin; g < group_end; ++g) {
    __m256i sum[kChains][kVectors];
    for (size_t c = 0; c < kChains; ++c) {
      for (size_t v = 0; v < kVectors; ++v) sum[c][v] = _mm256_setzero_si256();
    }
    auto accumulate = [&](size_t chain, int32_t i) {
      const __m256i w = _mm256_set1_epi32(weights.values[i]);
      const uint8_t* quad = base + weights.input_offsets[i];
      for (size_t v = 0; v < kVectors; ++v) {
        const __m256i x = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(quad + 32 * v));
        sum[chain][v] = _mm256_dpbusd_avx_epi32(sum[chain][v], x, w);
      }
    };
    int32_t i = weights.group_offsets[g];
    const int32_t end = weights.group_offsets[g + 1];
    for (; i + static_cast<int32_t>(kChains) <= end; i += kChains) {
#pragma GCC unroll 4
      for (size_t c = 0; c < kChains; ++c) accumulate(c, i + static_cast<int32_t>(c));
    }
#pragma GCC unroll 4
    for (size_t c = 0; c + 1 < kChains; ++c) {
      if (i + static_cast<int32_t>(c) < end) accumulate(c, i + static_cast<int32_t>(c));
    }
    int32_t* out = acc + (g - group_begin) * kAvx2QuadPanelRows;
    for (size_t v = 0; v < kVectors; ++v) {
      __m256i total = sum[0][v];
      for (size_t c = 1; c < kChains; ++c) total = _mm256_add_epi32(total, sum[c][v]);
      _mm256_store_si256(reinterpret_cast<__m256i*>(out + 8 * v), total);
    }
  }
}

template void Spmm32x1c4AvxVnni<1>(const uint8_t*, const QuadWeights&, size_t, size_t, int32_t*);
template void Spmm32x1c4AvxVnni<2>(const uint8_t*, const QuadWeights&, size_t, size_t, int32_t*);
template void Spmm32x1c4AvxVnni<3>(const uint8_t*, const QuadWeights&, size_t, size_t, int32_t*);
template void Spmm32x1c4AvxVnni<4>(const uint8_t*, const QuadWeights&, size_t, size_t, int32_t*);

}  // namespace ortsparse::kernels
