// The AVX2 files' float vector: F32x8, the operations the kernels written once over a vector
// type take (math-simd.h, epilogue-simd.h, tiles-simd.h, spmv-simd.h), and in-register helpers.
#pragma once

#include <immintrin.h>

#include <cstddef>

namespace ortsparse::kernels {

// Transposes the 8x8 matrix whose rows are v[0..7], in place.
inline void Transpose8x8(__m256 v[8]) {
  __m256 t[8];
  for (int k = 0; k < 4; ++k) {
    t[2 * k] = _mm256_unpacklo_ps(v[2 * k], v[2 * k + 1]);
    t[2 * k + 1] = _mm256_unpackhi_ps(v[2 * k], v[2 * k + 1]);
  }
  // u[4h + j], 128-bit lane L, holds column 4L + j of rows 4h..4h+3.
  __m256 u[8];
  for (int h = 0; h < 2; ++h) {
    u[4 * h + 0] = _mm256_shuffle_ps(t[4 * h], t[4 * h + 2], 0x44);
    u[4 * h + 1] = _mm256_shuffle_ps(t[4 * h], t[4 * h + 2], 0xEE);
    u[4 * h + 2] = _mm256_shuffle_ps(t[4 * h + 1], t[4 * h + 3], 0x44);
    u[4 * h + 3] = _mm256_shuffle_ps(t[4 * h + 1], t[4 * h + 3], 0xEE);
  }
  for (int j = 0; j < 4; ++j) {
    v[j] = _mm256_permute2f128_ps(u[j], u[4 + j], 0x20);
    v[4 + j] = _mm256_permute2f128_ps(u[j], u[4 + j], 0x31);
  }
}

// All-ones in the first `count` 32-bit lanes, for maskload/maskstore.
inline __m256i FirstLanesMask(size_t count) {
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(count)),
                            _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

namespace avx2 {

struct F32x8 {
  using Reg = __m256;
  using Mask = __m256;  // all-ones lanes, as the compares make them
  static constexpr size_t kLanes = 8;
  static Reg Load(const float* p) { return _mm256_loadu_ps(p); }
  static Reg LoadAligned(const float* p) { return _mm256_load_ps(p); }
  static void StoreAligned(float* p, Reg v) { _mm256_store_ps(p, v); }
  // The first count (<= kLanes) lanes, for partial loads (zero in the other lanes) and stores.
  using Lanes = __m256i;
  static Lanes FirstLanes(size_t count) { return FirstLanesMask(count); }
  // Lanes [begin, end), begin <= end <= kLanes.
  static Lanes LanesBetween(size_t begin, size_t end) {
    return _mm256_andnot_si256(FirstLanesMask(begin), FirstLanesMask(end));
  }
  static Reg LoadLanes(Lanes lanes, const float* p) { return _mm256_maskload_ps(p, lanes); }
  static void StoreLanes(float* p, Lanes lanes, Reg v) { _mm256_maskstore_ps(p, lanes, v); }
  static void Transpose(Reg block[kLanes]) { Transpose8x8(block); }
  // Lanes 0, 2, ..., 14 of low and high one after the other: the even lanes of each 128-bit half,
  // then the halves' 64-bit pairs back in order.
  static Reg EvenLanes(Reg low, Reg high) {
    const __m256 evens = _mm256_shuffle_ps(low, high, _MM_SHUFFLE(2, 0, 2, 0));
    return _mm256_castpd_ps(
        _mm256_permute4x64_pd(_mm256_castps_pd(evens), _MM_SHUFFLE(3, 1, 2, 0)));
  }
  static Reg Set1(float value) { return _mm256_set1_ps(value); }
  static Reg Zero() { return _mm256_setzero_ps(); }
  static Reg Add(Reg a, Reg b) { return _mm256_add_ps(a, b); }
  static Reg Sub(Reg a, Reg b) { return _mm256_sub_ps(a, b); }
  static Reg Mul(Reg a, Reg b) { return _mm256_mul_ps(a, b); }
  static Reg Div(Reg a, Reg b) { return _mm256_div_ps(a, b); }
  static Reg Min(Reg a, Reg b) { return _mm256_min_ps(a, b); }
  static Reg Max(Reg a, Reg b) { return _mm256_max_ps(a, b); }
  static Reg Abs(Reg a) { return _mm256_andnot_ps(_mm256_set1_ps(-0.0f), a); }
  static Reg Fmadd(Reg a, Reg b, Reg c) { return _mm256_fmadd_ps(a, b, c); }
  static Reg Fnmsub(Reg a, Reg b, Reg c) { return _mm256_fnmsub_ps(a, b, c); }
  static Mask Less(Reg a, Reg b) { return _mm256_cmp_ps(a, b, _CMP_LT_OQ); }
  static Mask Greater(Reg a, Reg b) { return _mm256_cmp_ps(a, b, _CMP_GT_OQ); }
  static Reg Select(Mask mask, Reg if_set, Reg otherwise) {
    return _mm256_blendv_ps(otherwise, if_set, mask);
  }
  // 2^n's bits: n's low 9 bits, which `shifted` holds at the bottom of its mantissa, moved into
  // the exponent field and biased; ExpOfNegative's clamp keeps n in [-126, 128], where 128
  // spells infinity.
  static Reg TimesPowerOfTwo(Reg p, Reg /*n*/, Reg shifted) {
    const __m256i exponent = _mm256_slli_epi32(_mm256_castps_si256(shifted), 23);
    return _mm256_mul_ps(
        p, _mm256_castsi256_ps(_mm256_add_epi32(exponent, _mm256_set1_epi32(127 << 23))));
  }
};

}  // namespace avx2
}  // namespace ortsparse::kernels
