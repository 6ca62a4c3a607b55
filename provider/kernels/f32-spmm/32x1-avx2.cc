// CSR tile kernels for AVX2: one output channel at a time, up to 32 rows (4 vectors).
#include "kernels/f32-spmm/simd-avx2.h"
#include "kernels/f32-spmm/spmm.h"
#include "kernels/f32-spmm/tiles-simd.h"

namespace ortsparse::kernels {

template <typename Rows, size_t kRows, bool kAccumulate>
void Spmm32x1Avx2(const float* base, const TileSegments<typename Rows::Index>& weights,
                  size_t segment_begin, size_t segment_end, float* acc) {
  SpmmCsrTile<avx2::F32x8, kAvx2PanelRows, Rows, kRows, kAccumulate>(base, weights, segment_begin,
                                                                     segment_end, acc);
}

ORTSPARSE_INSTANTIATE_TILE_KERNEL(Spmm32x1Avx2, kAvx2PanelRows, 8)

}  // namespace ortsparse::kernels
