// The tile path both operators run on: the ISA family's microkernels, the weights laid out as
// segments for the tile kernels, and the steps of one tile task (pack a panel once, multiply it by
// one chunk of output channels).
#pragma once

#include <emmintrin.h>

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "kernels/activations/epilogue.h"
#include "kernels/f32-dwconv/dwconv.h"
#include "kernels/f32-spconv/compiled.h"
#include "kernels/f32-spconv/spconv.h"
#include "kernels/f32-spmm/spmm.h"
#include "operators/packed_weights.h"

namespace ortsparse {

// The microkernels of one ISA family, and the panel geometry they share.
struct SpmmMicrokernels {
  size_t panel_rows;   // rows of X per panel (the tile height)
  size_t vector_rows;  // tile variant v (0-based) handles up to (v + 1) * vector_rows rows
  size_t row_kernel_max_rows;  // inputs with at most this many rows use the row kernels
  kernels::PackPanelFn pack_panel;
  kernels::SpmmTileFn csr_tiles[kernels::kMaxTileVectors];
  kernels::SpmmTileFn csr_tiles_accumulating[kernels::kMaxTileVectors];
  kernels::SpmmTileFn block4_tiles[kernels::kMaxTileVectors];
  kernels::SpmmTileFn block4_tiles_accumulating[kernels::kMaxTileVectors];
  // The same tile kernels reading a direct convolution's input planes in place.
  kernels::DirectConvTileFn direct_csr_tiles[kernels::kMaxTileVectors];
  kernels::DirectConvTileFn direct_csr_tiles_accumulating[kernels::kMaxTileVectors];
  kernels::DirectConvTileFn direct_block4_tiles[kernels::kMaxTileVectors];
  kernels::DirectConvTileFn direct_block4_tiles_accumulating[kernels::kMaxTileVectors];
  kernels::SpmvRowFn csr_row;
  kernels::SpmvRowFn block4_row;
  kernels::StoreTransposedFn store_transposed;
  kernels::StoreRowFn store_row;
  kernels::StoreChannelRowsFn store_channel_rows;
  kernels::PackInputPlanesFn pack_input_planes;
  // SparseConv's depthwise prologue, on packed planes and on X itself.
  kernels::DepthwiseRowsFn depthwise_rows;
  kernels::DepthwiseRowsOfXFn depthwise_rows_of_x;
  // Compiles a direct convolution's weights for one planes layout; null where the family has no
  // compiled kernels.
  kernels::CompileConvFn compile_conv;
};

// The family ORTSPARSE_ISA and the CPU allow (throws std::invalid_argument for an unknown name).
const SpmmMicrokernels& SelectMicrokernels();

inline constexpr size_t kMaxPanelRows = kernels::kAvx512PanelRows;
// Output channels per call of the output stage: it transposes 16x16 blocks.
inline constexpr size_t kStoreChannels = 16;
// A SparseGemm task's share of packing a panel: this many of its input features.
inline constexpr size_t kPackTaskColumns = 128;
// Widest chunk of output channels: a chunk's accumulators, on the stack and hot in cache from
// task to task, stay within 32 KB.
inline constexpr size_t kMaxChunkChannels = 128;

// The tile kernels' copy of the weights, as segments (see kernels::TileSegments). Output
// channels are split into chunks, the unit of parallel work, and input features into blocks whose
// panel rows fit in L1. A pass is one chunk's segments for one block, ordered by length; the first
// block's pass has a segment for every group of the chunk, even an empty one, so that it can
// overwrite the accumulators instead of clearing them first, and so has the last block's, so
// that the direct convolution's finishing kernels (DirectCsrFinishersFor) write every channel of
// Y. Segment channels count from the chunk's first channel.
struct TileWeights {
  size_t chunk_channels = 0;  // a multiple of 16, the output stage's block
  size_t chunks = 0;
  size_t k_block_rows = 0;
  size_t k_blocks = 0;
  std::vector<float> values;
  std::vector<uint16_t> input_indices;
  std::vector<int32_t> segment_offsets;
  std::vector<int32_t> segment_channels;
  std::vector<size_t> pass_offsets;  // first segment of pass (chunk * k_blocks + block), then end

