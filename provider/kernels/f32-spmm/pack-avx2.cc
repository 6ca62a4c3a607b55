// Packs rows of X into a K-major panel for the AVX2 tile kernels, 8x8 blocks at a time.
#include <immintrin.h>

#include <algorithm>

#include "kernels/f32-spmm/spmm.h"
#include "kernels/f32-spmm/simd-avx2.h"

namespace ortsparse::kernels {

void PackPanelAvx2(const float* x, size_t x_stride, size_t rows, size_t k_begin, size_t k_end,
                   float* panel) {
  for (size_t r0 = 0; r0 < rows; r0 += 8) {
    const size_t block_rows = std::min<size_t>(8, rows - r0);
    for (size_t k0 = k_begin; k0 < k_end; k0 += 8) {
      const size_t block_cols = std::min<size_t>(8, k_end - k0);
      const __m256i col_mask = FirstLanesMask(block_cols);
      __m256 block[8];
      for (size_t r = 0; r < 8; ++r) {
        block[r] = r < block_rows ? _mm256_maskload_ps(x + (r0 + r) * x_stride + k0, col_mask)
                                  : _mm256_setzero_ps();
      }
      Transpose8x8(block);
      for (size_t c = 0; c < block_cols; ++c) {
        _mm256_store_ps(panel + (k0 + c) * kAvx2PanelRows + r0, block[c]);
      }
    }
  }
}

}  // namespace ortsparse::kernels
