// AVX-512 output stage: 16 rows of one channel per vector, requantized in registers; the
// row-major variant transposes 16 channels x 16 rows before narrowing to bytes.
#include "kernels/f32-spmm/simd-avx512.h"

#include <algorithm>

#include "kernels/u8s8-spmm/requantize.h"

namespace ortsparse::kernels {
namespace {

// The output values (as int32) of 16 rows of channel c whose sums are at `sums`, read under
// `rows_present`.
__m512i RequantizeVector(const int32_t* sums, __mmask16 rows_present, size_t c,
                         const Requantization& rq) {
  const __m512i sum = _mm512_add_epi32(_mm512_maskz_loadu_epi32(rows_present, sums),
                                       _mm512_set1_epi32(rq.channel_offsets[c]));
  __m512 scaled = _mm512_mul_ps(_mm512_cvtepi32_ps(sum), _mm512_set1_ps(rq.scales[c]));
  scaled = _mm512_min_ps(_mm512_max_ps(scaled, _mm512_set1_ps(rq.min_minus_zero_point)),
                         _mm512_set1_ps(rq.max_minus_zero_point));
  // cvtps2dq rounds half to even in the default rounding mode, as MLAS does.
  return _mm512_add_epi32(_mm512_cvtps_epi32(scaled), _mm512_set1_epi32(rq.zero_point));
}

__mmask16 FirstLanes(size_t count) {
  return count >= 16 ? __mmask16{0xffff} : static_cast<__mmask16>((1u << count) - 1);
}

}  // namespace

namespace {

// The row-major layouts: channel_vector(channel, sums) turns 16 rows of one channel's sums into
// the 16 int32 outputs, and store_row(row, c0, channel_lanes, outputs) writes the outputs of
// channels c0 .. c0 + 15 (those under channel_lanes) of one row, after 16x16 transposes.
template <typename ChannelVector, typename StoreRow>
void TransposeTile(const int32_t* acc, size_t acc_stride, size_t rows, size_t channels,
                   ChannelVector&& channel_vector, StoreRow&& store_row) {
  for (size_t c0 = 0; c0 < channels; c0 += 16) {
    const size_t block_channels = std::min<size_t>(16, channels - c0);
    const __mmask16 channel_lanes = FirstLanes(block_channels);
    for (size_t r0 = 0; r0 < rows; r0 += 16) {
      const size_t block_rows = std::min<size_t>(16, rows - r0);
      // block[c] holds channel c0 + c of rows r0 .. r0 + 15, finished but for the transpose.
      // Channels past `channels` repeat the last one; their lanes are never stored.
      __m512 block[16];
      for (size_t c = 0; c < 16; ++c) {
        const size_t channel = c0 + std::min(c, block_channels - 1);
        block[c] = _mm512_castsi512_ps(channel_vector(channel, acc + channel * acc_stride + r0));
      }
      Transpose16x16(block);
      for (size_t r = 0; r < block_rows; ++r) {
        store_row(r0 + r, c0, channel_lanes, _mm512_castps_si512(block[r]));
      }
    }
  }
}

}  // namespace

void RequantizeTileAvx512(const int32_t* acc, size_t acc_stride, size_t rows, size_t channels,
                          const Requantization& requantization, uint8_t* y, size_t y_stride) {
  TransposeTile(
      acc, acc_stride, rows, channels,
      [&](size_t channel, const int32_t* sums) {
        return RequantizeVector(sums, 0xffff, channel, requantization);
      },
      [&](size_t row, size_t c0, __mmask16 channel_lanes, __m512i outputs) {
        _mm_mask_storeu_epi8(y + row * y_stride + c0, channel_lanes,
                             _mm512_cvtepi32_epi8(outputs));
      });
}

void StoreSumsTileAvx512(const int32_t* acc, size_t acc_stride, size_t rows, size_t channels,
                         const int32_t* channel_offsets, int32_t* y, size_t y_stride) {
  TransposeTile(
      acc, acc_stride, rows, channels,
      [&](size_t channel, const int32_t* sums) {
        return _mm512_add_epi32(_mm512_loadu_si512(sums),
                                _mm512_set1_epi32(channel_offsets[channel]));
      },
      [&](size_t row, size_t c0, __mmask16 channel_lanes, __m512i outputs) {
        _mm512_mask_storeu_epi32(y + row * y_stride + c0, channel_lanes, outputs);
      });
}

void StoreSumsChannelsAvx512(const int32_t* acc, size_t acc_stride, size_t rows, size_t channels,
                             const int32_t* channel_offsets, int32_t* y, size_t y_channel_stride) {
  for (size_t c = 0; c < channels; ++c) {
    const __m512i offset = _mm512_set1_epi32(channel_offsets[c]);
    for (size_t r0 = 0; r0 < rows; r0 += 16) {
      const __mmask16 present = FirstLanes(rows - r0);
      const __m512i sums = _mm512_maskz_loadu_epi32(present, acc + c * acc_stride + r0);
      _mm512_mask_storeu_epi32(y + c * y_channel_stride + r0, present,
                               _mm512_add_epi32(sums, offset));
    }
  }
}

void RequantizeChannelsAvx512(const int32_t* acc, size_t acc_stride, size_t rows,
                              size_t channels, const Requantization& requantization, uint8_t* y,
                              size_t y_channel_stride) {
  for (size_t c = 0; c < channels; ++c) {
    for (size_t r0 = 0; r0 < rows; r0 += 16) {
      const __mmask16 present = FirstLanes(rows - r0);
      const __m512i values =
          RequantizeVector(acc + c * acc_stride + r0, present, c, requantization);
      _mm_mask_storeu_epi8(y + c * y_channel_stride + r0, present,
                           _mm512_cvtepi32_epi8(values));
    }
  }
}

void RequantizeAddChannelsAvx512(const int32_t* acc, size_t acc_stride, size_t rows,
                                 size_t channels, const Requantization& requantization,
                                 const QuantizedAddition& addition, bool is_signed,
                                 const uint8_t* residual, uint8_t* y, size_t y_channel_stride) {
  const __m512 first_ratio = _mm512_set1_ps(addition.first_ratio);
  const __m512 second_ratio = _mm512_set1_ps(addition.second_ratio);
  const __m512 offset = _mm512_set1_ps(addition.offset);
  const bool residual_first = addition.residual_first;
  for (size_t c = 0; c < channels; ++c) {
    for (size_t r0 = 0; r0 < rows; r0 += 16) {
      const __mmask16 present = FirstLanes(rows - r0);
      const size_t at = c * y_channel_stride + r0;
      const __m512 value = _mm512_cvtepi32_ps(
          RequantizeVector(acc + c * acc_stride + r0, present, c, requantization));
      const __m128i residual_bytes = _mm_maskz_loadu_epi8(present, residual + at);
      const __m512 residual_value = _mm512_cvtepi32_ps(
          is_signed ? _mm512_cvtepi8_epi32(residual_bytes) : _mm512_cvtepu8_epi32(residual_bytes));
      const __m512 first = residual_first ? residual_value : value;
      const __m512 second = residual_first ? value : residual_value;
      const __m512 sum =
          _mm512_fmadd_ps(first, first_ratio, _mm512_fmadd_ps(second, second_ratio, offset));
      // cvtps2dq rounds half to even; saturating to the 8-bit type is MLAS's two packs in one.
      const __m512i rounded = _mm512_cvtps_epi32(sum);
      const __m128i bytes =
          is_signed ? _mm512_cvtsepi32_epi8(rounded)
                    : _mm512_cvtusepi32_epi8(_mm512_max_epi32(rounded, _mm512_setzero_si512()));
      _mm_mask_storeu_epi8(y + at, present, bytes);
    }
  }
}

}  // namespace ortsparse::kernels