  kernels::WeightSegments View() const {
    return {values.data(), input_indices.data(), segment_offsets.data(), segment_channels.data()};
  }
  size_t ChunkBegin(size_t chunk) const { return chunk * chunk_channels; }
  // Channels of chunk `chunk` of n output channels: the last chunk may have fewer.
  size_t ChunkChannels(size_t chunk, size_t n) const {
    return std::min(n, ChunkBegin(chunk + 1)) - ChunkBegin(chunk);
  }
};

// features_per_run: how many input features share one run of rows in L1 on average (1 for a
// panel; a direct convolution's taps overlap), which widens the blocks of input features.
TileWeights BuildTileWeights(const PackedWeights& packed, const SparseMatrixAttributes& matrix,
                             const SpmmMicrokernels& microkernels, size_t features_per_run = 1);

// The tile kernels for the weights' format: one for the first block of input features, which
// overwrites the accumulators, and one for the others, which add to them; indexed by tile variant.
template <typename Index>
struct TileKernels {
  const kernels::TileFn<Index>* first_block;
  const kernels::TileFn<Index>* later_blocks;
};

TileKernels<uint16_t> PanelTileKernelsFor(const SpmmMicrokernels& microkernels,
                                          size_t block_size);
TileKernels<int32_t> DirectTileKernelsFor(const SpmmMicrokernels& microkernels,
                                          size_t block_size);

// The direct CSR tile kernels that finish Y in the last block of input features
// (kernels::Spmm64x1FinishAvx512), indexed by tile variant; null where the family or the epilogue
// has none, and the output stage finishes instead.
using DirectFinishFn = void (*)(const float* base, const kernels::OffsetSegments& weights,
                                size_t segment_begin, size_t segment_end, const float* acc,
                                const kernels::FinishedChannels& out);
const DirectFinishFn* DirectCsrFinishersFor(const SpmmMicrokernels& microkernels,
                                            bool accumulate, kernels::Activation activation,
                                            kernels::ResidualMode residual);

// What the tile tasks read is packed by the tasks that need it (a SparseGemm tile's panel, a
// SparseConv image's input planes): whichever of them arrive first claim its parts, and each waits
// until the whole is there. One ParallelFor per call instead of a packing one and a computing one
// saves a dispatch of ORT's pool, and a wake-up of its workers when they have gone to sleep
// between runs.
struct PackProgress {
  std::atomic<size_t> next_part{0};
  std::atomic<size_t> packed_parts{0};
};

// pack_items(begin, end) packs items [begin, end) of `items`, at most items_per_part at a time.
template <typename PackItems>
void PackOnce(PackProgress& progress, size_t items, size_t items_per_part,
              PackItems&& pack_items) {
  const size_t parts = CeilDiv(items, items_per_part);
  for (size_t part;
       (part = progress.next_part.fetch_add(1, std::memory_order_relaxed)) < parts;) {
    const size_t begin = part * items_per_part;
    pack_items(begin, std::min(items, begin + items_per_part));
    progress.packed_parts.fetch_add(1, std::memory_order_release);
  }
  // Others still pack their last parts, a microsecond or two of work each.
  while (progress.packed_parts.load(std::memory_order_acquire) < parts) _mm_pause();
}

// Multiplies a tile of `rows` rows by one chunk of output channels, leaving the chunk's sums
// channel-major in acc (kMaxChunkChannels * kMaxPanelRows floats, 64-byte aligned). Block b of
// input features reads its rows from base + b * block_stride: a panel's blocks follow each other,
// while a direct convolution's offsets already count from one base.
// Blocks from end_block on are left to the caller.
template <typename Index>
void MultiplyTile(const SpmmMicrokernels& microkernels, const TileKernels<Index>& tile_kernels,
                  const TileWeights& tile_weights, const kernels::TileSegments<Index>& segments,
                  const float* base, size_t block_stride, size_t rows, size_t chunk, float* acc,
                  size_t end_block = SIZE_MAX) {
  const size_t variant = CeilDiv(rows, microkernels.vector_rows) - 1;
  for (size_t block = 0; block < std::min(end_block, tile_weights.k_blocks); ++block) {
    const size_t pass = chunk * tile_weights.k_blocks + block;
    const kernels::TileFn<Index> kernel =
        block == 0 ? tile_kernels.first_block[variant] : tile_kernels.later_blocks[variant];
    kernel(base + block * block_stride, segments, tile_weights.pass_offsets[pass],
           tile_weights.pass_offsets[pass + 1], acc);
  }
}

}  // namespace ortsparse
