// DepthwiseRows written once over a float vector (simd-avx2.h's F32x8, simd-avx512.h's F32x16),
// finishing each vector of sums (bias, activation) in registers on its way to the output.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <type_traits>
#include <utility>

#include "kernels/activations/epilogue-simd.h"
#include "kernels/f32-dwconv/dwconv.h"

namespace ortsparse::kernels {
// Internal linkage: each ISA's instantiation stays in the file compiled with its flags.
namespace {

// Rows [first, first + kRows) of a strip, each a vector of columns at a time: the rows' sums are
// independent FMA chains, which keep the pipeline full where one row's vectors alone (PP-LCNet's
// rows are 7-56 wide: one to four vectors) waited on each FMA's latency, tap after tap.
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

// Calls sum_rows(first, count) over rows [0, rows) in groups of kMostRows (4 or 8), then 4, 2
// and 1, the group's size a std::integral_constant: the kernels' row counts are compile-time
// constants.
template <size_t kMostRows = 4, typename SumRows>
void InGroupsOfRows(size_t rows, SumRows&& sum_rows) {
  static_assert(kMostRows == 4 || kMostRows == 8);
  size_t r = 0;
  for (; r + kMostRows <= rows; r += kMostRows) {
    sum_rows(r, std::integral_constant<size_t, kMostRows>{});
  }
  if constexpr (kMostRows == 8) {
    if (r + 4 <= rows) {
      sum_rows(r, std::integral_constant<size_t, 4>{});
      r += 4;
    }
  }
  if (r + 2 <= rows) {
    sum_rows(r, std::integral_constant<size_t, 2>{});
    r += 2;
  }
  if (r < rows) sum_rows(r, std::integral_constant<size_t, 1>{});
}

template <class V>
struct DepthwiseRowsBody {
  template <Activation kActivation, ResidualMode kResidual>
  static void Run(const DepthwiseRows& s, const Epilogue& epilogue) {
    const ActivationParamsOf<V> params = BroadcastParamsOf<V>(epilogue);
    InGroupsOfRows(s.rows, [&](size_t first, auto rows) {
      SumAndFinishRows<V, kActivation, decltype(rows)::value>(s, first, params);
    });
  }
};

// One vector of a row's inputs at stride 1 or 2 from `row`: the lanes whose input columns,
// counted from `column`, lie in [0, in_width) and belong to the first out_lanes outputs; the
// others are zero and read nothing, even outside the row.
template <class V, size_t kStride>
struct StridedLoad {
  typename V::Lanes lanes[kStride];
  int64_t column;

  static StridedLoad From(int64_t first_column, size_t out_lanes, int64_t in_width) {
    constexpr int64_t kLanes = static_cast<int64_t>(V::kLanes);
    StridedLoad load;
    load.column = first_column;
    const int64_t end =
        std::min(in_width - first_column, static_cast<int64_t>(out_lanes * kStride));
    for (size_t half = 0; half < kStride; ++half) {
      const int64_t offset = static_cast<int64_t>(half) * kLanes;
      const int64_t begin = std::clamp<int64_t>(-first_column - offset, 0, kLanes);
      const int64_t stop = std::clamp<int64_t>(end - offset, 0, kLanes);
      load.lanes[half] =
          stop > begin ? V::LanesBetween(static_cast<size_t>(begin), static_cast<size_t>(stop))
                       : V::FirstLanes(0);
    }
    return load;
  }

