// block4 tile kernels for AVX2: four output channels share each panel load, up to 32 rows.
#include "kernels/f32-spmm/simd-avx2.h"
#include "kernels/f32-spmm/spmm.h"
#include "kernels/f32-spmm/tiles-simd.h"

namespace ortsparse::kernels {

// 16 registers: a 4 x 3 tile (with 3 inputs and 1 weight) is the largest that fits, so the
// 4-vector variant runs as two 2-vector halves.
template <typename Rows, size_t kRows, bool kAccumulate>
void Spmm32x4Avx2(const float* base, const TileSegments<typename Rows::Index>& weights,
                  size_t segment_begin, size_t segment_end, float* acc) {
  SpmmBlock4Tile<avx2::F32x8, kAvx2PanelRows, /*kMaxVectorsAtOnce=*/3, Rows, kRows, kAccumulate>(
      base, weights, segment_begin, segment_end, acc);
}

ORTSPARSE_INSTANTIATE_TILE_KERNEL(Spmm32x4Avx2, kAvx2PanelRows, 8)

}  // namespace ortsparse::kernels
