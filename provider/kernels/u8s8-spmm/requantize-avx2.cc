// AVX2 output stage: 8 rows of one channel per vector, requantized in registers (the arithmetic
// of the scalar stage, vector for vector: cvtps2dq rounds half to even as nearbyint does, and the
// residual Add's multiply-adds are fused as std::fma's); the row-major variant transposes 8
// channels x 8 rows before narrowing to bytes. Rows past a whole vector go through a buffer.
#include <immintrin.h>

#include <algorithm>
#include <cstring>

#include "kernels/f32-spmm/simd-avx2.h"
#include "kernels/u8s8-spmm/requantize.h"

namespace ortsparse::kernels {
namespace {

constexpr size_t kLanes = 8;

// The output values (as int32) of 8 rows of channel c from their sums plus the channel's offset.
__m256i Requantize(__m256i sums, size_t c, const Requantization& rq) {
  const __m256i offset_sums = _mm256_add_epi32(sums, _mm256_set1_epi32(rq.channel_offsets[c]));
  __m256 scaled = _mm256_mul_ps(_mm256_cvtepi32_ps(offset_sums), _mm256_set1_ps(rq.scales[c]));
  scaled = _mm256_min_ps(_mm256_max_ps(scaled, _mm256_set1_ps(rq.min_minus_zero_point)),
                         _mm256_set1_ps(rq.max_minus_zero_point));
  return _mm256_add_epi32(_mm256_cvtps_epi32(scaled), _mm256_set1_epi32(rq.zero_point));
}

// The sums of rows [r0, r0 + count) (count <= 8) of one channel, zero past them.
__m256i LoadSums(const int32_t* sums, size_t count) {
  if (count >= kLanes) return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(sums));
  return _mm256_maskload_epi32(sums, FirstLanesMask(count));
}

// The packs interleave their operands by 128-bit lanes: dword d of a pack of four vectors of
// int32 holds 4 rows of vector d % 4 (its low half for d < 4); this puts them back in row order.
__m256i RowOrder(__m256i packed) {
  return _mm256_permutevar8x32_epi32(packed, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
}

// The low byte of each of 32 int32 values that already lie in [-128, 255], in row order: the
// uint8 or int8 value alike. Masking each word to its low byte keeps the unsigned pack exact.
__m256i LowBytes(const __m256i values[4]) {
  const __m256i low_byte = _mm256_set1_epi16(0xff);
  const __m256i first = _mm256_and_si256(_mm256_packs_epi32(values[0], values[1]), low_byte);
  const __m256i second = _mm256_and_si256(_mm256_packs_epi32(values[2], values[3]), low_byte);
  return RowOrder(_mm256_packus_epi16(first, second));
}

// 32 int32 values saturated to int8 or uint8, in row order: two saturating packs saturate as one
// (the unsigned one takes negative words to 0).
template <bool kSigned>
__m256i SaturatedBytes(const __m256i values[4]) {
  const __m256i first = _mm256_packs_epi32(values[0], values[1]);
  const __m256i second = _mm256_packs_epi32(values[2], values[3]);
  return RowOrder(kSigned ? _mm256_packs_epi16(first, second)
                          : _mm256_packus_epi16(first, second));
}

// The 8 bytes of one vector of int32 values, as LowBytes or SaturatedBytes make them, in the low
// quadword (RowOrder leaves the first vector's rows in the first 8 bytes).
template <typename Narrow>
__m128i EightBytes(__m256i values, Narrow&& narrow) {
  const __m256i vectors[4] = {values, values, values, values};
  return _mm256_castsi256_si128(narrow(vectors));
}

void StoreBytes(uint8_t* y, __m128i bytes, size_t count) {
  if (count >= kLanes) {
    _mm_storel_epi64(reinterpret_cast<__m128i*>(y), bytes);
    return;
  }
  alignas(16) uint8_t buffer[16];
  _mm_store_si128(reinterpret_cast<__m128i*>(buffer), bytes);
  std::memcpy(y, buffer, count);
}

__m128i LoadBytes(const uint8_t* bytes, size_t count) {
  if (count >= kLanes) return _mm_loadl_epi64(reinterpret_cast<const __m128i*>(bytes));
  uint8_t buffer[kLanes] = {};
  std::memcpy(buffer, bytes, count);
  return _mm_loadl_epi64(reinterpret_cast<const __m128i*>(buffer));
}

// QLinearAdd's sum of a requantized value and a residual byte (see QuantizedAddition), rounded
// half to even by cvtps2dq as MLAS does, before saturation.
class ResidualSum {
 public:
  explicit ResidualSum(const QuantizedAddition& addition)
      : first_ratio_(_mm256_set1_ps(addition.first_ratio)),
        second_ratio_(_mm256_set1_ps(addition.second_ratio)),
        offset_(_mm256_set1_ps(addition.offset)),
        residual_first_(addition.residual_first) {}

  template <bool kSigned>
  __m256i Add(__m256i requantized, __m128i residual_bytes) const {
    const __m256 residual = _mm256_cvtepi32_ps(kSigned ? _mm256_cvtepi8_epi32(residual_bytes)
                                                       : _mm256_cvtepu8_epi32(residual_bytes));
    const __m256 value = _mm256_cvtepi32_ps(requantized);
    const __m256 first = residual_first_ ? residual : value;
    const __m256 second = residual_first_ ? value : residual;
    return _mm256_cvtps_epi32(
        _mm256_fmadd_ps(first, first_ratio_, _mm256_fmadd_ps(second, second_ratio_, offset_)));
  }

 private:
  __m256 first_ratio_, second_ratio_, offset_;
  bool residual_first_;
};

// Calls block(c, r0) for each channel c and each whole block of 32 rows from r0, then
// vector(c, r0, count) for the rows left, 8 (count of them, at most 8) at a time.
template <typename Block, typename Vector>
void ForEachRowBlock(size_t rows, size_t channels, Block&& block, Vector&& vector) {
  constexpr size_t kBlockRows = 4 * kLanes;
  const size_t block_rows = rows / kBlockRows * kBlockRows;
  for (size_t c = 0; c < channels; ++c) {
    for (size_t r0 = 0; r0 < block_rows; r0 += kBlockRows) block(c, r0);
    for (size_t r0 = block_rows; r0 < rows; r0 += kLanes) vector(c, r0, rows - r0);
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
        __m256i values[4];
        for (size_t v = 0; v < 4; ++v) {
          const __m256i requantized =
              Requantize(LoadSums(acc + c * acc_stride + r0 + kLanes * v, kLanes), c,
                         requantization);
          values[v] = residual_sum.Add<kSigned>(requantized,
                                                LoadBytes(residual + at + kLanes * v, kLanes));
        }
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(y + at), SaturatedBytes<kSigned>(values));
      },
      [&](size_t c, size_t r0, size_t count) {
        const size_t at = c * y_channel_stride + r0;
        const __m256i requantized =
            Requantize(LoadSums(acc + c * acc_stride + r0, count), c, requantization);
        const __m256i sum =
            residual_sum.Add<kSigned>(requantized, LoadBytes(residual + at, count));
        StoreBytes(y + at, EightBytes(sum, SaturatedBytes<kSigned>), count);
      });
}

