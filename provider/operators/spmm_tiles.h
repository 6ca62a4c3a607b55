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
#include "kernels/f32-conv-pack/conv-pack.h"
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
  kernels::SpmvRowFn csr_row;
  kernels::SpmvRowFn block4_row;
  kernels::StoreTransposedFn store_transposed;
  kernels::StoreRowFn store_row;
  kernels::StoreChannelRowsFn store_channel_rows;
  kernels::PackConvPanelFn pack_conv_panel;
};

// The family ORTSPARSE_ISA and the CPU allow (throws std::invalid_argument for an unknown name).
const SpmmMicrokernels& SelectMicrokernels();

inline constexpr size_t kMaxPanelRows = kernels::kAvx512PanelRows;
// Output channels per call of the output stage: it transposes 16x16 blocks.
inline constexpr size_t kStoreChannels = 16;
// Panel-packing share: this many input features of one panel.
inline constexpr size_t kPackTaskColumns = 128;
// Widest chunk of output channels: a chunk's accumulators, on the stack and hot in cache from
// task to task, stay within 32 KB.
inline constexpr size_t kMaxChunkChannels = 128;

// The tile kernels' copy of the weights, as segments (see kernels::WeightSegments). Output
// channels are split into chunks, the unit of parallel work, and input features into blocks whose
// panel rows fit in L1. A pass is one chunk's segments for one block, ordered by length; the first
// block's pass has a segment for every group of the chunk, even an empty one, so that it can
// overwrite the accumulators instead of clearing them first. Segment channels count from the
// chunk's first channel.
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
};

TileWeights BuildTileWeights(const PackedWeights& packed, const SparseMatrixAttributes& matrix,
                             const SpmmMicrokernels& microkernels);

// The tile kernels for the weights' format: one for the first block of input features, which
// overwrites the accumulators, and one for the others, which add to them; indexed by tile variant.
struct TileKernels {
  const kernels::SpmmTileFn* first_block;
  const kernels::SpmmTileFn* later_blocks;
};

TileKernels TileKernelsFor(const SpmmMicrokernels& microkernels, size_t block_size);

// A tile's panel is packed by the tasks that need it: whichever of them arrive first claim its
// chunks of input features, and each waits until the whole panel is there. One ParallelFor per
// call instead of a packing one and a computing one saves a dispatch of ORT's pool, and a wake-up
// of its workers when they have gone to sleep between runs.
struct PanelProgress {
  std::atomic<size_t> next_chunk{0};
  std::atomic<size_t> packed_chunks{0};
};

// pack_columns(k_begin, k_end) packs input features [k_begin, k_end) of the tile's panel.
template <typename PackColumns>
void PackPanelOnce(PanelProgress& progress, size_t k, PackColumns&& pack_columns) {
  const size_t chunks = CeilDiv(k, kPackTaskColumns);
  for (size_t chunk;
       (chunk = progress.next_chunk.fetch_add(1, std::memory_order_relaxed)) < chunks;) {
    const size_t k_begin = chunk * kPackTaskColumns;
    pack_columns(k_begin, std::min(k, k_begin + kPackTaskColumns));
    progress.packed_chunks.fetch_add(1, std::memory_order_release);
  }
  // Others still pack their last chunks, a microsecond or two of work each.
  while (progress.packed_chunks.load(std::memory_order_acquire) < chunks) _mm_pause();
}

// Multiplies a packed panel of `rows` rows by one chunk of output channels, leaving the chunk's
// sums channel-major in acc (kMaxChunkChannels * kMaxPanelRows floats, 64-byte aligned).
void MultiplyPanel(const SpmmMicrokernels& microkernels, const TileKernels& tile_kernels,
                   const TileWeights& tile_weights, const kernels::WeightSegments& segments,
                   const float* panel, size_t rows, size_t chunk, float* acc);

}  // namespace ortsparse
