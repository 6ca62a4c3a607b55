// The FP32 panel packer and tile kernels, written once over the ISA's float vector V (simd-avx2.h,
// simd-avx512.h) and compiled in each ISA's files with their flags: the packer in pack-avx2.cc and
// pack-avx512.cc, CSR tiles in 32x1-avx2.cc and 64x1-avx512.cc, block4 tiles in 32x4-avx2.cc and
// 64x4-avx512.cc (spmm.h has their contracts).
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>

#include "kernels/f32-spmm/spmm.h"

namespace ortsparse::kernels {
// Internal linkage: each ISA's instantiations stay in the files compiled with its flags.
namespace {

// The panel packer: kLanes x kLanes blocks of X loaded under the columns present (rows past X's
// are zero) and transposed in registers.
template <class V, size_t kPanelRows>
void PackPanelOf(const float* x, size_t x_stride, size_t rows, size_t k_begin, size_t k_end,
                 float* panel) {
  constexpr size_t kLanes = V::kLanes;
  for (size_t r0 = 0; r0 < rows; r0 += kLanes) {
    const size_t block_rows = std::min(kLanes, rows - r0);
    for (size_t k0 = k_begin; k0 < k_end; k0 += kLanes) {
      const size_t block_columns = std::min(kLanes, k_end - k0);
      const typename V::Lanes columns = V::FirstLanes(block_columns);
      typename V::Reg block[kLanes];
      for (size_t r = 0; r < kLanes; ++r) {
        block[r] = r < block_rows ? V::LoadLanes(columns, x + (r0 + r) * x_stride + k0) : V::Zero();
      }
      V::Transpose(block);
      for (size_t c = 0; c < block_columns; ++c) {
        V::StoreAligned(panel + (k0 + c) * kPanelRows + r0, block[c]);
      }
    }
  }
}

// Computes each CSR segment's products in registers and hands them to
// finish(segment's channel, sums[kRows / kLanes]); before each segment, prefetch(the next
// segment's channel) may start fetching what finishing that one will touch.
template <class V, typename Rows, size_t kRows, typename Finish, typename Prefetch>
void ForEachSegmentSum(const float* base, const TileSegments<typename Rows::Index>& weights,
                       size_t segment_begin, size_t segment_end, Finish&& finish,
                       Prefetch&& prefetch) {
  using Reg = typename V::Reg;
  constexpr size_t kVectors = kRows / V::kLanes;
  // Every stored weight adds into the same kVectors accumulators, so a segment's FMAs form
  // dependency chains; narrow tiles split their weights over several accumulator sets. Four FMAs
  // in flight suffice: panel loads, not FMAs, bound this kernel, and more sets cost more to set up
  // and sum per segment.
  constexpr size_t kChains = (4 + kVectors - 1) / kVectors;
  const float* values = weights.values;
  const typename Rows::Index* indices = weights.input_indices;

  for (size_t s = segment_begin; s < segment_end; ++s) {
    if (s + 1 < segment_end) prefetch(static_cast<uint32_t>(weights.segment_channels[s + 1]));
    Reg sum[kChains][kVectors];
    for (size_t c = 0; c < kChains; ++c) {
      for (size_t v = 0; v < kVectors; ++v) sum[c][v] = V::Zero();
    }
    auto accumulate = [&](size_t chain, size_t i) {
      const Reg w = V::Set1(values[i]);
      const float* row = base + static_cast<size_t>(indices[i]) * Rows::kScale;
      for (size_t v = 0; v < kVectors; ++v) {
        sum[chain][v] = V::Fmadd(V::Load(row + V::kLanes * v), w, sum[chain][v]);
      }
    };

    size_t i = static_cast<uint32_t>(weights.segment_offsets[s]);
    const size_t end = static_cast<uint32_t>(weights.segment_offsets[s + 1]);
    for (; i + kChains <= end; i += kChains) {
#pragma GCC unroll 4
      for (size_t c = 0; c < kChains; ++c) accumulate(c, i + c);
    }
#pragma GCC unroll 4
    for (size_t c = 0; c + 1 < kChains; ++c) {
      if (i + c < end) accumulate(c, i + c);
    }

    // Earlier chains' sums join last, so that no FMA waits for them.
    Reg total[kVectors];
    for (size_t v = 0; v < kVectors; ++v) {
      total[v] = sum[0][v];
      for (size_t c = 1; c < kChains; ++c) total[v] = V::Add(total[v], sum[c][v]);
    }
    finish(static_cast<uint32_t>(weights.segment_channels[s]), total);
  }
}

// The CSR tile kernel on panels of kPanelRows rows: each segment's sums go to its channel's rows
// of acc, which is the task's own and stays in L1 (nothing to prefetch).
template <class V, size_t kPanelRows, typename Rows, size_t kRows, bool kAccumulate>
void SpmmCsrTile(const float* base, const TileSegments<typename Rows::Index>& weights,
                 size_t segment_begin, size_t segment_end, float* acc) {
  ForEachSegmentSum<V, Rows, kRows>(
      base, weights, segment_begin, segment_end,
      [&](size_t channel, const typename V::Reg* total) {
        float* out = acc + channel * kPanelRows;
        for (size_t v = 0; v < kRows / V::kLanes; ++v) {
          typename V::Reg sum = total[v];
          if (kAccumulate) sum = V::Add(sum, V::LoadAligned(out + V::kLanes * v));
          V::StoreAligned(out + V::kLanes * v, sum);
        }
      },
      [](size_t) {});
}

// The block4 tile kernel on panels of kPanelRows rows: four output channels share each panel
// load. Its 4 x kVectors accumulators, the loaded inputs and a weight must fit the ISA's
// registers: a tile of more than kMaxVectorsAtOnce vectors runs as two halves.
template <class V, size_t kPanelRows, size_t kMaxVectorsAtOnce, typename Rows, size_t kRows,
          bool kAccumulate>
void SpmmBlock4Tile(const float* base, const TileSegments<typename Rows::Index>& weights,
                    size_t segment_begin, size_t segment_end, float* acc) {
  using Reg = typename V::Reg;
  constexpr size_t kVectors = kRows / V::kLanes;
  constexpr size_t kHalves = kVectors > kMaxVectorsAtOnce ? 2 : 1;
  constexpr size_t kHalfVectors = kVectors / kHalves;
  // A single-vector tile needs a second accumulator set to keep enough FMAs in flight.
  constexpr size_t kChains = kHalfVectors >= 2 ? 1 : 2;
  const float* values = weights.values;
  const typename Rows::Index* indices = weights.input_indices;

  for (size_t s = segment_begin; s < segment_end; ++s) {
    float* out = acc + static_cast<uint32_t>(weights.segment_channels[s]) * kPanelRows;
    const size_t begin = static_cast<uint32_t>(weights.segment_offsets[s]);
    const size_t end = static_cast<uint32_t>(weights.segment_offsets[s + 1]);
    for (size_t h = 0; h < kHalves; ++h) {
      const float* half_base = base + h * V::kLanes * kHalfVectors;
      Reg sum[kChains][4][kHalfVectors];
      for (size_t c = 0; c < kChains; ++c) {
        for (size_t j = 0; j < 4; ++j) {
          for (size_t v = 0; v < kHalfVectors; ++v) sum[c][j][v] = V::Zero();
        }
      }
      auto accumulate = [&](size_t chain, size_t i) {
        const float* row = half_base + static_cast<size_t>(indices[i]) * Rows::kScale;
        Reg x[kHalfVectors];
        for (size_t v = 0; v < kHalfVectors; ++v) x[v] = V::Load(row + V::kLanes * v);
        for (size_t j = 0; j < 4; ++j) {
          const Reg w = V::Set1(values[4 * i + j]);
          for (size_t v = 0; v < kHalfVectors; ++v) {
            sum[chain][j][v] = V::Fmadd(x[v], w, sum[chain][j][v]);
          }
        }
      };
      size_t i = begin;
      for (; i + kChains <= end; i += kChains) {
#pragma GCC unroll 2
        for (size_t c = 0; c < kChains; ++c) accumulate(c, i + c);
      }
      if (i < end) accumulate(0, i);

      for (size_t j = 0; j < 4; ++j) {
        for (size_t v = 0; v < kHalfVectors; ++v) {
          float* channel_out = out + j * kPanelRows + (h * kHalfVectors + v) * V::kLanes;
          Reg total = sum[0][j][v];
          for (size_t c = 1; c < kChains; ++c) total = V::Add(total, sum[c][j][v]);
          if (kAccumulate) total = V::Add(total, V::LoadAligned(channel_out));
          V::StoreAligned(channel_out, total);
        }
      }
    }
  }
}

}  // namespace
}  // namespace ortsparse::kernels
