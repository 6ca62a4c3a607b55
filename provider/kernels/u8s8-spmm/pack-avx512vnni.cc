// AVX-512 VNNI panel packer: each row's quads (4 consecutive input features) as dwords, one per
// row slot of the panel, the layout vpdpbusd reads 16 rows of at once.
#include "kernels/f32-spmm/simd-avx512.h"

#include <algorithm>

#include "kernels/u8s8-spmm/spmm.h"

namespace ortsparse::kernels {

void PackQuadPanelAvx512Vnni(const uint8_t* x, size_t x_stride, size_t rows, size_t k,
                             bool flip_sign, uint8_t* panel) {
  const __m512i flip = _mm512_set1_epi8(flip_sign ? static_cast<char>(0x80) : 0);
  const size_t quads = (k + 3) / 4;
  const size_t packed_rows = std::min<size_t>(kVnniPanelRows, (rows + 15) / 16 * 16);
  // A row's quads are its bytes in order, so 16 quads (64 bytes) of a row load as one vector and
  // scatter as 16 dwords, one per quad, each to its row's slot.
  for (size_t r = 0; r < packed_rows; ++r) {
    int32_t* row_slots = reinterpret_cast<int32_t*>(panel) + r;
    for (size_t q0 = 0; q0 < quads; q0 += 16) {
      const size_t first = 4 * q0;
      const size_t bytes = r < rows ? std::min<size_t>(64, k > first ? k - first : 0) : 0;
      const __mmask64 present = bytes == 64 ? ~__mmask64{0} : ((__mmask64{1} << bytes) - 1);
      __m512i v = _mm512_maskz_loadu_epi8(present, x + r * x_stride + first);
      // Features past K were loaded as zeros; flipping must leave them zero.
      v = _mm512_maskz_mov_epi8(present, _mm512_xor_si512(v, flip));
      alignas(64) int32_t quad_values[16];
      _mm512_store_si512(quad_values, v);
      const size_t count = std::min<size_t>(16, quads - q0);
      for (size_t q = 0; q < count; ++q) row_slots[(q0 + q) * kVnniPanelRows] = quad_values[q];
    }
  }
}

}  // namespace ortsparse::kernels
