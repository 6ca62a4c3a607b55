// Packs rows of X into a K-major panel for the AVX-512 tile kernels, 16x16 blocks at a time.
#include "kernels/f32-spmm/simd-avx512.h"

#include <algorithm>

#include "kernels/f32-spmm/spmm.h"

namespace ortsparse::kernels {

void PackPanelAvx512(const float* x, size_t x_stride, size_t rows, size_t k_begin, size_t k_end,
                     float* panel) {
  for (size_t r0 = 0; r0 < rows; r0 += 16) {
    const size_t block_rows = std::min<size_t>(16, rows - r0);
    for (size_t k0 = k_begin; k0 < k_end; k0 += 16) {
      const size_t block_cols = std::min<size_t>(16, k_end - k0);
      const __mmask16 col_mask = static_cast<__mmask16>((1u << block_cols) - 1);
      __m512 block[16];
      for (size_t r = 0; r < 16; ++r) {
        block[r] = r < block_rows ? _mm512_maskz_loadu_ps(col_mask, x + (r0 + r) * x_stride + k0)
                                  : _mm512_setzero_ps();
      }
      Transpose16x16(block);
      for (size_t c = 0; c < block_cols; ++c) {
        _mm512_store_ps(panel + (k0 + c) * kAvx512PanelRows + r0, block[c]);
      }
    }
  }
}

}  // namespace ortsparse::kernels
