// Portable INT8 kernels: the reference structure, 8-row panels of [quad][row][4 bytes].
#include <cstring>

#include "kernels/u8s8-spmm/spmm.h"

namespace ortsparse::kernels {

void PackQuadPanelScalar(const uint8_t* x, size_t x_stride, size_t rows, size_t k,
                         bool flip_sign, uint8_t* panel) {
  const uint8_t flip = flip_sign ? 0x80 : 0x00;
  const size_t quads = (k + 3) / 4;
  for (size_t q = 0; q < quads; ++q) {
    for (size_t r = 0; r < kScalarQuadPanelRows; ++r) {
      for (size_t j = 0; j < 4; ++j) {
        const size_t feature = 4 * q + j;
        const bool present = r < rows && feature < k;
        panel[(q * kScalarQuadPanelRows + r) * 4 + j] =
            present ? static_cast<uint8_t>(x[r * x_stride + feature] ^ flip) : 0;
      }
    }
  }
}

void QuadTileScalar(const uint8_t* panel, const QuadWeights& weights, size_t group_begin,
                    size_t group_end, int32_t* acc) {
  for (size_t g = group_begin; g < group_end; ++g) {
    int32_t sum[kScalarQuadPanelRows] = {};
    for (int32_t i = weights.group_offsets[g]; i < weights.group_offsets[g + 1]; ++i) {
      int8_t w[4];
      std::memcpy(w, &weights.values[i], 4);
      const uint8_t* quad = panel + static_cast<size_t>(weights.quad_indices[i]) *
                                        kScalarQuadPanelRows * 4;
      for (size_t r = 0; r < kScalarQuadPanelRows; ++r) {
        for (size_t j = 0; j < 4; ++j) sum[r] += int32_t{quad[4 * r + j]} * w[j];
      }
    }
    std::memcpy(acc + (g - group_begin) * kScalarQuadPanelRows, sum, sizeof(sum));
  }
}

}  // namespace ortsparse::kernels
