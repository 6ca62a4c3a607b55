#include "operators/spmm_tiles.h"

#include "isa/cpu_features.h"

namespace ortsparse {
namespace {

static_assert(kernels::kAvx2PanelRows <= kMaxPanelRows &&
              kernels::kScalarPanelRows <= kMaxPanelRows);

// Tile-path chunks: about 8 per weight matrix, so that ORT's dynamic scheduling evens out the
// threads even with one tile, no narrower than this so that segment ordering stays effective.
constexpr size_t kChunksPerMatrix = 8;
constexpr size_t kMinChunkChannels = 64;
// Weight indices are 16 bits, counted from their block of input features.
constexpr size_t kMaxBlockRows = size_t{1} << 16;
// Blocks of input features trade L2 traffic for per-segment overhead (accumulator reload, loop
// setup); below this many stored weights per segment, on average, the overhead wins.
constexpr size_t kMinMeanSegmentLength = 8;
// A block's panel rows take two thirds of L1, the rest holding accumulators and weights; this much
// when the CPU does not report its L1 size.
constexpr size_t kDefaultL1PanelBytes = 32 * 1024;

using kernels::Spmm32x1Avx2;
using kernels::Spmm32x4Avx2;
using kernels::Spmm64x1Avx512;
using kernels::Spmm64x4Avx512;
using kernels::SpmmBlock4Scalar;
using kernels::SpmmCsrScalar;
using Avx512Panel = kernels::PanelRows<kernels::kAvx512PanelRows>;
using Avx2Panel = kernels::PanelRows<kernels::kAvx2PanelRows>;
using ScalarPanel = kernels::PanelRows<kernels::kScalarPanelRows>;
using Direct = kernels::InputOffsets;

// Row-kernel limits: the rows below which gathering each row beats one narrow tile, measured on
// 1024x1024 weights at 90% sparsity (a narrow tile costs about as much as that many rows).
const SpmmMicrokernels kAvx512Microkernels = {
    .panel_rows = kernels::kAvx512PanelRows,
    .vector_rows = 16,
    .row_kernel_max_rows = 2,
    .pack_panel = kernels::PackPanelAvx512,
    .csr_tiles = {Spmm64x1Avx512<Avx512Panel, 16, false>, Spmm64x1Avx512<Avx512Panel, 32, false>,
                  Spmm64x1Avx512<Avx512Panel, 48, false>, Spmm64x1Avx512<Avx512Panel, 64, false>},
    .csr_tiles_accumulating = {Spmm64x1Avx512<Avx512Panel, 16, true>,
                               Spmm64x1Avx512<Avx512Panel, 32, true>,
                               Spmm64x1Avx512<Avx512Panel, 48, true>,
                               Spmm64x1Avx512<Avx512Panel, 64, true>},
    .block4_tiles = {Spmm64x4Avx512<Avx512Panel, 16, false>, Spmm64x4Avx512<Avx512Panel, 32, false>,
                     Spmm64x4Avx512<Avx512Panel, 48, false>,
                     Spmm64x4Avx512<Avx512Panel, 64, false>},
    .block4_tiles_accumulating = {Spmm64x4Avx512<Avx512Panel, 16, true>,
                                  Spmm64x4Avx512<Avx512Panel, 32, true>,
                                  Spmm64x4Avx512<Avx512Panel, 48, true>,
                                  Spmm64x4Avx512<Avx512Panel, 64, true>},
    .direct_csr_tiles = {Spmm64x1Avx512<Direct, 16, false>, Spmm64x1Avx512<Direct, 32, false>,
                         Spmm64x1Avx512<Direct, 48, false>, Spmm64x1Avx512<Direct, 64, false>},
    .direct_csr_tiles_accumulating = {Spmm64x1Avx512<Direct, 16, true>,
                                      Spmm64x1Avx512<Direct, 32, true>,
                                      Spmm64x1Avx512<Direct, 48, true>,
                                      Spmm64x1Avx512<Direct, 64, true>},
    .direct_block4_tiles = {Spmm64x4Avx512<Direct, 16, false>, Spmm64x4Avx512<Direct, 32, false>,
                            Spmm64x4Avx512<Direct, 48, false>, Spmm64x4Avx512<Direct, 64, false>},
    .direct_block4_tiles_accumulating = {Spmm64x4Avx512<Direct, 16, true>,
                                         Spmm64x4Avx512<Direct, 32, true>,
                                         Spmm64x4Avx512<Direct, 48, true>,
                                         Spmm64x4Avx512<Direct, 64, true>},
    .csr_row = kernels::SpmvCsrAvx512,
    .block4_row = kernels::SpmvBlock4Avx512,
    .store_transposed = kernels::StoreTransposedAvx512,
    .store_row = kernels::StoreRowAvx512,
    .store_channel_rows = kernels::StoreChannelRowsAvx512,
    .pack_input_planes = kernels::PackInputPlanesAvx512,
    .depthwise_rows = kernels::DepthwiseRowsAvx512,
    .depthwise_rows_of_x = kernels::DepthwiseRowsOfXAvx512,
    .compile_conv = kernels::CompiledConv::CompileAvx512,
};

const SpmmMicrokernels kAvx2Microkernels = {
    .panel_rows = kernels::kAvx2PanelRows,
    .vector_rows = 8,
    .row_kernel_max_rows = 2,
    .pack_panel = kernels::PackPanelAvx2,
    .csr_tiles = {Spmm32x1Avx2<Avx2Panel, 8, false>, Spmm32x1Avx2<Avx2Panel, 16, false>,
                  Spmm32x1Avx2<Avx2Panel, 24, false>, Spmm32x1Avx2<Avx2Panel, 32, false>},
    .csr_tiles_accumulating = {Spmm32x1Avx2<Avx2Panel, 8, true>, Spmm32x1Avx2<Avx2Panel, 16, true>,
                               Spmm32x1Avx2<Avx2Panel, 24, true>,
                               Spmm32x1Avx2<Avx2Panel, 32, true>},
    .block4_tiles = {Spmm32x4Avx2<Avx2Panel, 8, false>, Spmm32x4Avx2<Avx2Panel, 16, false>,
                     Spmm32x4Avx2<Avx2Panel, 24, false>, Spmm32x4Avx2<Avx2Panel, 32, false>},
    .block4_tiles_accumulating = {Spmm32x4Avx2<Avx2Panel, 8, true>,
                                  Spmm32x4Avx2<Avx2Panel, 16, true>,
                                  Spmm32x4Avx2<Avx2Panel, 24, true>,
                                  Spmm32x4Avx2<Avx2Panel, 32, true>},
    .direct_csr_tiles = {Spmm32x1Avx2<Direct, 8, false>, Spmm32x1Avx2<Direct, 16, false>,
                         Spmm32x1Avx2<Direct, 24, false>, Spmm32x1Avx2<Direct, 32, false>},
    .direct_csr_tiles_accumulating = {Spmm32x1Avx2<Direct, 8, true>, Spmm32x1Avx2<Direct, 16, true>,
                                      Spmm32x1Avx2<Direct, 24, true>,
                                      Spmm32x1Avx2<Direct, 32, true>},
    .direct_block4_tiles = {Spmm32x4Avx2<Direct, 8, false>, Spmm32x4Avx2<Direct, 16, false>,
                            Spmm32x4Avx2<Direct, 24, false>, Spmm32x4Avx2<Direct, 32, false>},
    .direct_block4_tiles_accumulating = {Spmm32x4Avx2<Direct, 8, true>,
                                         Spmm32x4Avx2<Direct, 16, true>,
                                         Spmm32x4Avx2<Direct, 24, true>,
                                         Spmm32x4Avx2<Direct, 32, true>},
    .csr_row = kernels::SpmvCsrAvx2,
    .block4_row = kernels::SpmvBlock4Avx2,
    .store_transposed = kernels::StoreTransposedAvx2,
    .store_row = kernels::StoreRowAvx2,
    .store_channel_rows = kernels::StoreChannelRowsAvx2,
    .pack_input_planes = kernels::PackInputPlanesAvx2,
    .depthwise_rows = kernels::DepthwiseRowsAvx2,
    .depthwise_rows_of_x = kernels::DepthwiseRowsOfXAvx2,
    .compile_conv = nullptr,
};

const SpmmMicrokernels kScalarMicrokernels = {
    .panel_rows = kernels::kScalarPanelRows,
    .vector_rows = kernels::kScalarPanelRows,
    .row_kernel_max_rows = 7,
    .pack_panel = kernels::PackPanelScalar,
    .csr_tiles = {SpmmCsrScalar<ScalarPanel, false>},
    .csr_tiles_accumulating = {SpmmCsrScalar<ScalarPanel, true>},
    .block4_tiles = {SpmmBlock4Scalar<ScalarPanel, false>},
    .block4_tiles_accumulating = {SpmmBlock4Scalar<ScalarPanel, true>},
    .direct_csr_tiles = {SpmmCsrScalar<Direct, false>},
    .direct_csr_tiles_accumulating = {SpmmCsrScalar<Direct, true>},
    .direct_block4_tiles = {SpmmBlock4Scalar<Direct, false>},
    .direct_block4_tiles_accumulating = {SpmmBlock4Scalar<Direct, true>},
    .csr_row = kernels::SpmvCsrScalar,
    .block4_row = kernels::SpmvBlock4Scalar,
    .store_transposed = kernels::StoreTransposedScalar,
    .store_row = kernels::StoreRowScalar,
    .store_channel_rows = kernels::StoreChannelRowsScalar,
    .pack_input_planes = kernels::PackInputPlanesScalar,
    .depthwise_rows = kernels::DepthwiseRowsScalar,
    .depthwise_rows_of_x = kernels::DepthwiseRowsOfXScalar,
    .compile_conv = nullptr,
};

// How many blocks of input features the tile kernels take K in.
size_t CountKBlocks(const PackedWeights& packed, const SparseMatrixAttributes& matrix,
                    const SpmmMicrokernels& microkernels, size_t features_per_run) {
  const size_t k = static_cast<size_t>(matrix.k);
  const size_t index_blocks = CeilDiv(k, kMaxBlockRows);
  // block4 shares each panel load among four channels and is bound by arithmetic, not L2, so it
  // keeps as few blocks as its indices allow.
  if (matrix.block_size != 1) return index_blocks;
  const uint64_t l1_bytes = isa::DetectCpuFeatures().l1d_bytes;
  const size_t panel_budget = l1_bytes > 0 ? l1_bytes * 2 / 3 : kDefaultL1PanelBytes;
  const size_t l1_block_rows = std::max<size_t>(
      1, panel_budget * features_per_run / (microkernels.panel_rows * sizeof(float)));
  const size_t mean_group_length = packed.input_indices.size() / static_cast<size_t>(matrix.n);
  return std::clamp<size_t>(mean_group_length / kMinMeanSegmentLength, index_blocks,
                            std::max(index_blocks, CeilDiv(k, l1_block_rows)));
}

using kernels::Activation;
using kernels::ResidualMode;
using kernels::Spmm64x1FinishAvx512;

template <bool kAccumulate, Activation kActivation, ResidualMode kResidual>
constexpr DirectFinishFn kAvx512Finishers[kernels::kMaxTileVectors] = {
    Spmm64x1FinishAvx512<16, kAccumulate, kActivation, kResidual>,
    Spmm64x1FinishAvx512<32, kAccumulate, kActivation, kResidual>,
    Spmm64x1FinishAvx512<48, kAccumulate, kActivation, kResidual>,
    Spmm64x1FinishAvx512<64, kAccumulate, kActivation, kResidual>};

template <bool kAccumulate, Activation kActivation>
const DirectFinishFn* Avx512FinishersFor(ResidualMode residual) {
  switch (residual) {
    case ResidualMode::kNone:
      return kAvx512Finishers<kAccumulate, kActivation, ResidualMode::kNone>;
    case ResidualMode::kBeforeActivation:
      return kAvx512Finishers<kAccumulate, kActivation, ResidualMode::kBeforeActivation>;
    case ResidualMode::kAfterActivation:
      return kAvx512Finishers<kAccumulate, kActivation, ResidualMode::kAfterActivation>;
  }
  return nullptr;
}

}  // namespace

const DirectFinishFn* DirectCsrFinishersFor(const SpmmMicrokernels& microkernels, bool accumulate,
                                            Activation activation, ResidualMode residual) {
  if (&microkernels != &kAvx512Microkernels) return nullptr;
  switch (activation) {
    case Activation::kNone:
      return accumulate ? Avx512FinishersFor<true, Activation::kNone>(residual)
                        : Avx512FinishersFor<false, Activation::kNone>(residual);
    case Activation::kRelu:
      return accumulate ? Avx512FinishersFor<true, Activation::kRelu>(residual)
                        : Avx512FinishersFor<false, Activation::kRelu>(residual);
    default:
      return nullptr;
  }
}

const SpmmMicrokernels& SelectMicrokernels() {
  switch (isa::SelectKernelFamily()) {
    case isa::KernelFamily::kAvx512:
    case isa::KernelFamily::kAvx512Vnni:  // nothing in FP32 gains from VNNI
      return kAvx512Microkernels;
    case isa::KernelFamily::kAvx2:
    case isa::KernelFamily::kAvxVnni:  // nor from AVX-VNNI
      return kAvx2Microkernels;
    case isa::KernelFamily::kScalar:
      break;
  }
  return kScalarMicrokernels;
}

TileKernels<uint16_t> PanelTileKernelsFor(const SpmmMicrokernels& microkernels, size_t block_size) {
  if (block_size == 4) {
    return {microkernels.block4_tiles, microkernels.block4_tiles_accumulating};
  }
  return {microkernels.csr_tiles, microkernels.csr_tiles_accumulating};
}

TileKernels<int32_t> DirectTileKernelsFor(const SpmmMicrokernels& microkernels, size_t block_size) {
  if (block_size == 4) {
    return {microkernels.direct_block4_tiles, microkernels.direct_block4_tiles_accumulating};
  }
  return {microkernels.direct_csr_tiles, microkernels.direct_csr_tiles_accumulating};
}

TileWeights BuildTileWeights(const PackedWeights& packed, const SparseMatrixAttributes& matrix,
                             const SpmmMicrokernels& microkernels, size_t features_per_run) {
  TileWeights tw;
  const size_t k = static_cast<size_t>(matrix.k);
  const size_t n = static_cast<size_t>(matrix.n);
  const size_t block_size = matrix.block_size;

  tw.chunk_channels = std::clamp(RoundUp(CeilDiv(n, kChunksPerMatrix), kStoreChannels),
                                 kMinChunkChannels, kMaxChunkChannels);
  tw.chunks = CeilDiv(n, tw.chunk_channels);
  tw.k_blocks = CountKBlocks(packed, matrix, microkernels, features_per_run);
  tw.k_block_rows = CeilDiv(k, tw.k_blocks);

  struct Segment {
    size_t group, begin, end;
  };
  std::vector<size_t> cursor(packed.group_offsets.begin(), packed.group_offsets.end() - 1);
  std::vector<Segment> pass;
  tw.pass_offsets.push_back(0);
  for (size_t chunk = 0; chunk < tw.chunks; ++chunk) {
    const size_t first_group = tw.ChunkBegin(chunk) / block_size;
    const size_t end_group = CeilDiv(std::min(n, tw.ChunkBegin(chunk + 1)), block_size);
    for (size_t block = 0; block < tw.k_blocks; ++block) {
      const int32_t block_begin = static_cast<int32_t>(block * tw.k_block_rows);
      const int64_t block_end = static_cast<int64_t>((block + 1) * tw.k_block_rows);
      pass.clear();
      for (size_t g = first_group; g < end_group; ++g) {
        const size_t begin = cursor[g];
        size_t end = begin;
        while (end < static_cast<size_t>(packed.group_offsets[g + 1]) &&
               packed.input_indices[end] < block_end) {
          ++end;
        }
        cursor[g] = end;
        // Empty segments too in the first block, which overwrites the accumulators, and in the
        // last, where the direct convolution's finishing kernels write Y for the segments they
        // are given and no others.
        if (end > begin || block == 0 || block + 1 == tw.k_blocks) {
          pass.push_back({g, begin, end});
        }
      }
      std::stable_sort(pass.begin(), pass.end(), [](const Segment& a, const Segment& b) {
        return a.end - a.begin < b.end - b.begin;
      });
      for (const Segment& segment : pass) {
        tw.segment_offsets.push_back(static_cast<int32_t>(tw.input_indices.size()));
        tw.segment_channels.push_back(
            static_cast<int32_t>(segment.group * block_size - tw.ChunkBegin(chunk)));
        for (size_t i = segment.begin; i < segment.end; ++i) {
          tw.input_indices.push_back(static_cast<uint16_t>(packed.input_indices[i] - block_begin));
        }
        tw.values.insert(tw.values.end(), packed.values.begin() + segment.begin * block_size,
                         packed.values.begin() + segment.end * block_size);
      }
      tw.pass_offsets.push_back(tw.segment_channels.size());
    }
  }
  tw.segment_offsets.push_back(static_cast<int32_t>(tw.input_indices.size()));
  return tw;
}

}  // namespace ortsparse
