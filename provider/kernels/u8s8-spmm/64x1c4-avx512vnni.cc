// AVX-512 VNNI INT8 kernels: one vpdpbusd multiplies a quad of 16 rows by a channel's quad of
// weights and adds into 16 int32 lanes.
#include "kernels/u8s8-spmm/requantize-avx512.h"
#include "kernels/u8s8-spmm/spmm.h"
#include "kernels/u8s8-spmm/vnni-simd.h"

namespace ortsparse::kernels {

namespace {

struct Dwords16 {
  using Reg = __m512i;
  static Reg Broadcast(int32_t value) { return _mm512_set1_epi32(value); }
  static Reg Dot(Reg sums, const uint8_t* quads, Reg weights) {
    return _mm512_dpbusd_epi32(sums, _mm512_loadu_si512(quads), weights);
  }
  static Reg Add(Reg a, Reg b) { return _mm512_add_epi32(a, b); }
  static void Store(int32_t* p, Reg v) { _mm512_store_si512(p, v); }
};

}  // namespace

template <size_t kVectors>
void Spmm64x1c4Avx512Vnni(const uint8_t* base, const QuadWeights& weights, size_t group_begin,
                          size_t group_end, int32_t* acc) {
  VnniTile<Dwords16, kVnniPanelRows, kVectors>(base, weights, group_begin, group_end, acc);
}

template <size_t kVectors, QuadResidual kResidual>
void Spmm64x1c4RequantizeAvx512Vnni(const uint8_t* base, const QuadWeights& weights,
                                    size_t group_begin, size_t group_end,
                                    const RequantizedChannels& out) {
  static_assert(kVectors * 16 <= avx512::kRowsPerByteVector);
  const Requantization& rq = out.requantization;
  const avx512::ResidualSum residual_sum(out.addition);
  const __mmask64 row_bytes = out.rows >= 64 ? ~__mmask64{0} : (__mmask64{1} << out.rows) - 1;
  ForEachGroupSum<Dwords16, kVectors>(
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