// The row-major layouts: channel_vector(channel, sums) turns 8 rows of one channel's sums into
// the 8 int32 outputs, and store_row(row, c0, channels, outputs) writes the outputs of channels
// c0 .. c0 + channels - 1 of one row, after 8x8 transposes.
template <typename ChannelVector, typename StoreRow>
void TransposeTile(const int32_t* acc, size_t acc_stride, size_t rows, size_t channels,
                   ChannelVector&& channel_vector, StoreRow&& store_row) {
  for (size_t c0 = 0; c0 < channels; c0 += kLanes) {
    const size_t block_channels = std::min(kLanes, channels - c0);
    for (size_t r0 = 0; r0 < rows; r0 += kLanes) {
      const size_t block_rows = std::min(kLanes, rows - r0);
      // Channels past `channels` repeat the last one; their lanes are never stored.
      __m256 block[kLanes];
      for (size_t c = 0; c < kLanes; ++c) {
        const size_t channel = c0 + std::min(c, block_channels - 1);
        const __m256i sums = LoadSums(acc + channel * acc_stride + r0, block_rows);
        block[c] = _mm256_castsi256_ps(channel_vector(channel, sums));
      }
      Transpose8x8(block);
      for (size_t r = 0; r < block_rows; ++r) {
        store_row(r0 + r, c0, block_channels, _mm256_castps_si256(block[r]));
      }
    }
  }
}

}  // namespace

void RequantizeTileAvx2(const int32_t* acc, size_t acc_stride, size_t rows, size_t channels,
                        const Requantization& requantization, uint8_t* y, size_t y_stride) {
  TransposeTile(
      acc, acc_stride, rows, channels,
      [&](size_t channel, __m256i sums) { return Requantize(sums, channel, requantization); },
      [&](size_t row, size_t c0, size_t count, __m256i outputs) {
        StoreBytes(y + row * y_stride + c0, EightBytes(outputs, LowBytes), count);
      });
}

void StoreSumsTileAvx2(const int32_t* acc, size_t acc_stride, size_t rows, size_t channels,
                       const int32_t* channel_offsets, int32_t* y, size_t y_stride) {
  TransposeTile(
      acc, acc_stride, rows, channels,
      [&](size_t channel, __m256i sums) {
        return _mm256_add_epi32(sums, _mm256_set1_epi32(channel_offsets[channel]));
      },
      [&](size_t row, size_t c0, size_t count, __m256i outputs) {
        _mm256_maskstore_epi32(y + row * y_stride + c0, FirstLanesMask(count), outputs);
      });
}

void StoreSumsChannelsAvx2(const int32_t* acc, size_t acc_stride, size_t rows, size_t channels,
                           const int32_t* channel_offsets, int32_t* y, size_t y_channel_stride) {
  for (size_t c = 0; c < channels; ++c) {
    const __m256i offset = _mm256_set1_epi32(channel_offsets[c]);
    for (size_t r0 = 0; r0 < rows; r0 += kLanes) {
      const size_t count = std::min(kLanes, rows - r0);
      const __m256i sums = LoadSums(acc + c * acc_stride + r0, count);
      _mm256_maskstore_epi32(y + c * y_channel_stride + r0, FirstLanesMask(count),
                             _mm256_add_epi32(sums, offset));
    }
  }
}

void RequantizeChannelsAvx2(const int32_t* acc, size_t acc_stride, size_t rows, size_t channels,
                            const Requantization& requantization, uint8_t* y,
                            size_t y_channel_stride) {
  ForEachRowBlock(
      rows, channels,
      [&](size_t c, size_t r0) {
        __m256i values[4];
        for (size_t v = 0; v < 4; ++v) {
          values[v] = Requantize(LoadSums(acc + c * acc_stride + r0 + kLanes * v, kLanes), c,
                                 requantization);
        }
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(y + c * y_channel_stride + r0),
                            LowBytes(values));
      },
      [&](size_t c, size_t r0, size_t count) {
        const __m256i values =
            Requantize(LoadSums(acc + c * acc_stride + r0, count), c, requantization);
        StoreBytes(y + c * y_channel_stride + r0, EightBytes(values, LowBytes), count);
      });
}

void RequantizeAddChannelsAvx2(const int32_t* acc, size_t acc_stride, size_t rows,
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
