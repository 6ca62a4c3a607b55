#include "operators/quad_tiles.h"

#include <algorithm>
#include <cstring>
#include <iterator>
#include <stdexcept>
#include <string>

#include "isa/cpu_features.h"
#include "operators/op_support.h"
#include "operators/packed_weights.h"

namespace ortsparse {
namespace {

using kernels::QuadResidual;
using kernels::Spmm32x1c4Avx2;
using kernels::Spmm32x1c4AvxVnni;
using kernels::Spmm64x1c4Avx512Vnni;
using kernels::Spmm64x1c4RequantizeAvx512Vnni;

const QuadMicrokernels kAvx512VnniQuadMicrokernels = {
    .panel_rows = kernels::kVnniPanelRows,
    .vector_rows = 16,
    .panel_bytes_per_quad = kernels::kVnniPanelRows * 4,
    .pack_panel = kernels::PackQuadPanelAvx512Vnni,
    .tiles = {Spmm64x1c4Avx512Vnni<1>, Spmm64x1c4Avx512Vnni<2>, Spmm64x1c4Avx512Vnni<3>,
              Spmm64x1c4Avx512Vnni<4>},
    .requantize = kernels::RequantizeTileAvx512,
    .store_sums = kernels::StoreSumsTileAvx512,
    .pack_quad_planes = kernels::PackQuadPlanesAvx512,
    .requantize_channels = kernels::RequantizeChannelsAvx512,
    .requantize_add_channels = kernels::RequantizeAddChannelsAvx512,
    .store_sums_channels = kernels::StoreSumsChannelsAvx512,
    .requantize_tiles = {{Spmm64x1c4RequantizeAvx512Vnni<1, QuadResidual::kNone>,
                          Spmm64x1c4RequantizeAvx512Vnni<2, QuadResidual::kNone>,
                          Spmm64x1c4RequantizeAvx512Vnni<3, QuadResidual::kNone>,
                          Spmm64x1c4RequantizeAvx512Vnni<4, QuadResidual::kNone>},
                         {Spmm64x1c4RequantizeAvx512Vnni<1, QuadResidual::kUint8>,
                          Spmm64x1c4RequantizeAvx512Vnni<2, QuadResidual::kUint8>,
                          Spmm64x1c4RequantizeAvx512Vnni<3, QuadResidual::kUint8>,
                          Spmm64x1c4RequantizeAvx512Vnni<4, QuadResidual::kUint8>},
                         {Spmm64x1c4RequantizeAvx512Vnni<1, QuadResidual::kInt8>,
                          Spmm64x1c4RequantizeAvx512Vnni<2, QuadResidual::kInt8>,
                          Spmm64x1c4RequantizeAvx512Vnni<3, QuadResidual::kInt8>,
                          Spmm64x1c4RequantizeAvx512Vnni<4, QuadResidual::kInt8>}},
};

const QuadMicrokernels kAvx2QuadMicrokernels = {
    .panel_rows = kernels::kAvx2QuadPanelRows,
    .vector_rows = 8,
    .panel_bytes_per_quad = kernels::kAvx2QuadPanelRows * 4,
    .pack_panel = kernels::PackQuadPanelAvx2,
    .tiles = {Spmm32x1c4Avx2<1>, Spmm32x1c4Avx2<2>, Spmm32x1c4Avx2<3>, Spmm32x1c4Avx2<4>},
    .requantize = kernels::RequantizeTileAvx2,
    .store_sums = kernels::StoreSumsTileAvx2,
    .pack_quad_planes = kernels::PackQuadPlanesAvx2,
    .requantize_channels = kernels::RequantizeChannelsAvx2,
    .requantize_add_channels = kernels::RequantizeAddChannelsAvx2,
    .store_sums_channels = kernels::StoreSumsChannelsAvx2,
    .requantize_tiles = {},
};

// AVX-VNNI: the AVX2 family's panels, packers and output stage, with its own tile kernels.
QuadMicrokernels AvxVnniQuadMicrokernels() {
  QuadMicrokernels microkernels = kAvx2QuadMicrokernels;
  const kernels::QuadTileFn tiles[] = {Spmm32x1c4AvxVnni<1>, Spmm32x1c4AvxVnni<2>,
                                       Spmm32x1c4AvxVnni<3>, Spmm32x1c4AvxVnni<4>};
  std::copy(std::begin(tiles), std::end(tiles), microkernels.tiles);
  return microkernels;
}

const QuadMicrokernels kAvxVnniQuadMicrokernels = AvxVnniQuadMicrokernels();

const QuadMicrokernels kScalarQuadMicrokernels = {
    .panel_rows = kernels::kScalarQuadPanelRows,
    .vector_rows = kernels::kScalarQuadPanelRows,
    .panel_bytes_per_quad = kernels::kScalarQuadPanelRows * 4,
    .pack_panel = kernels::PackQuadPanelScalar,
    .tiles = {kernels::QuadTileScalar},
    .requantize = kernels::RequantizeTileScalar,
    .store_sums = kernels::StoreSumsTileScalar,
    .pack_quad_planes = kernels::PackQuadPlanesScalar,
    .requantize_channels = kernels::RequantizeChannelsScalar,
    .requantize_add_channels = kernels::RequantizeAddChannelsScalar,
    .store_sums_channels = kernels::StoreSumsChannelsScalar,
    .requantize_tiles = {},
};

}  // namespace

const QuadMicrokernels& SelectQuadMicrokernels() {
  switch (isa::SelectKernelFamily()) {
    case isa::KernelFamily::kAvx512Vnni:
      return kAvx512VnniQuadMicrokernels;
    case isa::KernelFamily::kAvxVnni:
      return kAvxVnniQuadMicrokernels;
    case isa::KernelFamily::kAvx512:
    case isa::KernelFamily::kAvx2:
      return kAvx2QuadMicrokernels;
    case isa::KernelFamily::kScalar:
      break;
  }
  return kScalarQuadMicrokernels;
}

QuadPackedWeights ReadQuadPackedWeights(const Ort::ConstKernelInfo& info, size_t first_input,
                                        int64_t quads, const std::string& quads_description,
                                        int64_t n,
                                        const std::function<bool(int64_t)>& feature_exists) {
  const std::vector<int8_t> bytes = ConstantVectorInput<int8_t>(info, first_input, "weight_values");
  QuadPackedWeights packed;
  packed.group_offsets =
      ConstantVectorInput<int32_t>(info, first_input + 1, "weight_group_offsets");
  packed.quad_indices = ConstantVectorInput<int32_t>(info, first_input + 2, "weight_input_indices");
  const size_t stored = packed.quad_indices.size();
  const size_t groups = static_cast<size_t>(n);
  if (packed.group_offsets.size() != groups + 1) {
    throw std::invalid_argument("weight_group_offsets has " +
                                std::to_string(packed.group_offsets.size()) +
                                " entries, expected N + 1 = " + std::to_string(groups + 1));
  }
  if (bytes.size() != 4 * stored) {
    throw std::invalid_argument("weight_values has " + std::to_string(bytes.size()) +
                                " entries, expected 4 per stored quad (" +
                                std::to_string(4 * stored) + ")");
  }
  CheckGroups(packed.group_offsets, packed.quad_indices, quads, quads_description);
  packed.values.resize(stored);
  // An all-zero weight stores nothing, and memcpy must not see an empty vector's null data().
  if (stored != 0) std::memcpy(packed.values.data(), bytes.data(), bytes.size());
  packed.channel_sums.assign(groups, 0);
  for (size_t g = 0; g < groups; ++g) {
    for (int32_t i = packed.group_offsets[g]; i < packed.group_offsets[g + 1]; ++i) {
      const int64_t q = packed.quad_indices[i];
      for (size_t j = 0; j < 4; ++j) {
        const int8_t weight = bytes[4 * static_cast<size_t>(i) + j];
        if (weight != 0 && !feature_exists(4 * q + static_cast<int64_t>(j))) {
          throw std::invalid_argument(
              "weight_values has a nonzero weight for no input feature "
              "(a quad's padding) in quad " +
              std::to_string(q) + " of group " + std::to_string(g));
        }
        packed.channel_sums[g] += weight;
      }
    }
  }
  return packed;
}

}  // namespace ortsparse
