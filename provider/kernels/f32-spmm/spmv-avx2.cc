// Row kernels for AVX2: gather one row's inputs for 8 stored weights at a time.
#include <immintrin.h>

#include <algorithm>

#include "kernels/f32-spmm/simd-avx2.h"
#include "kernels/f32-spmm/spmm.h"
#include "kernels/f32-spmm/spmv-simd.h"

namespace ortsparse::kernels {
namespace {

struct RowVector : avx2::F32x8 {
  static __m256i Indices(const uint16_t* first) {
    return _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(first)));
  }
  static Reg Gather(const float* x, const uint16_t* indices) {
    return _mm256_i32gather_ps(x, Indices(indices), 4);
  }
  static Reg GatherFirst(const float* x, const uint16_t* indices, size_t count) {
    // AVX2 has no masked 16-bit load: the indices go through a zero-padded copy.
    uint16_t first[8] = {};
    std::copy(indices, indices + count, first);
    return _mm256_mask_i32gather_ps(_mm256_setzero_ps(), x, Indices(first),
                                    _mm256_castsi256_ps(FirstLanesMask(count)), 4);
  }
  static float Sum(Reg v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
  }
};

}  // namespace

void SpmvCsrAvx2(const float* x, const SparseWeights& weights, size_t group_begin, size_t group_end,
                 float* out) {
  SpmvCsr<RowVector>(x, weights, group_begin, group_end, out);
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
