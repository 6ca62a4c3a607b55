// Packs rows of X into a K-major panel for the AVX-512 tile kernels, 16x16 blocks at a time.
#include "kernels/f32-spmm/simd-avx512.h"
#include "kernels/f32-spmm/spmm.h"
#include "kernels/f32-spmm/tiles-simd.h"

namespace ortsparse::kernels {

void PackPanelAvx512(const float* x, size_t x_stride, size_t rows, size_t k_begin, size_t k_end,
                     float* panel) {
  PackPanelOf<avx512::F32x16, kAvx512PanelRows>(x, x_stride, rows, k_begin, k_end, panel);
}

}  // namespace ortsparse::kernels
