// AVX-512 VNNI INT8 kernels: one vpdpbusd multiplies a quad of 16 rows by a channel's quad of
// weights and adds into 16 int32 lanes.
#include "kernels/u8s8-spmm/requantize-avx512.h"

#include <algorithm>

#include "kernels/u8s8-spmm/spmm.h"

namespace ortsparse::kernels {

namespace {

// Computes each group's sums in registers, starting from first_sums(g), and hands them to
// finish(g, sums[kVectors]).
template <size_t kVectors, typename FirstSums, typename Finish>
void ForEachGroupSum(const uint8_t* base, const QuadWeights& weights, size_t group_begin,
                     size_t group_end, FirstSums&& first_sums, Finish&& finish) {
  // Each quad adds into the same kVectors sums, a dependency chain of vpdpbusd latencies; short
  // tiles spread their quads over several sets of sums so that four are in flight.
  constexpr size_t kChains = (4 + kVectors - 1) / kVectors;
  for (size_t g = group_begin; g < group_end; ++g) {
    __m512i sum[kChains][kVectors];
    for (size_t v = 0; v < kVectors; ++v) sum[0][v] = first_sums(g);
    for (size_t c = 1; c < kChains; ++c) {
      for (size_t v = 0; v < kVectors; ++v) sum[c][v] = _mm512_setzero_si512();
    }
    auto accumulate = [&](size_t chain, int32_t i) {
      const __m512i w = _mm512_set1_epi32(weights.values[i]);
      const uint8_t* quad = base + weights.input_offsets[i];
      for (size_t v = 0; v < kVectors; ++v) {
        sum[chain][v] = _mm512_dpbusd_epi32(sum[chain][v], _mm512_loadu_si512(quad + 64 * v), w);
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
    __m512i total[kVectors];
    for (size_t v = 0; v < kVectors; ++v) {
      total[v] = sum[0][v];
      for (size_t c = 1; c < kChains; ++c) total[v] = _mm512_add_epi32(total[v], sum[c][v]);
    }
    finish(g, total);
  }
}

}  // namespace

template <size_t kVectors>
void Spmm64x1c4Avx512Vnni(const uint8_t* base, const QuadWeights& weights, size_t group_begin,
                          size_t group_end, int32_t* acc) {
  ForEachGroupSum<kVectors>(
      base, weights, group_begin, group_end, [](size_t) { return _mm512_setzero_si512(); },
      [&](size_t g, const __m512i* total) {
        int32_t* out = acc + (g - group_begin) * kVnniPanelRows;
        for (size_t v = 0; v < kVectors; ++v) _mm512_store_si512(out + 16 * v, total[v]);
      });
}

template <size_t kVectors, QuadResidual kResidual>
void Spmm64x1c4RequantizeAvx512Vnni(const uint8_t* base, const QuadWeights& weights,
                                    size_t group_begin, size_t group_end,
                                    const RequantizedChannels& out) {
  static_assert(kVectors * 16 <= avx512::kRowsPerByteVector);
  const Requantization& rq = out.requantization;
  const avx512::ResidualSum residual_sum(out.addition);
  const __mmask64 row_bytes = out.rows >= 64 ? ~__mmask64{0} : (__mmask64{1} << out.rows) - 1;
  ForEachGroupSum<kVectors>(
      base, weights, group_begin, group_end,
      // The channel's offset starts the sums instead of joining them in the output stage.
      [&](size_t g) { return _mm512_set1_epi32(rq.channel_offsets[g - group_begin]); },
      [&](size_t g, const __m512i* total) {
        const size_t c = g - group_begin;
        const size_t at = c * out.channel_stride;
        // A short tile's missing vectors are never stored.
        __m512i values[4] = {};
        for (size_t v = 0; v < kVectors; ++v) {
          values[v] = avx512::Requantize(total[v], c, rq);
          if (kResidual != QuadResidual::kNone) {
            const __m128i residual_bytes = _mm_maskz_loadu_epi8(
                static_cast<__mmask16>(row_bytes >> (16 * v)), out.residual + at + 16 * v);
            values[v] =
                residual_sum.Add<kResidual == QuadResidual::kInt8>(values[v], residual_bytes);
          }
        }
        const __m512i bytes =
            kResidual == QuadResidual::kNone
                ? avx512::LowBytes(values)
                : avx512::SaturatedBytes<kResidual == QuadResidual::kInt8>(values);
        _mm512_mask_storeu_epi8(out.y + at, row_bytes, bytes);
      });
}

template void Spmm64x1c4Avx512Vnni<1>(const uint8_t*, const QuadWeights&, size_t, size_t, int32_t*);
template void Spmm64x1c4Avx512Vnni<2>(const uint8_t*, const QuadWeights&, size_t, size_t, int32_t*);
template void Spmm64x1c4Avx512Vnni<3>(const uint8_t*, const QuadWeights&, size_t, size_t, int32_t*);
template void Spmm64x1c4Avx512Vnni<4>(const uint8_t*, const QuadWeights&, size_t, size_t, int32_t*);

#define ORTSPARSE_INSTANTIATE_REQUANTIZE_TILE(vectors)                                 \
  template void Spmm64x1c4RequantizeAvx512Vnni<vectors, QuadResidual::kNone>(          \
      const uint8_t*, const QuadWeights&, size_t, size_t, const RequantizedChannels&); \
  template void Spmm64x1c4RequantizeAvx512Vnni<vectors, QuadResidual::kUint8>(         \
      const uint8_t*, const QuadWeights&, size_t, size_t, const RequantizedChannels&); \
  template void Spmm64x1c4RequantizeAvx512Vnni<vectors, QuadResidual::kInt8>(          \
      const uint8_t*, const QuadWeights&, size_t, size_t, const RequantizedChannels&);
ORTSPARSE_INSTANTIATE_REQUANTIZE_TILE(1)
ORTSPARSE_INSTANTIATE_REQUANTIZE_TILE(2)
ORTSPARSE_INSTANTIATE_REQUANTIZE_TILE(3)
ORTSPARSE_INSTANTIATE_REQUANTIZE_TILE(4)

}  // namespace ortsparse::kernels
