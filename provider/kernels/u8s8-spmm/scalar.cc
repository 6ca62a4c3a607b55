// Portable INT8 kernels: the reference structure, 8-row tiles.
#include <cstring>

#include "kernels/u8s8-spmm/pack-portable.h"
#include "kernels/u8s8-spmm/spmm.h"

namespace ortsparse::kernels {

void PackQuadPanelScalar(const uint8_t* x, size_t x_stride, size_t rows, size_t k,
                         bool flip_sign, uint8_t* panel) {
  PackQuadPanelPortable<kScalarQuadPanelRows, kScalarQuadPanelRows>(x, x_stride, rows, k, flip_sign, panel);
}

void QuadTileScalar(const uint8_t* base, const QuadWeights& weights, size_t group_begin,
                    size_t group_end, int32_t* acc) {
  for (size_t g = group_begin; g < group_end; ++g) {
    int32_t sum[kScalarQuadPanelRows] = {};
    for (int32_t i = weights.group_offsets[g]; i < weights.group_offsets[g + 1]; ++i) {
      int8_t w[4];
      std::memcpy(w, &weights.values[i], 4);
      const uint8_t* quad = base + weights.input_offsets[i];
      for (size_t r = 0; r < kScalarQuadPanelRows; ++r) {
        for (size_t j = 0; j < 4; ++j) sum[r] += int32_t{quad[4 * r + j]} * w[j];
      }
    }
    std::memcpy(acc + (g - group_begin) * kScalarQuadPanelRows, sum, sizeof(sum));
  }
}

}  // namespace ortsparse::kernels
