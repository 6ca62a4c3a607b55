// The CSR row kernel, written once over a float vector's operations and compiled in each ISA's
// files with their flags (spmv-avx2.cc, spmv-avx512.cc); spmm.h has its contract.
//
// V is the ISA's float vector (simd-avx2.h, simd-avx512.h) with: Gather(x, indices),
// x[indices[l]] for kLanes 16-bit indices; GatherFirst(x, indices, count), the same in the first
// count lanes (count <= kLanes) and 0 in the others, reading no index past them; Sum(v) of its
// lanes.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>

#include "kernels/f32-spmm/spmm.h"

namespace ortsparse::kernels {
// Internal linkage: each ISA's instantiation stays in the file compiled with its flags.
namespace {

template <class V>
void SpmvCsr(const float* x, const SparseWeights& weights, size_t group_begin, size_t group_end,
             float* out) {
  constexpr size_t kLanes = V::kLanes;
  const float* values = weights.values;
  const uint16_t* indices = weights.input_indices;
  for (size_t g = group_begin; g < group_end; ++g) {
    size_t i = static_cast<uint32_t>(weights.group_offsets[g]);
    const size_t end = static_cast<uint32_t>(weights.group_offsets[g + 1]);
    // Two accumulators so that consecutive gathers do not wait on each other's FMA.
    typename V::Reg acc0 = V::Zero();
    typename V::Reg acc1 = V::Zero();
    for (; i + 2 * kLanes <= end; i += 2 * kLanes) {
      acc0 = V::Fmadd(V::Load(values + i), V::Gather(x, indices + i), acc0);
      acc1 = V::Fmadd(V::Load(values + i + kLanes), V::Gather(x, indices + i + kLanes), acc1);
    }
    for (; i < end; i += kLanes) {
      const size_t count = std::min(end - i, kLanes);
      acc0 = V::Fmadd(V::LoadLanes(V::FirstLanes(count), values + i),
                      V::GatherFirst(x, indices + i, count), acc0);
    }
    out[g - group_begin] = V::Sum(V::Add(acc0, acc1));
  }
}

}  // namespace
}  // namespace ortsparse::kernels
