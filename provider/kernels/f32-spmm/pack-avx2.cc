// Packs rows of X into a K-major panel for the AVX2 tile kernels, 8x8 blocks at a time.
#include "kernels/f32-spmm/simd-avx2.h"
#include "kernels/f32-spmm/spmm.h"
#include "kernels/f32-spmm/tiles-simd.h"

namespace ortsparse::kernels {

void PackPanelAvx2(const float* x, size_t x_stride, size_t rows, size_t k_begin, size_t k_end,
                   float* panel) {
  PackPanelOf<avx2::F32x8, kAvx2PanelRows>(x, x_stride, rows, k_begin, k_end, panel);
}

}  // namespace ortsparse::kernels
