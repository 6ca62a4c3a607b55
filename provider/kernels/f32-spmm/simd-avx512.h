// The AVX-512 files' float vector: F32x16, the operations the kernels written once over a vector
// type take (math-simd.h, epilogue-simd.h, tiles-simd.h, spmv-simd.h), and in-register helpers.
#pragma once

// GCC 12 flags the intrinsics' deliberately undefined temporaries as (maybe-)uninitialized
// wherever they are inlined (GCC bug 105593); the diagnostic state that counts is the one where
// the header is first read, so every AVX-512 file includes the intrinsics through this header,
// first.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#include <immintrin.h>
#pragma GCC diagnostic pop

#include <cstddef>

namespace ortsparse::kernels {

// Transposes the 16x16 matrix whose rows are v[0..15], in place: afterwards v[j][i] is the former
// v[i][j]. 64 shuffles: interleave floats, then pairs, then 128-bit lanes twice.
inline void Transpose16x16(__m512 v[16]) {
  __m512 t[16];
  for (int k = 0; k < 8; ++k) {
    t[2 * k] = _mm512_unpacklo_ps(v[2 * k], v[2 * k + 1]);
    t[2 * k + 1] = _mm512_unpackhi_ps(v[2 * k], v[2 * k + 1]);
  }
  // u[4k + j], 128-bit lane L, holds column 4L + j of rows 4k..4k+3.
  __m512 u[16];
  for (int k = 0; k < 4; ++k) {
    const __m512d a = _mm512_castps_pd(t[4 * k]);
    const __m512d b = _mm512_castps_pd(t[4 * k + 1]);
    const __m512d c = _mm512_castps_pd(t[4 * k + 2]);
    const __m512d d = _mm512_castps_pd(t[4 * k + 3]);
    u[4 * k + 0] = _mm512_castpd_ps(_mm512_unpacklo_pd(a, c));
    u[4 * k + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(a, c));
    u[4 * k + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(b, d));
    u[4 * k + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(b, d));
  }
  // Column 4L + j gathers lane L of u[j], u[4 + j], u[8 + j], u[12 + j]: a 4x4 transpose of lanes.
  for (int j = 0; j < 4; ++j) {
    const __m512 p0 = _mm512_shuffle_f32x4(u[j], u[4 + j], 0x88);
    const __m512 p1 = _mm512_shuffle_f32x4(u[j], u[4 + j], 0xDD);
    const __m512 q0 = _mm512_shuffle_f32x4(u[8 + j], u[12 + j], 0x88);
    const __m512 q1 = _mm512_shuffle_f32x4(u[8 + j], u[12 + j], 0xDD);
    v[j] = _mm512_shuffle_f32x4(p0, q0, 0x88);
    v[4 + j] = _mm512_shuffle_f32x4(p1, q1, 0x88);
    v[8 + j] = _mm512_shuffle_f32x4(p0, q0, 0xDD);
    v[12 + j] = _mm512_shuffle_f32x4(p1, q1, 0xDD);
  }
}

namespace avx512 {

struct F32x16 {
  using Reg = __m512;
  using Mask = __mmask16;
  static constexpr size_t kLanes = 16;
  static Reg Load(const float* p) { return _mm512_loadu_ps(p); }
  static Reg LoadAligned(const float* p) { return _mm512_load_ps(p); }
  static void StoreAligned(float* p, Reg v) { _mm512_store_ps(p, v); }
  // The first count (<= kLanes) lanes, for partial loads (zero in the other lanes) and stores.
  using Lanes = __mmask16;
  static Lanes FirstLanes(size_t count) { return static_cast<Lanes>((1u << count) - 1); }
  // Lanes [begin, end), begin <= end <= kLanes.
  static Lanes LanesBetween(size_t begin, size_t end) {
    return static_cast<Lanes>(FirstLanes(end) & ~FirstLanes(begin));
  }
  static Reg LoadLanes(Lanes lanes, const float* p) { return _mm512_maskz_loadu_ps(lanes, p); }
  static void StoreLanes(float* p, Lanes lanes, Reg v) { _mm512_mask_storeu_ps(p, lanes, v); }
  static void Transpose(Reg block[kLanes]) { Transpose16x16(block); }
  // Lanes 0, 2, ..., 30 of low and high one after the other.
  static Reg EvenLanes(Reg low, Reg high) {
    const __m512i evens =
        _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    return _mm512_permutex2var_ps(low, evens, high);
  }
  static Reg Set1(float value) { return _mm512_set1_ps(value); }
  static Reg Zero() { return _mm512_setzero_ps(); }
  static Reg Add(Reg a, Reg b) { return _mm512_add_ps(a, b); }
  static Reg Sub(Reg a, Reg b) { return _mm512_sub_ps(a, b); }
  static Reg Mul(Reg a, Reg b) { return _mm512_mul_ps(a, b); }
  static Reg Div(Reg a, Reg b) { return _mm512_div_ps(a, b); }
  static Reg Min(Reg a, Reg b) { return _mm512_min_ps(a, b); }
  static Reg Max(Reg a, Reg b) { return _mm512_max_ps(a, b); }
  static Reg Abs(Reg a) { return _mm512_abs_ps(a); }
  static Reg Fmadd(Reg a, Reg b, Reg c) { return _mm512_fmadd_ps(a, b, c); }
  static Reg Fnmsub(Reg a, Reg b, Reg c) { return _mm512_fnmsub_ps(a, b, c); }
  static Mask Less(Reg a, Reg b) { return _mm512_cmp_ps_mask(a, b, _CMP_LT_OQ); }
  static Mask Greater(Reg a, Reg b) { return _mm512_cmp_ps_mask(a, b, _CMP_GT_OQ); }
  static Reg Select(Mask mask, Reg if_set, Reg otherwise) {
    return _mm512_mask_blend_ps(mask, otherwise, if_set);
  }
  // vscalefps multiplies by 2^n itself.
  static Reg TimesPowerOfTwo(Reg p, Reg n, Reg /*shifted*/) { return _mm512_scalef_ps(p, n); }
};

}  // namespace avx512
}  // namespace ortsparse::kernels