  typename V::Reg operator()(const float* row) const {
    if constexpr (kStride == 1) {
      return V::LoadLanes(lanes[0], row + column);
    } else {
      return V::EvenLanes(V::LoadLanes(lanes[0], row + column),
                          V::LoadLanes(lanes[1], row + column + V::kLanes));
    }
  }
};

// DepthwiseRowsOfX's rows [first, first + kRows), as SumAndFinishRows; each tap column's lanes
// are the same for every row.
template <class V, Activation kActivation, size_t kStride, size_t kRows>
void SumAndFinishRowsOfX(const DepthwiseRowsOfX& s, size_t first,
                         const ActivationParamsOf<V>& params) {
  using Reg = typename V::Reg;
  constexpr size_t kLanes = V::kLanes;
  const Reg bias = V::Set1(s.bias);
  const int64_t in_width = static_cast<int64_t>(s.in_width);
  for (size_t j = 0; j < s.width; j += kLanes) {
    const size_t out_lanes = std::min(kLanes, s.width - j);
    StridedLoad<V, kStride> loads[kMaxDirectKernelWidth];
    for (size_t kj = 0; kj < s.kernel_width; ++kj) {
      loads[kj] =
          StridedLoad<V, kStride>::From(static_cast<int64_t>(j * kStride + kj * s.dilation_width) -
                                            static_cast<int64_t>(s.pad_left),
                                        out_lanes, in_width);
    }
    Reg acc[kRows];
    for (size_t i = 0; i < kRows; ++i) acc[i] = V::Zero();
    for (size_t ki = 0; ki < s.kernel_height; ++ki) {
      const float* const* rows = s.input_rows + first * s.stride_height + ki * s.dilation_height;
      for (size_t kj = 0; kj < s.kernel_width; ++kj) {
        const Reg weight = V::Set1(s.tap_weights[ki * s.kernel_width + kj]);
        for (size_t i = 0; i < kRows; ++i) {
          acc[i] = V::Fmadd(weight, loads[kj](rows[i * s.stride_height]), acc[i]);
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

// Calls f(std::integral_constant<size_t, i>) for i < kCount: unrolled, so that every index into
// an array of registers is a constant and the registers stay registers.
template <size_t... kIndices, typename F>
void ForEachIndex(std::index_sequence<kIndices...>, F&& f) {
  (f(std::integral_constant<size_t, kIndices>{}), ...);
}

// The same rows where the kernel height is a compile-time constant, the row stride equals the
// column stride and rows are not dilated: each input row's vector is loaded once per kernel
// column and multiplied into every output row that reads it. Loads, not FMAs, bound
// SumAndFinishRowsOfX: a 512-bit load at a column that is not a multiple of 16 spans two cache
// lines, which AMD Zen 5 serves at a fraction of its FMA rate; here a load serves up to
// kKernelHeight / kStride FMAs.
template <class V, Activation kActivation, size_t kStride, size_t kKernelHeight, size_t kRows>
void SumAndFinishRowsReusingInputs(const DepthwiseRowsOfX& s, size_t first,
                                   const ActivationParamsOf<V>& params) {
  using Reg = typename V::Reg;
  constexpr size_t kLanes = V::kLanes;
  constexpr size_t kInputRows = (kRows - 1) * kStride + kKernelHeight;
  const Reg bias = V::Set1(s.bias);
  const int64_t in_width = static_cast<int64_t>(s.in_width);
  const float* const* rows = s.input_rows + first * kStride;
  for (size_t j = 0; j < s.width; j += kLanes) {
    const size_t out_lanes = std::min(kLanes, s.width - j);
    Reg acc[kRows];
    for (size_t i = 0; i < kRows; ++i) acc[i] = V::Zero();
    for (size_t kj = 0; kj < s.kernel_width; ++kj) {
      const StridedLoad<V, kStride> load = StridedLoad<V, kStride>::From(
          static_cast<int64_t>(j * kStride + kj * s.dilation_width) -
              static_cast<int64_t>(s.pad_left),
          out_lanes, in_width);
      Reg weights[kKernelHeight];
      for (size_t ki = 0; ki < kKernelHeight; ++ki) {
        weights[ki] = V::Set1(s.tap_weights[ki * s.kernel_width + kj]);
      }
      ForEachIndex(std::make_index_sequence<kInputRows>{}, [&](auto input_row) {
        constexpr size_t kInputRow = decltype(input_row)::value;
        const Reg x = load(rows[kInputRow]);
        ForEachIndex(std::make_index_sequence<kKernelHeight>{}, [&](auto kernel_row) {
          // Output row r reads input row r * kStride + kernel_row.
          constexpr size_t kKernelRow = decltype(kernel_row)::value;
          constexpr size_t kSpan = kInputRow - kKernelRow;
          if constexpr (kInputRow >= kKernelRow && kSpan % kStride == 0 &&
                        kSpan / kStride < kRows) {
            acc[kSpan / kStride] = V::Fmadd(weights[kKernelRow], x, acc[kSpan / kStride]);
          }
        });
      });
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
    if (s.stride_width == 1) {
      RunStrided<kActivation, 1>(s, epilogue);
    } else {
      RunStrided<kActivation, 2>(s, epilogue);
    }
  }

  template <Activation kActivation, size_t kStride>
  static void RunStrided(const DepthwiseRowsOfX& s, const Epilogue& epilogue) {
    const ActivationParamsOf<V> params = BroadcastParamsOf<V>(epilogue);
    if (s.stride_height == kStride && s.dilation_height == 1) {
      if (s.kernel_height == 3) return RunReusingInputs<kActivation, kStride, 3>(s, params);
      if (s.kernel_height == 5) return RunReusingInputs<kActivation, kStride, 5>(s, params);
    }
    InGroupsOfRows(s.rows, [&](size_t first, auto rows) {
      SumAndFinishRowsOfX<V, kActivation, kStride, decltype(rows)::value>(s, first, params);
    });
  }

  template <Activation kActivation, size_t kStride, size_t kKernelHeight>
  static void RunReusingInputs(const DepthwiseRowsOfX& s, const ActivationParamsOf<V>& params) {
    // 8 rows of sums in flight, AVX2 too: there a few registers spill, and still 4 rows ran
    // slower.
    InGroupsOfRows<8>(s.rows, [&](size_t first, auto rows) {
      SumAndFinishRowsReusingInputs<V, kActivation, kStride, kKernelHeight, decltype(rows)::value>(
          s, first, params);
    });
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
