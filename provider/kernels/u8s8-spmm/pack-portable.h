// The panel packer without vector instructions, shared by the families whose packing is not worth
// a vector path (AVX2 without VNNI, scalar). Included by one file per family, compiled with its
// flags; internal linkage keeps the copies apart at link time.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>

namespace ortsparse::kernels {
namespace {

template <size_t kPanelRows, size_t kVectorRows>
void PackQuadPanelPortable(const uint8_t* x, size_t x_stride, size_t rows, size_t k,
                           bool flip_sign, uint8_t* panel) {
  const uint8_t flip = flip_sign ? 0x80 : 0x00;
  const size_t quads = (k + 3) / 4;
  const size_t packed_rows =
      std::min(kPanelRows, (rows + kVectorRows - 1) / kVectorRows * kVectorRows);
  for (size_t q = 0; q < quads; ++q) {
    for (size_t r = 0; r < packed_rows; ++r) {
      for (size_t j = 0; j < 4; ++j) {
        const size_t feature = 4 * q + j;
        const bool present = r < rows && feature < k;
        panel[(q * kPanelRows + r) * 4 + j] =
            present ? static_cast<uint8_t>(x[r * x_stride + feature] ^ flip) : 0;
      }
    }
  }
}

}  // namespace
}  // namespace ortsparse::kernels
