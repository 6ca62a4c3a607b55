// AVX-512 output stage: 16 channels x 16 rows at a time, requantized in registers, transposed to
// rows and narrowed to bytes.
#include "kernels/f32-spmm/simd-avx512.h"

#include <algorithm>

#include "kernels/u8s8-spmm/requantize.h"

namespace ortsparse::kernels {

void RequantizeTileAvx512(const int32_t* acc, size_t acc_stride, size_t rows, size_t channels,
                          const Requantization& requantization, uint8_t* y, size_t y_stride) {
  const Requantization& rq = requantization;
  const __m512 low = _mm512_set1_ps(rq.min_minus_zero_point);
  const __m512 high = _mm512_set1_ps(rq.max_minus_zero_point);
  const __m512i zero_point = _mm512_set1_epi32(rq.zero_point);
  for (size_t c0 = 0; c0 < channels; c0 += 16) {
    const size_t block_channels = std::min<size_t>(16, channels - c0);
    const __mmask16 channel_lanes = static_cast<__mmask16>((1u << block_channels) - 1);
    for (size_t r0 = 0; r0 < rows; r0 += 16) {
      const size_t block_rows = std::min<size_t>(16, rows - r0);
      // block[c] holds channel c0 + c of rows r0 .. r0 + 15, finished but for the transpose.
      // Channels past `channels` hold whatever the caller's acc has there; their lanes are never
      // stored.
      __m512 block[16];
      for (size_t c = 0; c < 16; ++c) {
        const size_t channel = c0 + std::min(c, block_channels - 1);
        const __m512i sum =
            _mm512_add_epi32(_mm512_loadu_si512(acc + channel * acc_stride + r0),
                             _mm512_set1_epi32(rq.channel_offsets[channel]));
        __m512 scaled = _mm512_mul_ps(_mm512_cvtepi32_ps(sum), _mm512_set1_ps(rq.scales[channel]));
        scaled = _mm512_min_ps(_mm512_max_ps(scaled, low), high);
        // cvtps2dq rounds half to even in the default rounding mode, as MLAS does.
        block[c] = _mm512_castsi512_ps(_mm512_add_epi32(_mm512_cvtps_epi32(scaled), zero_point));
      }
      Transpose16x16(block);
      for (size_t r = 0; r < block_rows; ++r) {
        _mm_mask_storeu_epi8(y + (r0 + r) * y_stride + c0, channel_lanes,
                             _mm512_cvtepi32_epi8(_mm512_castps_si512(block[r])));
      }
    }
  }
}

}  // namespace ortsparse::kernels
