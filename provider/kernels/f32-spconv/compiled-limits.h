// Where SparseConv runs compiled code and how that code blocks output channels: choices of the
// provider that the rewriter's cost model and packer must make alike, so the nanobind module
// exports them to Python (ortsparse.isa.compiled_conv_limits) instead of Python restating them.
#pragma once

#include <cstddef>

namespace ortsparse::kernels::compiled_limits {

// Channels per block at most: their sums fill zmm0-27, the input vectors zmm28-31.
inline constexpr size_t kMaxBlockChannels = 28;
// Past this many stored weights (a few bytes of code each) the tile kernels serve instead.
inline constexpr size_t kMaxCompiledWeights = size_t{1} << 20;
// Images with fewer tiles of grid positions than this keep to the tile kernels.
inline constexpr size_t kMinCompiledTiles = 6;
// Layers whose tile kernels finish Y themselves are compiled only when a block of channels reads
// each input vector for at least this many weights, on average.
inline constexpr double kMinFinishingReuse = 4.0;

}  // namespace ortsparse::kernels::compiled_limits
