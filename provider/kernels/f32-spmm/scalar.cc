// Portable kernels for CPUs without AVX2: the reference structure, 8-row panels.
#include <algorithm>

#include "kernels/f32-spmm/spmm.h"

namespace ortsparse::kernels {

// Both addressings, each overwriting and accumulating: one tile height only.
#define ORTSPARSE_INSTANTIATE_SCALAR_TILE_FOR(kernel, addressing)                               \
  template void kernel<addressing, false>(const float*, const TileSegments<addressing::Index>&, \
                                          size_t, size_t, float*);                              \
  template void kernel<addressing, true>(const float*, const TileSegments<addressing::Index>&,  \
                                         size_t, size_t, float*);
#define ORTSPARSE_INSTANTIATE_SCALAR_TILE(kernel)                            \
  ORTSPARSE_INSTANTIATE_SCALAR_TILE_FOR(kernel, PanelRows<kScalarPanelRows>) \
  ORTSPARSE_INSTANTIATE_SCALAR_TILE_FOR(kernel, InputOffsets)

void PackPanelScalar(const float* x, size_t x_stride, size_t rows, size_t k_begin, size_t k_end,
                     float* panel) {
  for (size_t k = k_begin; k < k_end; ++k) {
    float* panel_row = panel + k * kScalarPanelRows;
    for (size_t r = 0; r < kScalarPanelRows; ++r) {
      panel_row[r] = r < rows ? x[r * x_stride + k] : 0.0f;
    }
  }
}

template <typename Rows, bool kAccumulate>
void SpmmCsrScalar(const float* base, const TileSegments<typename Rows::Index>& weights,
                   size_t segment_begin, size_t segment_end, float* acc) {
  for (size_t s = segment_begin; s < segment_end; ++s) {
    float* out = acc + static_cast<size_t>(weights.segment_channels[s]) * kScalarPanelRows;
    float sum[kScalarPanelRows] = {};
    if (kAccumulate) std::copy(out, out + kScalarPanelRows, sum);
    for (int32_t i = weights.segment_offsets[s]; i < weights.segment_offsets[s + 1]; ++i) {
      const float w = weights.values[i];
      const float* row = base + static_cast<size_t>(weights.input_indices[i]) * Rows::kScale;
      for (size_t r = 0; r < kScalarPanelRows; ++r) sum[r] += w * row[r];
    }
    std::copy(sum, sum + kScalarPanelRows, out);
  }
}

ORTSPARSE_INSTANTIATE_SCALAR_TILE(SpmmCsrScalar)

template <typename Rows, bool kAccumulate>
void SpmmBlock4Scalar(const float* base, const TileSegments<typename Rows::Index>& weights,
                      size_t segment_begin, size_t segment_end, float* acc) {
  for (size_t s = segment_begin; s < segment_end; ++s) {
    float* out = acc + static_cast<size_t>(weights.segment_channels[s]) * kScalarPanelRows;
    float sum[4][kScalarPanelRows] = {};
    if (kAccumulate) {
      for (size_t j = 0; j < 4; ++j) {
        std::copy(out + j * kScalarPanelRows, out + (j + 1) * kScalarPanelRows, sum[j]);
      }
    }
    for (int32_t i = weights.segment_offsets[s]; i < weights.segment_offsets[s + 1]; ++i) {
      const float* row = base + static_cast<size_t>(weights.input_indices[i]) * Rows::kScale;
      for (size_t j = 0; j < 4; ++j) {
        const float w = weights.values[4 * static_cast<size_t>(i) + j];
        for (size_t r = 0; r < kScalarPanelRows; ++r) sum[j][r] += w * row[r];
      }
    }
    for (size_t j = 0; j < 4; ++j) {
      std::copy(sum[j], sum[j] + kScalarPanelRows, out + j * kScalarPanelRows);
    }
  }
}

ORTSPARSE_INSTANTIATE_SCALAR_TILE(SpmmBlock4Scalar)

void SpmvCsrScalar(const float* x, const SparseWeights& weights, size_t group_begin,
                   size_t group_end, float* out) {
  for (size_t g = group_begin; g < group_end; ++g) {
    float acc = 0.0f;
    for (int32_t i = weights.group_offsets[g]; i < weights.group_offsets[g + 1]; ++i) {
      acc += weights.values[i] * x[weights.input_indices[i]];
    }
    out[g - group_begin] = acc;
  }
}

void SpmvBlock4Scalar(const float* x, const SparseWeights& weights, size_t group_begin,
                      size_t group_end, float* out) {
  for (size_t g = group_begin; g < group_end; ++g) {
    float acc[4] = {};
    for (int32_t i = weights.group_offsets[g]; i < weights.group_offsets[g + 1]; ++i) {
      const float input = x[weights.input_indices[i]];
      for (size_t j = 0; j < 4; ++j) {
        acc[j] += weights.values[4 * static_cast<size_t>(i) + j] * input;
      }
    }
    std::copy(acc, acc + 4, out + 4 * (g - group_begin));
  }
}

}  // namespace ortsparse::kernels
