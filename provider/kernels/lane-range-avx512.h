// The lane mask both AVX-512 plane packers (f32-spconv, u8s8-spconv) load row segments under.
#pragma once

#include <immintrin.h>

#include <algorithm>
#include <cstdint>

namespace ortsparse::kernels {

// Lanes l of [0, 16) with begin <= l < end (both clamped to [0, 16]).
inline __mmask16 LaneRange(int64_t begin, int64_t end) {
  const int64_t lo = std::clamp<int64_t>(begin, 0, 16);
  const int64_t hi = std::clamp<int64_t>(end, lo, 16);
  return static_cast<__mmask16>(((1u << hi) - 1) & ~((1u << lo) - 1));
}

}  // namespace ortsparse::kernels
