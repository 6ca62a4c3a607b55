// AVX-512 quad plane packer: at stride 1, 64 columns of the four channel rows interleave by
// unpacks; at stride 2, 16 columns of each widen to dwords and merge by shifts. Masked loads read
// nothing outside the row, and those lanes take the padding.
#include <immintrin.h>

#include "kernels/lane-range-avx512.h"
#include "kernels/u8s8-spconv/planes-impl.h"

namespace ortsparse::kernels {
namespace {

// The bytes of one channel row at columns column + 2 l for the 16 lanes l selected by `inside`,
// zero-extended to dwords: only even bytes are loaded, so that the odd ones come back zero and
// each dword of the bytes widened to words is its even byte.
__m512i LoadEveryOtherColumn(const uint8_t* channel_row, int64_t column, __mmask16 inside) {
  if (channel_row == nullptr) return _mm512_setzero_si512();
  const __mmask32 even_bytes = _pdep_u32(inside, 0x55555555u);
  return _mm512_maskz_cvtepu8_epi16(~__mmask32{0},
                                    _mm256_maskz_loadu_epi8(even_bytes, channel_row + column));
}

// Bytes l of [0, 64) with begin <= l < end (both clamped to [0, 64]).
__mmask64 ByteRange(int64_t begin, int64_t end) {
  const int64_t lo = std::clamp<int64_t>(begin, 0, 64);
  const int64_t hi = std::clamp<int64_t>(end, lo, 64);
  const uint64_t below_hi = hi == 64 ? ~uint64_t{0} : (uint64_t{1} << hi) - 1;
  const uint64_t below_lo = lo == 64 ? ~uint64_t{0} : (uint64_t{1} << lo) - 1;
  return below_hi & ~below_lo;
}

__m512i Load64(const uint8_t* channel_row, int64_t column, __mmask64 inside) {
  // Addresses of masked-off bytes are never accessed, even outside the row.
  return channel_row == nullptr ? _mm512_setzero_si512()
                                : _mm512_maskz_loadu_epi8(inside, channel_row + column);
}

// out[t] for t < min(64, count) = the quads of columns column + t at stride 1, the padding where
// they fall outside the row: byte and word unpacks interleave the four channels within each
// 128-bit lane, which leaves lane L of the m-th result holding columns 16 L + 4 m .. 16 L + 4 m +
// 3; a 4 x 4 transpose of lanes restores column order. (The maskz forms of the lane shuffles:
// GCC 12 warns about the plain ones' undefined pass-through operand.)
void Interleave64(const QuadRow& row, int64_t column, int64_t count, __m512i flip_bytes,
                  __m512i pad_quads, uint32_t* out) {
  const __mmask64 inside = ByteRange(-column, row.width - column);
  const __m512i c0 = Load64(row.channel_rows[0], column, inside);
  const __m512i c1 = Load64(row.channel_rows[1], column, inside);
  const __m512i c2 = Load64(row.channel_rows[2], column, inside);
  const __m512i c3 = Load64(row.channel_rows[3], column, inside);
  const __m512i pairs01_low = _mm512_unpacklo_epi8(c0, c1);
  const __m512i pairs01_high = _mm512_unpackhi_epi8(c0, c1);
  const __m512i pairs23_low = _mm512_unpacklo_epi8(c2, c3);
  const __m512i pairs23_high = _mm512_unpackhi_epi8(c2, c3);
  const __m512i q0 = _mm512_unpacklo_epi16(pairs01_low, pairs23_low);
  const __m512i q1 = _mm512_unpackhi_epi16(pairs01_low, pairs23_low);
  const __m512i q2 = _mm512_unpacklo_epi16(pairs01_high, pairs23_high);
  const __m512i q3 = _mm512_unpackhi_epi16(pairs01_high, pairs23_high);
  const __m512i lanes01_of_q01 = _mm512_maskz_shuffle_i32x4(0xffff, q0, q1, 0x44);
  const __m512i lanes01_of_q23 = _mm512_maskz_shuffle_i32x4(0xffff, q2, q3, 0x44);
  const __m512i lanes23_of_q01 = _mm512_maskz_shuffle_i32x4(0xffff, q0, q1, 0xee);
  const __m512i lanes23_of_q23 = _mm512_maskz_shuffle_i32x4(0xffff, q2, q3, 0xee);
  const __m512i columns[4] = {
      _mm512_maskz_shuffle_i32x4(0xffff, lanes01_of_q01, lanes01_of_q23, 0x88),
      _mm512_maskz_shuffle_i32x4(0xffff, lanes01_of_q01, lanes01_of_q23, 0xdd),
      _mm512_maskz_shuffle_i32x4(0xffff, lanes23_of_q01, lanes23_of_q23, 0x88),
      _mm512_maskz_shuffle_i32x4(0xffff, lanes23_of_q01, lanes23_of_q23, 0xdd),
  };
  for (int64_t v = 0; v < 4 && 16 * v < count; ++v) {
    const __mmask16 inside_lanes = static_cast<__mmask16>(inside >> (16 * v));
    const __m512i quads =
        _mm512_mask_blend_epi32(inside_lanes, pad_quads, _mm512_xor_si512(columns[v], flip_bytes));
    _mm512_mask_storeu_epi32(out + 16 * v, LaneRange(0, count - 16 * v), quads);
  }
}

struct MaskedInterleave {
  static void Run(const QuadRow& row, int64_t first, size_t stride, size_t count, uint32_t flip,
                  uint32_t pad, uint32_t* out) {
    if (stride > 2) {
      InterleaveRunScalar(row, first, stride, count, flip, pad, out);
      return;
    }
    const __m512i flip_bytes = _mm512_set1_epi32(static_cast<int>(flip));
    const __m512i pad_quads = _mm512_set1_epi32(static_cast<int>(pad));
    const int64_t step = static_cast<int64_t>(stride);
    const int64_t count_signed = static_cast<int64_t>(count);
    if (stride == 1) {
      for (int64_t t0 = 0; t0 < count_signed; t0 += 64) {
        Interleave64(row, first + t0, count_signed - t0, flip_bytes, pad_quads, out + t0);
      }
      return;
    }
    for (int64_t t0 = 0; t0 < count_signed; t0 += 16) {
      const int64_t column = first + t0 * step;
      // Lane l reads column + step * l, inside the row for -column <= step * l < width - column.
      const __mmask16 inside = LaneRange(CeilDivSigned(-column, step),
                                         CeilDivSigned(row.width - column, step));
      // The maskz form of the shift: GCC 12 warns about the plain one's undefined pass-through
      // operand.
      const __mmask16 all = 0xffff;
      __m512i quads = LoadEveryOtherColumn(row.channel_rows[0], column, inside);
      for (int j = 1; j < 4; ++j) {
        const __m512i channel = LoadEveryOtherColumn(row.channel_rows[j], column, inside);
        quads = _mm512_or_si512(quads, _mm512_maskz_slli_epi32(all, channel, 8 * j));
      }
      quads = _mm512_mask_blend_epi32(inside, pad_quads, _mm512_xor_si512(quads, flip_bytes));
      _mm512_mask_storeu_epi32(out + t0, LaneRange(0, count_signed - t0), quads);
    }
  }

  static int64_t CeilDivSigned(int64_t a, int64_t b) {
    return a >= 0 ? (a + b - 1) / b : -(-a / b);
  }
};

}  // namespace

void PackQuadPlanesAvx512(const QuadPlanesSource& source, const InputPlanes& layout,
                          size_t quad_begin, size_t quad_end, uint32_t* planes) {
  PackQuadPlanesWith<MaskedInterleave>(source, layout, quad_begin, quad_end, planes);
}

}  // namespace ortsparse::kernels
