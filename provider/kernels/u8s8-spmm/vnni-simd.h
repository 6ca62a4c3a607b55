// The VNNI tile kernels' loop, written once over the int32 vector of the two vpdpbusd encodings
// and compiled in each family's file with its flags: 32x1c4-avxvnni.cc (VEX, 256 bits) and
// 64x1c4-avx512vnni.cc (EVEX, 512 bits). spmm.h has the tiles' contract.
//
// V supplies: Reg; Broadcast(int32 value); Dot(sums, quads, weights), the sums plus each lane's
// dot product of the four bytes at `quads` (unaligned) with the four of `weights`; Add(a, b);
// Store(int32 pointer, sums), aligned.
#pragma once

#include <cstddef>
#include <cstdint>

#include "kernels/u8s8-spmm/spmm.h"

namespace ortsparse::kernels {
// Internal linkage: each family's instantiations stay in the file compiled with its flags.
namespace {

// Computes each group's sums in registers, starting from first_sums(g), and hands them to
// finish(g, sums[kVectors]).
template <class V, size_t kVectors, typename FirstSums, typename Finish>
void ForEachGroupSum(const uint8_t* base, const QuadWeights& weights, size_t group_begin,
                     size_t group_end, FirstSums&& first_sums, Finish&& finish) {
  using Reg = typename V::Reg;
  constexpr size_t kVectorBytes = sizeof(Reg);
  // Each quad adds into the same kVectors sums, a dependency chain of vpdpbusd latencies; short
  // tiles spread their quads over several sets of sums so that four are in flight.
  constexpr size_t kChains = (4 + kVectors - 1) / kVectors;
  for (size_t g = group_begin; g < group_end; ++g) {
    Reg sum[kChains][kVectors];
    for (size_t v = 0; v < kVectors; ++v) sum[0][v] = first_sums(g);
    for (size_t c = 1; c < kChains; ++c) {
      for (size_t v = 0; v < kVectors; ++v) sum[c][v] = V::Broadcast(0);
    }
    auto accumulate = [&](size_t chain, int32_t i) {
      const Reg w = V::Broadcast(weights.values[i]);
      const uint8_t* quad = base + weights.input_offsets[i];
      for (size_t v = 0; v < kVectors; ++v) {
        sum[chain][v] = V::Dot(sum[chain][v], quad + kVectorBytes * v, w);
      }
    };
    int32_t i = weights.group_offsets[g];
    const int32_t end = weights.group_offsets[g + 1];
    for (; i + static_cast<int32_t>(kChains) <= end; i += kChains) {
#pragma GCC unroll 4
      for (size_t c = 0; c < kChains; ++c) accumulate(c, i + static_cast<int32_t>(c));
    }
#pragma GCC unroll 4
    for (size_t c = 0; c + 1 < kChains; ++c) {
      if (i + static_cast<int32_t>(c) < end) accumulate(c, i + static_cast<int32_t>(c));
    }
    Reg total[kVectors];
    for (size_t v = 0; v < kVectors; ++v) {
      total[v] = sum[0][v];
      for (size_t c = 1; c < kChains; ++c) total[v] = V::Add(total[v], sum[c][v]);
    }
    finish(g, total);
  }
}

// The tile kernel on panels of kPanelRows rows: each group's sums into its rows of acc.
template <class V, size_t kPanelRows, size_t kVectors>
void VnniTile(const uint8_t* base, const QuadWeights& weights, size_t group_begin, size_t group_end,
              int32_t* acc) {
  constexpr size_t kLanes = sizeof(typename V::Reg) / sizeof(int32_t);
  ForEachGroupSum<V, kVectors>(
      base, weights, group_begin, group_end, [](size_t) { return V::Broadcast(0); },
      [&](size_t g, const typename V::Reg* total) {
        int32_t* out = acc + (g - group_begin) * kPanelRows;
        for (size_t v = 0; v < kVectors; ++v) V::Store(out + kLanes * v, total[v]);
      });
}

}  // namespace
}  // namespace ortsparse::kernels
