// FP32 sparse-times-dense microkernels: Y = X · W with W sparse and constant.
//
// W is stored as the SparseGemm contract's groups (docs/ops.md): group g owns one output channel
// (csr) or four consecutive ones (block4) and lists the input indices k of its stored blocks.
//
// Two kinds of microkernel:
//  * tile kernels work on a panel, a slice of X transposed so that panel[k * panel_rows + r] holds
//    X[row0 + r, k]. For each stored weight they broadcast it and multiply it by a contiguous run
//    of rows, which is what makes unstructured sparsity vectorizable (XNNPACK's NCHW SpMM idea).
//    They read the weights as segments (below) and accumulate channel-major:
//    acc[c * panel_rows + r] for output channel c.
//  * row kernels handle one row of X at a time by gathering its inputs, from the contract's groups;
//    they win when there are too few rows to fill a vector of the tile kernels.
//
// Microkernels are pure arithmetic: no bias, no activation, no bounds checks (the operator
// validates the weights once, at session creation).
#pragma once

#include <cstddef>
#include <cstdint>

#include "kernels/activations/epilogue.h"

namespace ortsparse::kernels {

// The contract's layout, read by the row kernels, with indices narrowed to 16 bits (the operator
// uses row kernels only for K <= 65536): weight bytes bound the row kernels.
struct SparseWeights {
  const float* values;            // block_size floats per stored block
  const int32_t* group_offsets;   // num_groups + 1 offsets into input_indices
  const uint16_t* input_indices;  // k of each stored block, strictly increasing within a group
};

// The tile kernels' layout: a segment is the part of one group that falls in one block of input
// features, small enough for its inputs to stay in L1 while every channel's segment for that
// block runs. The operator orders segments so that consecutive ones have equal lengths, which keeps
// the loop exits predictable. Each stored block names the run of rows it multiplies by an Index;
// the tile kernels read that run at base + index * scale, where the addressing (below) says which.
template <typename Index>
struct TileSegments {
  const float* values;              // block_size floats per stored block
  const Index* input_indices;       // where each stored block's rows are
  const int32_t* segment_offsets;   // first stored block of each segment, then the end
  const int32_t* segment_channels;  // first output channel of each segment's group, relative to acc
};

// Panels: the index is k - (first k of the block), in 16 bits because memory traffic, not
// arithmetic, bounds the CSR kernels; the base is the block's first panel row.
template <size_t kPanelRows>
struct PanelRows {
  using Index = uint16_t;
  static constexpr size_t kScale = kPanelRows;
};
using WeightSegments = TileSegments<uint16_t>;

// Direct convolution (f32-spconv): the index is the offset, in floats, of the stored weight's
// input run in the input planes, from the tile's first output position.
struct InputOffsets {
  using Index = int32_t;
  static constexpr size_t kScale = 1;
};
using OffsetSegments = TileSegments<int32_t>;

// Transposes rows [0, rows) and columns [k_begin, k_end) of row-major x (row stride x_stride)
// into panel, zero-filling panel rows from `rows` up to the next multiple of the vector width.
using PackPanelKernel = void(const float* x, size_t x_stride, size_t rows, size_t k_begin,
                             size_t k_end, float* panel);
using PackPanelFn = PackPanelKernel*;
PackPanelKernel PackPanelAvx512, PackPanelAvx2, PackPanelScalar;

// For each segment in [segment_begin, segment_end), writes (or, accumulating, adds) its products
// to acc[c * panel_rows + r] for every channel c of its group (block4's padding channels included).
// Rows r of stored block i are read at base + input_indices[i] * scale + r.
template <typename Index>
using TileFn = void (*)(const float* base, const TileSegments<Index>& weights,
                        size_t segment_begin, size_t segment_end, float* acc);
using SpmmTileFn = TileFn<uint16_t>;
using DirectConvTileFn = TileFn<int32_t>;

// Same contract for one row x (length K): writes out[c] for every channel of the groups.
using SpmvRowKernel = void(const float* x, const SparseWeights& weights, size_t group_begin,
                           size_t group_end, float* out);
using SpmvRowFn = SpmvRowKernel*;
SpmvRowKernel SpmvCsrAvx512, SpmvBlock4Avx512, SpmvCsrAvx2, SpmvBlock4Avx2, SpmvCsrScalar,
    SpmvBlock4Scalar;

// Tile kernels are instantiated for panels of 1 to 4 vectors of rows: a tile of `rows` rows uses
// the variant with ceil(rows / vector width) vectors, so a short last tile costs no full-width
// work. Each also comes in an accumulating flavour, for the second and later blocks of input
// features.
inline constexpr size_t kMaxTileVectors = 4;

// Explicit instantiations of a vector family's tile kernel template, for both addressings and the
// four tile heights (1 to 4 vectors of vector_rows rows), each overwriting and accumulating.
#define ORTSPARSE_INSTANTIATE_TILE(kernel, addressing, rows)                                \
  template void kernel<addressing, rows, false>(                                            \
      const float*, const TileSegments<addressing::Index>&, size_t, size_t, float*);        \
  template void kernel<addressing, rows, true>(                                             \
      const float*, const TileSegments<addressing::Index>&, size_t, size_t, float*);
#define ORTSPARSE_INSTANTIATE_TILE_HEIGHTS(kernel, addressing, vector_rows)                 \
  ORTSPARSE_INSTANTIATE_TILE(kernel, addressing, 1 * (vector_rows))                         \
  ORTSPARSE_INSTANTIATE_TILE(kernel, addressing, 2 * (vector_rows))                         \
  ORTSPARSE_INSTANTIATE_TILE(kernel, addressing, 3 * (vector_rows))                         \
  ORTSPARSE_INSTANTIATE_TILE(kernel, addressing, 4 * (vector_rows))
#define ORTSPARSE_INSTANTIATE_TILE_KERNEL(kernel, panel_rows, vector_rows)                  \
  ORTSPARSE_INSTANTIATE_TILE_HEIGHTS(kernel, PanelRows<panel_rows>, vector_rows)            \
  ORTSPARSE_INSTANTIATE_TILE_HEIGHTS(kernel, InputOffsets, vector_rows)

// Where a finishing tile kernel writes a SparseConv's output, when Y's channels are the grid's
// runs (a wide grid as wide as Y): channel c's rows go to y + c * channel_stride, finished with
// bias, residual (same layout) and activation as the output stage would, the last vector's rows
// under last_lanes. Pointers are at the chunk's first channel and the tile's first row.
struct FinishedChannels {
  float* y;
  const float* residual;  // or null
  const float* bias;      // or null
  size_t channel_stride;
  uint16_t last_lanes;
  Epilogue epilogue;
};

// AVX-512: 16 floats per vector, panels of 64 rows.
inline constexpr size_t kAvx512PanelRows = 64;
template <typename Rows, size_t kRows, bool kAccumulate>
void Spmm64x1Avx512(const float* base, const TileSegments<typename Rows::Index>& weights,
                   size_t segment_begin, size_t segment_end, float* acc);
template <typename Rows, size_t kRows, bool kAccumulate>
void Spmm64x4Avx512(const float* base, const TileSegments<typename Rows::Index>& weights,
                      size_t segment_begin, size_t segment_end, float* acc);
// The direct CSR tile kernel for the last block of input features, finishing Y itself instead of
// leaving the sums (plus acc's, kAccumulate) in acc for the output stage. Instantiated for the
// epilogues that need no more than a max (kNone, kRelu), with every residual mode.
template <size_t kRows, bool kAccumulate, Activation kActivation, ResidualMode kResidual>
void Spmm64x1FinishAvx512(const float* base, const OffsetSegments& weights, size_t segment_begin,
                         size_t segment_end, const float* acc, const FinishedChannels& out);

// AVX2: 8 floats per vector, panels of 32 rows.
inline constexpr size_t kAvx2PanelRows = 32;
template <typename Rows, size_t kRows, bool kAccumulate>
void Spmm32x1Avx2(const float* base, const TileSegments<typename Rows::Index>& weights,
                 size_t segment_begin, size_t segment_end, float* acc);
template <typename Rows, size_t kRows, bool kAccumulate>
void Spmm32x4Avx2(const float* base, const TileSegments<typename Rows::Index>& weights,
                    size_t segment_begin, size_t segment_end, float* acc);

// Portable fallback: panels of 8 rows, one tile variant.
inline constexpr size_t kScalarPanelRows = 8;
template <typename Rows, bool kAccumulate>
void SpmmCsrScalar(const float* base, const TileSegments<typename Rows::Index>& weights,
                   size_t segment_begin, size_t segment_end, float* acc);
template <typename Rows, bool kAccumulate>
void SpmmBlock4Scalar(const float* base, const TileSegments<typename Rows::Index>& weights,
                      size_t segment_begin, size_t segment_end, float* acc);

}  // namespace ortsparse::kernels
