// Panels for SparseConv: the tile kernels' K-major panels (see f32-spmm/spmm.h) taken from one NCHW
// image, with output pixels as rows and kernel taps k = (c * kH + i) * kW + j as input features.
// This is im2col a tile at a time: only one panel of it exists per tile, never the whole matrix.
#pragma once

#include <cstddef>

namespace ortsparse::kernels {

// The most rows a panel may have (the widest ISA family's tile).
inline constexpr size_t kMaxConvPanelRows = 64;

struct ConvGeometry {
  size_t in_height, in_width;
  size_t out_height, out_width;
  size_t kernel_height, kernel_width;
  size_t stride_height, stride_width;
  size_t dilation_height, dilation_width;
  size_t pad_top, pad_left;
};

// Writes panel[k * panel_rows + r] for k in [k_begin, k_end) and r < panel_rows: what tap k sees
// of `image` (C x H x W) for output pixel pixel_begin + r, 0 in the padding and for r >= rows.
// rows <= panel_rows <= kMaxConvPanelRows. The ISA variants differ in how they copy a run of
// input columns: with masked vector loads instead of the C library's copies and fills, which cost
// more in calls than in bytes on runs of a dozen columns.
using PackConvPanelFn = void (*)(const float* image, const ConvGeometry& geometry,
                                 size_t pixel_begin, size_t rows, size_t k_begin, size_t k_end,
                                 size_t panel_rows, float* panel);

void PackConvPanelAvx512(const float* image, const ConvGeometry& geometry, size_t pixel_begin,
                         size_t rows, size_t k_begin, size_t k_end, size_t panel_rows,
                         float* panel);
void PackConvPanelAvx2(const float* image, const ConvGeometry& geometry, size_t pixel_begin,
                       size_t rows, size_t k_begin, size_t k_end, size_t panel_rows, float* panel);
void PackConvPanelScalar(const float* image, const ConvGeometry& geometry, size_t pixel_begin,
                         size_t rows, size_t k_begin, size_t k_end, size_t panel_rows,
                         float* panel);

// The same for 1x1 kernels with stride 1 and no padding, where tap k is channel k and output pixel
// p is input pixel p: each panel row is a run of the image's channel k, copied as it is (whole
// panel rows, which the C library copies at memory speed in every family).
void PackPointwisePanel(const float* image, size_t pixels, size_t pixel_begin, size_t rows,
                        size_t k_begin, size_t k_end, size_t panel_rows, float* panel);

}  // namespace ortsparse::kernels
