// Row kernels for AVX2: gather one row's inputs for 8 stored weights at a time.
#include <immintrin.h>

#include <algorithm>

#include "kernels/f32-spmm/spmm.h"
#include "kernels/f32-spmm/simd-avx2.h"

namespace ortsparse::kernels {
namespace {

float HorizontalSum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

}  // namespace

void SpmvCsrAvx2(const float* x, const SparseWeights& weights, size_t group_begin,
                 size_t group_end, float* out) {
  const float* values = weights.values;
  const uint16_t* indices = weights.input_indices;
  auto eight_indices = [&](const uint16_t* first) {
    return _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(first)));
  };
  for (size_t g = group_begin; g < group_end; ++g) {
    size_t i = static_cast<uint32_t>(weights.group_offsets[g]);
    const size_t end = static_cast<uint32_t>(weights.group_offsets[g + 1]);
    // Two accumulators so that consecutive gathers do not wait on each other's FMA.
    __m256 acc0 = _mm256_setzero_ps();
    __m256 acc1 = _mm256_setzero_ps();
    for (; i + 16 <= end; i += 16) {
      const __m256i k0 = eight_indices(indices + i);
      const __m256i k1 = eight_indices(indices + i + 8);
      acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(values + i), _mm256_i32gather_ps(x, k0, 4), acc0);
      acc1 = _mm256_fmadd_ps(_mm256_loadu_ps(values + i + 8), _mm256_i32gather_ps(x, k1, 4),
                             acc1);
    }
    for (; i < end; i += 8) {
      const size_t count = end - i < 8 ? end - i : 8;
      const __m256i mask = FirstLanesMask(count);
      // AVX2 has no masked 16-bit load: the tail's indices go through a zero-padded copy.
      uint16_t tail[8] = {};
      std::copy(indices + i, indices + i + count, tail);
      const __m256i k = eight_indices(tail);
      const __m256 xs =
          _mm256_mask_i32gather_ps(_mm256_setzero_ps(), x, k, _mm256_castsi256_ps(mask), 4);
      acc0 = _mm256_fmadd_ps(_mm256_maskload_ps(values + i, mask), xs, acc0);
    }
    out[g - group_begin] = HorizontalSum(_mm256_add_ps(acc0, acc1));
  }
}

void SpmvBlock4Avx2(const float* x, const SparseWeights& weights, size_t group_begin,
                    size_t group_end, float* out) {
  const float* values = weights.values;
  const uint16_t* indices = weights.input_indices;
  for (size_t g = group_begin; g < group_end; ++g) {
    size_t i = static_cast<uint32_t>(weights.group_offsets[g]);
    const size_t end = static_cast<uint32_t>(weights.group_offsets[g + 1]);
    // Two blocks fill a vector: lanes 0-3 hold block i's weights, lanes 4-7 block i + 1's.
    auto two_blocks_inputs = [&](size_t first) {
      return _mm256_insertf128_ps(_mm256_castps128_ps256(_mm_set1_ps(x[indices[first]])),
                                  _mm_set1_ps(x[indices[first + 1]]), 1);
    };
    __m256 acc0 = _mm256_setzero_ps();
    __m256 acc1 = _mm256_setzero_ps();
    for (; i + 4 <= end; i += 4) {
      acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(values + 4 * i), two_blocks_inputs(i), acc0);
      acc1 = _mm256_fmadd_ps(_mm256_loadu_ps(values + 4 * i + 8), two_blocks_inputs(i + 2), acc1);
    }
    const __m256 acc = _mm256_add_ps(acc0, acc1);
    __m128 sum = _mm_add_ps(_mm256_castps256_ps128(acc), _mm256_extractf128_ps(acc, 1));
    for (; i < end; ++i) {
      sum = _mm_fmadd_ps(_mm_loadu_ps(values + 4 * i), _mm_set1_ps(x[indices[i]]), sum);
    }
    _mm_storeu_ps(out + 4 * (g - group_begin), sum);
  }
}

}  // namespace ortsparse::kernels
