// DepthwiseTaps written once over a float vector (simd-avx2.h's F32x8, simd-avx512.h's F32x16).
#pragma once

#include <cstddef>
#include <cstdint>

#include "kernels/f32-dwconv/dwconv.h"

namespace ortsparse::kernels {
// Internal linkage: each ISA's instantiation stays in the file compiled with its flags.
namespace {

template <class V>
void DepthwiseTapsWith(const float* planes, const int32_t* tap_offsets, const float* tap_weights,
                       size_t taps, size_t positions, float* sums) {
  using Reg = typename V::Reg;
  constexpr size_t kLanes = V::kLanes;
  static_assert(kLanes <= kDepthwiseMaxLanes);
  // Four vectors of sums per pass over the taps: each tap's weight is broadcast once for them,
  // and four independent FMA chains keep the pipeline full.
  constexpr size_t kVectors = 4;
  const size_t end = (positions + kLanes - 1) / kLanes * kLanes;
  size_t p = 0;
  for (; p + kVectors * kLanes <= end; p += kVectors * kLanes) {
    Reg acc[kVectors];
    for (size_t v = 0; v < kVectors; ++v) acc[v] = V::Zero();
    for (size_t t = 0; t < taps; ++t) {
      const Reg weight = V::Set1(tap_weights[t]);
      const float* input = planes + p + tap_offsets[t];
      for (size_t v = 0; v < kVectors; ++v) {
        acc[v] = V::Fmadd(weight, V::Load(input + v * kLanes), acc[v]);
      }
    }
    for (size_t v = 0; v < kVectors; ++v) V::StoreAligned(sums + p + v * kLanes, acc[v]);
  }
  for (; p < end; p += kLanes) {
    Reg acc = V::Zero();
    for (size_t t = 0; t < taps; ++t) {
      acc = V::Fmadd(V::Set1(tap_weights[t]), V::Load(planes + p + tap_offsets[t]), acc);
    }
    V::StoreAligned(sums + p, acc);
  }
}

}  // namespace
}  // namespace ortsparse::kernels
