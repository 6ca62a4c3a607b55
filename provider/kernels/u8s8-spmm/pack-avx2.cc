// AVX2 panel packer: the portable one, for 32-row panels of 8-row vectors.
#include "kernels/u8s8-spmm/pack-portable.h"
#include "kernels/u8s8-spmm/spmm.h"

namespace ortsparse::kernels {

void PackQuadPanelAvx2(const uint8_t* x, size_t x_stride, size_t rows, size_t k, bool flip_sign,
                       uint8_t* panel) {
  PackQuadPanelPortable<kAvx2QuadPanelRows, 8>(x, x_stride, rows, k, flip_sign, panel);
}

}  // namespace ortsparse::kernels
