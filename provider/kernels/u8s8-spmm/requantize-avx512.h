// The AVX-512 INT8 output stage's arithmetic on registers, shared by the output stage
// (requantize-avx512.cc) and the VNNI tile kernels that finish Y themselves (64x1c4-avx512vnni.cc).
#pragma once

#include "kernels/f32-spmm/simd-avx512.h"

#include <cstddef>

#include "kernels/u8s8-spmm/requantize.h"

namespace ortsparse::kernels::avx512 {

// The output values (as int32) of 16 rows of channel c from their sums plus the channel's offset.
inline __m512i Requantize(__m512i offset_sums, size_t c, const Requantization& rq) {
  __m512 scaled = _mm512_mul_ps(_mm512_cvtepi32_ps(offset_sums), _mm512_set1_ps(rq.scales[c]));
  scaled = _mm512_min_ps(_mm512_max_ps(scaled, _mm512_set1_ps(rq.min_minus_zero_point)),
                         _mm512_set1_ps(rq.max_minus_zero_point));
  // cvtps2dq rounds half to even in the default rounding mode, as MLAS does.
  return _mm512_add_epi32(_mm512_cvtps_epi32(scaled), _mm512_set1_epi32(rq.zero_point));
}

// Channel-major outputs go 64 rows of a channel at a time where they can: four vectors of int32
// values narrowed to one vector of bytes by packs, which take half the shuffles of four vpmovdb and
// store once instead of four times.
inline constexpr size_t kRowsPerByteVector = 64;

// The packs interleave their operands by 128-bit lanes: lane L of packed holds dword L of each of
// the four source vectors in turn (4 rows each); this puts the dwords back in row order.
inline __m512i RowOrder(__m512i packed) {
  return _mm512_permutexvar_epi32(
      _mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15), packed);
}

// The low byte of each of 64 int32 values that already lie in [-128, 255], in row order: the
// uint8 or int8 value alike. Masking each word to its low byte keeps the unsigned pack exact.
inline __m512i LowBytes(const __m512i values[4]) {
  const __m512i low_byte = _mm512_set1_epi16(0xff);
  const __m512i first = _mm512_and_si512(_mm512_packs_epi32(values[0], values[1]), low_byte);
  const __m512i second = _mm512_and_si512(_mm512_packs_epi32(values[2], values[3]), low_byte);
  return RowOrder(_mm512_packus_epi16(first, second));
}

// 64 int32 values saturated to int8 or uint8, in row order: two saturating packs saturate as one
// (the unsigned one takes negative words to 0).
template <bool kSigned>
__m512i SaturatedBytes(const __m512i values[4]) {
  const __m512i first = _mm512_packs_epi32(values[0], values[1]);
  const __m512i second = _mm512_packs_epi32(values[2], values[3]);
  return RowOrder(kSigned ? _mm512_packs_epi16(first, second) : _mm512_packus_epi16(first, second));
}

// QLinearAdd's sum of a requantized value and a residual byte (see QuantizedAddition), rounded
// half to even by cvtps2dq as MLAS does, before saturation.
class ResidualSum {
 public:
  explicit ResidualSum(const QuantizedAddition& addition)
      : first_ratio_(_mm512_set1_ps(addition.first_ratio)),
        second_ratio_(_mm512_set1_ps(addition.second_ratio)),
        offset_(_mm512_set1_ps(addition.offset)),
        residual_first_(addition.residual_first) {}

  template <bool kSigned>
  __m512i Add(__m512i requantized, __m128i residual_bytes) const {
    const __m512 residual = _mm512_cvtepi32_ps(kSigned ? _mm512_cvtepi8_epi32(residual_bytes)
                                                       : _mm512_cvtepu8_epi32(residual_bytes));
    const __m512 value = _mm512_cvtepi32_ps(requantized);
    const __m512 first = residual_first_ ? residual : value;
    const __m512 second = residual_first_ ? value : residual;
    return _mm512_cvtps_epi32(
        _mm512_fmadd_ps(first, first_ratio_, _mm512_fmadd_ps(second, second_ratio_, offset_)));
  }

 private:
  __m512 first_ratio_, second_ratio_, offset_;
  bool residual_first_;
};

}  // namespace ortsparse::kernels::avx512
