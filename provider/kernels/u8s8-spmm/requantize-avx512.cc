// AVX-512 output stage: 16 rows of one channel per vector, requantized in registers; the
// row-major variant transposes 16 channels x 16 rows before narrowing to bytes.
#include "kernels/u8s8-spmm/requantize-avx512.h"

#include <algorithm>

namespace ortsparse::kernels {
namespace {

// The output values (as int32) of 16 rows of channel c whose sums are at `sums`, read under
// `rows_present`.
__m512i RequantizeVector(const int32_t* sums, __mmask16 rows_present, size_t c,
                         const Requantization& rq) {
  return avx512::Requantize(_mm512_add_epi32(_mm512_maskz_loadu_epi32(rows_present, sums),
                                             _mm512_set1_epi32(rq.channel_offsets[c])),
                            c, rq);
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

namespace {

using avx512::kRowsPerByteVector;
using avx512::LowBytes;
using avx512::ResidualSum;
using avx512::SaturatedBytes;

// Calls block(c, r0) for each channel c and each whole block of 64 rows from r0, then
// vector(c, r0, lanes) for the rows left, 16 (those under lanes) at a time: shorter runs (a padded
// grid's output rows) cost no full-width work.
template <typename Block, typename Vector>
void ForEachRowBlock(size_t rows, size_t channels, Block&& block, Vector&& vector) {
  const size_t block_rows = rows / kRowsPerByteVector * kRowsPerByteVector;
  for (size_t c = 0; c < channels; ++c) {
    for (size_t r0 = 0; r0 < block_rows; r0 += kRowsPerByteVector) block(c, r0);
    for (size_t r0 = block_rows; r0 < rows; r0 += 16) vector(c, r0, FirstLanes(rows - r0));
  }
}

template <bool kSigned>
void RequantizeAddChannels(const int32_t* acc, size_t acc_stride, size_t rows, size_t channels,
                           const Requantization& requantization,
                           const QuantizedAddition& addition, const uint8_t* residual,
                           uint8_t* y, size_t y_channel_stride) {
  const ResidualSum residual_sum(addition);
  ForEachRowBlock(
      rows, channels,
      [&](size_t c, size_t r0) {
        const size_t at = c * y_channel_stride + r0;
        __m512i values[4];
        for (size_t v = 0; v < 4; ++v) {
          const __m512i requantized =
              RequantizeVector(acc + c * acc_stride + r0 + 16 * v, 0xffff, c, requantization);
          const __m128i residual_bytes =
              _mm_loadu_si128(reinterpret_cast<const __m128i*>(residual + at + 16 * v));
          values[v] = residual_sum.Add<kSigned>(requantized, residual_bytes);
        }
        _mm512_storeu_si512(y + at, SaturatedBytes<kSigned>(values));
      },
      [&](size_t c, size_t r0, __mmask16 lanes) {
        const size_t at = c * y_channel_stride + r0;
        const __m512i requantized =
            RequantizeVector(acc + c * acc_stride + r0, lanes, c, requantization);
        const __m512i sum = residual_sum.Add<kSigned>(
            requantized, _mm_maskz_loadu_epi8(lanes, residual + at));
        _mm_mask_storeu_epi8(y + at, lanes,
                             kSigned ? _mm512_cvtsepi32_epi8(sum)
                                     : _mm512_cvtusepi32_epi8(
                                           _mm512_max_epi32(sum, _mm512_setzero_si512())));
      });
}

}  // namespace

void RequantizeChannelsAvx512(const int32_t* acc, size_t acc_stride, size_t rows,
                              size_t channels, const Requantization& requantization, uint8_t* y,
                              size_t y_channel_stride) {
  ForEachRowBlock(
      rows, channels,
      [&](size_t c, size_t r0) {
        __m512i values[4];
        for (size_t v = 0; v < 4; ++v) {
          values[v] =
              RequantizeVector(acc + c * acc_stride + r0 + 16 * v, 0xffff, c, requantization);
        }
        _mm512_storeu_si512(y + c * y_channel_stride + r0, LowBytes(values));
      },
      [&](size_t c, size_t r0, __mmask16 lanes) {
        const __m512i values =
            RequantizeVector(acc + c * acc_stride + r0, lanes, c, requantization);
        _mm_mask_storeu_epi8(y + c * y_channel_stride + r0, lanes, _mm512_cvtepi32_epi8(values));
      });
}

void RequantizeAddChannelsAvx512(const int32_t* acc, size_t acc_stride, size_t rows,
                                 size_t channels, const Requantization& requantization,
                                 const QuantizedAddition& addition, bool is_signed,
                                 const uint8_t* residual, uint8_t* y, size_t y_channel_stride) {
  if (is_signed) {
    RequantizeAddChannels<true>(acc, acc_stride, rows, channels, requantization, addition,
                                residual, y, y_channel_stride);
  } else {
    RequantizeAddChannels<false>(acc, acc_stride, rows, channels, requantization, addition,
                                 residual, y, y_channel_stride);
  }
}

}  // namespace ortsparse::kernels
