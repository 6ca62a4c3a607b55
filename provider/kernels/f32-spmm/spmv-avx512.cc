// Row kernels for AVX-512: gather one row's inputs for 16 stored weights at a time.
#include "kernels/f32-spmm/simd-avx512.h"
#include "kernels/f32-spmm/spmm.h"
#include "kernels/f32-spmm/spmv-simd.h"

namespace ortsparse::kernels {
namespace {

struct RowVector : avx512::F32x16 {
  static Reg Gather(const float* x, const uint16_t* indices) {
    const __m512i lanes =
        _mm512_cvtepu16_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(indices)));
    return _mm512_i32gather_ps(lanes, x, 4);
  }
  static Reg GatherFirst(const float* x, const uint16_t* indices, size_t count) {
    const __mmask16 mask = FirstLanes(count);
    const __m512i lanes = _mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(mask, indices));
    return _mm512_mask_i32gather_ps(_mm512_setzero_ps(), mask, lanes, x, 4);
  }
  static float Sum(Reg v) { return _mm512_reduce_add_ps(v); }
};

}  // namespace

void SpmvCsrAvx512(const float* x, const SparseWeights& weights, size_t group_begin,
                   size_t group_end, float* out) {
  SpmvCsr<RowVector>(x, weights, group_begin, group_end, out);
}

void SpmvBlock4Avx512(const float* x, const SparseWeights& weights, size_t group_begin,
                      size_t group_end, float* out) {
  const float* values = weights.values;
  const uint16_t* indices = weights.input_indices;
  // Four blocks fill a vector: lanes 4b..4b+3 hold block b's weights, multiplied by its input.
  const __m512i spread_inputs = _mm512_set_epi32(3, 3, 3, 3, 2, 2, 2, 2, 1, 1, 1, 1, 0, 0, 0, 0);
  for (size_t g = group_begin; g < group_end; ++g) {
    size_t i = static_cast<uint32_t>(weights.group_offsets[g]);
    const size_t end = static_cast<uint32_t>(weights.group_offsets[g + 1]);
    __m512 acc0 = _mm512_setzero_ps();
    __m512 acc1 = _mm512_setzero_ps();
    auto add_four_blocks = [&](size_t first, __m512 acc) {
      const __m128 xs = _mm_i32gather_ps(
          x, _mm_cvtepu16_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(indices + first))),
          4);
      return _mm512_fmadd_ps(_mm512_loadu_ps(values + 4 * first),
                             _mm512_permutexvar_ps(spread_inputs, _mm512_castps128_ps512(xs)), acc);
    };
    for (; i + 8 <= end; i += 8) {
      acc0 = add_four_blocks(i, acc0);
      acc1 = add_four_blocks(i + 4, acc1);
    }
    if (i + 4 <= end) {
      acc0 = add_four_blocks(i, acc0);
      i += 4;
    }
    __m128 sum =
        _mm_add_ps(_mm_add_ps(_mm512_extractf32x4_ps(acc0, 0), _mm512_extractf32x4_ps(acc0, 1)),
                   _mm_add_ps(_mm512_extractf32x4_ps(acc0, 2), _mm512_extractf32x4_ps(acc0, 3)));
    sum = _mm_add_ps(
        sum,
        _mm_add_ps(_mm_add_ps(_mm512_extractf32x4_ps(acc1, 0), _mm512_extractf32x4_ps(acc1, 1)),
                   _mm_add_ps(_mm512_extractf32x4_ps(acc1, 2), _mm512_extractf32x4_ps(acc1, 3))));
    for (; i < end; ++i) {
      sum = _mm_fmadd_ps(_mm_loadu_ps(values + 4 * i), _mm_set1_ps(x[indices[i]]), sum);
    }
    _mm_storeu_ps(out + 4 * (g - group_begin), sum);
  }
}

}  // namespace ortsparse::kernels
