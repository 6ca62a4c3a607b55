// DepthwiseRows written once over a float vector (simd-avx2.h's F32x8, simd-avx512.h's F32x16),
// finishing each vector of sums (bias, activation) in registers on its way to the output.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>

#include "kernels/activations/epilogue-simd.h"
#include "kernels/f32-dwconv/dwconv.h"

namespace ortsparse::kernels {
// Internal linkage: each ISA's instantiation stays in the file compiled with its flags.
namespace {

// Rows [first, first + kRows) of a strip, each a vector of columns at a time: the rows' sums are
// independent FMA chains, which keep the pipeline full where one row's single vector, waiting on
// each FMA's latency tap after tap, ran 5-7x slower (PP-LCNet's rows are 7-56 wide).
template <class V, Activation kActivation, size_t kRows>
void SumAndFinishRows(const DepthwiseRows& s, size_t first, const ActivationParamsOf<V>& params) {
  using Reg = typename V::Reg;
  constexpr size_t kLanes = V::kLanes;
  const Reg bias = V::Set1(s.bias);
  for (size_t j = 0; j < s.width; j += kLanes) {
    // The last vector is partial: its loads read no further than its stores write, so the last
    // row stays inside the planes.
    const VectorFinisher<V, kActivation, ResidualMode::kNone> finish{
        bias, V::FirstLanes(std::min(kLanes, s.width - j)), params};
    const float* input = s.planes + first * s.plane_width + j;
    Reg acc[kRows];
    for (size_t i = 0; i < kRows; ++i) acc[i] = V::Zero();
    for (size_t t = 0; t < s.taps; ++t) {
      const Reg weight = V::Set1(s.tap_weights[t]);
      const float* tap_input = input + s.tap_offsets[t];
      for (size_t i = 0; i < kRows; ++i) {
        acc[i] =
            V::Fmadd(weight, V::LoadLanes(finish.lanes, tap_input + i * s.plane_width), acc[i]);
      }
    }
    for (size_t i = 0; i < kRows; ++i) {
      finish(acc[i], nullptr, s.out + (first + i) * s.out_stride + j);
    }
  }
}

template <class V>
struct DepthwiseRowsBody {
  template <Activation kActivation, ResidualMode kResidual>
  static void Run(const DepthwiseRows& s, const Epilogue& epilogue) {
    const ActivationParamsOf<V> params = BroadcastParamsOf<V>(epilogue);
    size_t r = 0;
    for (; r + 4 <= s.rows; r += 4) SumAndFinishRows<V, kActivation, 4>(s, r, params);
    if (r + 2 <= s.rows) {
      SumAndFinishRows<V, kActivation, 2>(s, r, params);
      r += 2;
    }
    if (r < s.rows) SumAndFinishRows<V, kActivation, 1>(s, r, params);
  }
};

// DepthwiseRowsOfX's rows [first, first + kRows), as SumAndFinishRows: each tap column's lanes
// are those whose input column lies inside X, the same for every row.
template <class V, Activation kActivation, size_t kRows>
void SumAndFinishRowsOfX(const DepthwiseRowsOfX& s, size_t first,
                         const ActivationParamsOf<V>& params) {
  using Reg = typename V::Reg;
  constexpr size_t kLanes = V::kLanes;
  const Reg bias = V::Set1(s.bias);
  const int64_t in_width = static_cast<int64_t>(s.in_width);
  for (size_t j = 0; j < s.width; j += kLanes) {
    const size_t out_lanes = std::min(kLanes, s.width - j);
    typename V::Lanes lanes[kMaxDirectKernelWidth];
    for (size_t kj = 0; kj < s.kernel_width; ++kj) {
      const int64_t start =
          static_cast<int64_t>(j + kj * s.dilation_width) - static_cast<int64_t>(s.pad_left);
      const int64_t begin = std::max<int64_t>(0, -start);
      const int64_t end = std::min<int64_t>(static_cast<int64_t>(out_lanes), in_width - start);
      lanes[kj] = end > begin
                      ? V::LanesBetween(static_cast<size_t>(begin), static_cast<size_t>(end))
                      : V::FirstLanes(0);
    }
    const int64_t column = static_cast<int64_t>(j) - static_cast<int64_t>(s.pad_left);
    Reg acc[kRows];
    for (size_t i = 0; i < kRows; ++i) acc[i] = V::Zero();
    for (size_t ki = 0; ki < s.kernel_height; ++ki) {
      const float* const* rows = s.input_rows + first + ki * s.dilation_height;
      for (size_t kj = 0; kj < s.kernel_width; ++kj) {
        const Reg weight = V::Set1(s.tap_weights[ki * s.kernel_width + kj]);
        // Masked-off lanes are never accessed, even where their columns lie outside the row.
        const int64_t offset = column + static_cast<int64_t>(kj * s.dilation_width);
        for (size_t i = 0; i < kRows; ++i) {
          acc[i] = V::Fmadd(weight, V::LoadLanes(lanes[kj], rows[i] + offset), acc[i]);
        }
      }
    }
    const VectorFinisher<V, kActivation, ResidualMode::kNone> finish{bias, V::FirstLanes(out_lanes),
                                                                     params};
    for (size_t i = 0; i < kRows; ++i) {
      finish(acc[i], nullptr, s.out + (first + i) * s.out_stride + j);
    }
  }
}

template <class V>
struct DepthwiseRowsOfXBody {
  template <Activation kActivation, ResidualMode kResidual>
  static void Run(const DepthwiseRowsOfX& s, const Epilogue& epilogue) {
    const ActivationParamsOf<V> params = BroadcastParamsOf<V>(epilogue);
    size_t r = 0;
    for (; r + 4 <= s.rows; r += 4) SumAndFinishRowsOfX<V, kActivation, 4>(s, r, params);
    if (r + 2 <= s.rows) {
      SumAndFinishRowsOfX<V, kActivation, 2>(s, r, params);
      r += 2;
    }
    if (r < s.rows) SumAndFinishRowsOfX<V, kActivation, 1>(s, r, params);
  }
};

template <class V>
void DepthwiseRowsOfXWith(const DepthwiseRowsOfX& rows, const Epilogue& epilogue) {
  const OutputBlock no_residual = {rows.out, nullptr, nullptr, rows.out_stride};
  WithEpilogue<DepthwiseRowsOfXBody<V>>(no_residual, epilogue, rows, epilogue);
}

template <class V>
void DepthwiseRowsWith(const DepthwiseRows& rows, const Epilogue& epilogue) {
  const OutputBlock no_residual = {rows.out, nullptr, nullptr, rows.out_stride};
  WithEpilogue<DepthwiseRowsBody<V>>(no_residual, epilogue, rows, epilogue);
}

}  // namespace
}  // namespace ortsparse::kernels
