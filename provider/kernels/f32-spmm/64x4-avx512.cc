// block4 tile kernels for AVX-512: four output channels share each panel load, up to 64 rows.
#include "kernels/f32-spmm/simd-avx512.h"
#include "kernels/f32-spmm/spmm.h"
#include "kernels/f32-spmm/tiles-simd.h"

namespace ortsparse::kernels {

// 32 registers hold every tile height's 4 x 4 accumulators at once.
template <typename Rows, size_t kRows, bool kAccumulate>
void Spmm64x4Avx512(const float* base, const TileSegments<typename Rows::Index>& weights,
                    size_t segment_begin, size_t segment_end, float* acc) {
  SpmmBlock4Tile<avx512::F32x16, kAvx512PanelRows, /*kMaxVectorsAtOnce=*/4, Rows, kRows,
                 kAccumulate>(base, weights, segment_begin, segment_end, acc);
}

ORTSPARSE_INSTANTIATE_TILE_KERNEL(Spmm64x4Avx512, kAvx512PanelRows, 16)

}  // namespace ortsparse::kernels
