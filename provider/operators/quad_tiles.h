// The INT8 tile path's microkernels for the CPU's ISA family, and the weights as they read them.
#pragma once

#include <onnxruntime_cxx_api.h>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "kernels/u8s8-spconv/planes.h"
#include "kernels/u8s8-spmm/requantize.h"
#include "kernels/u8s8-spmm/spmm.h"

namespace ortsparse {

struct QuadMicrokernels {
  size_t panel_rows;   // rows per panel (the tile height)
  size_t vector_rows;  // tile variant v (0-based) handles up to (v + 1) * vector_rows rows
  size_t panel_bytes_per_quad;  // panel_rows dwords
  kernels::PackQuadPanelFn pack_panel;
  kernels::QuadTileFn tiles[kernels::kMaxQuadTileVectors];
  kernels::RequantizeTileFn requantize;
  kernels::StoreSumsTileFn store_sums;
  kernels::PackQuadPlanesFn pack_quad_planes;
  kernels::RequantizeChannelsFn requantize_channels;
  kernels::RequantizeAddChannelsFn requantize_add_channels;
  kernels::StoreSumsChannelsFn store_sums_channels;
  // Tile kernels that requantize into Y themselves, by residual (kernels::QuadResidual) and
  // height; null where the family has none.
  kernels::QuadRequantizeTileFn requantize_tiles[kernels::kQuadResidualKinds]
                                                [kernels::kMaxQuadTileVectors];

  kernels::QuadTileFn TileFor(size_t rows) const { return tiles[VariantFor(rows)]; }
  size_t VariantFor(size_t rows) const { return (rows + vector_rows - 1) / vector_rows - 1; }
  // The requantizing tile kernels for the residual, by height, or null.
  const kernels::QuadRequantizeTileFn* RequantizeTilesFor(kernels::QuadResidual residual) const {
    const kernels::QuadRequantizeTileFn* by_height =
        requantize_tiles[static_cast<size_t>(residual)];
    return by_height[0] != nullptr ? by_height : nullptr;
  }
};

// The family ORTSPARSE_ISA and the CPU allow. Without VNNI (AVX2, and AVX-512 without VNNI) the
// AVX2 kernels run, with the AVX2 packers and output stage; AVX-VNNI runs its own tile kernels on
// the same panels, packers and output stage.
const QuadMicrokernels& SelectQuadMicrokernels();

// The quad format's packed weights (docs/ops.md), validated: int8 values, four per quad.
struct QuadPackedWeights {
  std::vector<int32_t> values;  // one quad of four int8 weights per entry
  std::vector<int32_t> group_offsets;
  std::vector<int32_t> quad_indices;
  std::vector<int32_t> channel_sums;  // sum of each output channel's weights

  // The weights as the tile kernels read them, each stored quad's rows at input_offsets (one
  // entry per stored quad, in the same order).
  kernels::QuadWeights View(const std::vector<int32_t>& input_offsets) const {
    return {values.data(), group_offsets.data(), input_offsets.data()};
  }
};

// Reads inputs weight_values (int8), weight_group_offsets and weight_input_indices (int32) at
// `first_input` and the two after it, for `quads` quads of input features (described as
// `quads_description` in errors) and n groups; a nonzero weight at a feature that
// feature_exists(k) denies is an error. Throws std::invalid_argument when they break the contract.
QuadPackedWeights ReadQuadPackedWeights(const Ort::ConstKernelInfo& info, size_t first_input,
                                        int64_t quads, const std::string& quads_description,
                                        int64_t n,
                                        const std::function<bool(int64_t)>& feature_exists);

}  // namespace ortsparse
