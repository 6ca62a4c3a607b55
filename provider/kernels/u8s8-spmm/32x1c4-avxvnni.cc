// AVX-VNNI INT8 kernels (the VEX-encoded, 256-bit vpdpbusd of CPUs with AVX2 but not always
// AVX-512): one instruction multiplies a quad of 8 rows by a channel's quad of weights and adds
// into 8 int32 lanes, exactly, where the AVX2 kernels need two vpmaddwd and the byte split. They
// read the AVX2 family's 32-row panels and planes.
#include <immintrin.h>

#include "kernels/u8s8-spmm/spmm.h"
#include "kernels/u8s8-spmm/vnni-simd.h"

namespace ortsparse::kernels {
namespace {

struct Dwords8 {
  using Reg = __m256i;
  static Reg Broadcast(int32_t value) { return _mm256_set1_epi32(value); }
  static Reg Dot(Reg sums, const uint8_t* quads, Reg weights) {
    return _mm256_dpbusd_avx_epi32(sums, _mm256_loadu_si256(reinterpret_cast<const Reg*>(quads)),
                                   weights);
  }
  static Reg Add(Reg a, Reg b) { return _mm256_add_epi32(a, b); }
  static void Store(int32_t* p, Reg v) { _mm256_store_si256(reinterpret_cast<Reg*>(p), v); }
};

}  // namespace

template <size_t kVectors>
void Spmm32x1c4AvxVnni(const uint8_t* base, const QuadWeights& weights, size_t group_begin,
                       size_t group_end, int32_t* acc) {
  VnniTile<Dwords8, kAvx2QuadPanelRows, kVectors>(base, weights, group_begin, group_end, acc);
}

template void Spmm32x1c4AvxVnni<1>(const uint8_t*, const QuadWeights&, size_t, size_t, int32_t*);
template void Spmm32x1c4AvxVnni<2>(const uint8_t*, const QuadWeights&, size_t, size_t, int32_t*);
template void Spmm32x1c4AvxVnni<3>(const uint8_t*, const QuadWeights&, size_t, size_t, int32_t*);
template void Spmm32x1c4AvxVnni<4>(const uint8_t*, const QuadWeights&, size_t, size_t, int32_t*);

}  // namespace ortsparse::kernels
