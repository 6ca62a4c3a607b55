// SparseGemm (domain ortsparse): Y = epilogue(X · W) with W sparse, constant and packed by the
// rewriter. Contract: docs/ops.md.
#pragma once

#include <onnxruntime_cxx_api.h>

#include <cstdint>
#include <string>
#include <vector>

#include "kernels/activations/epilogue.h"
#include "kernels/f32-spmm/spmm.h"

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
};

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
};

// The row kernels' copy of the weights: the contract's groups as given, with 16-bit indices. Left
// empty when K does not fit in 16 bits; the tile kernels then serve inputs of every size.
struct RowWeights {
  std::vector<float> values;
  std::vector<int32_t> group_offsets;
  std::vector<uint16_t> input_indices;

  kernels::SparseWeights View() const {
    return {values.data(), group_offsets.data(), input_indices.data()};
  }
};

// The packed weight inputs, validated.
struct PackedWeights {
  std::vector<float> values;
  std::vector<int32_t> group_offsets;
  std::vector<int32_t> input_indices;
};

class SparseGemmKernel {
 public:
  // Reads the attributes and the constant packed weights, validates them and lays the weights out
  // for the kernels; throws Ort::Exception with a message naming the node and the problem.
  SparseGemmKernel(const OrtApi& api, const OrtKernelInfo* info);

  // Never throws: errors become the returned status.
  OrtStatusPtr ComputeV2(OrtKernelContext* context) const;

 private:
  void ReadAttributes(const Ort::ConstKernelInfo& info);
  PackedWeights ReadPackedWeights(const Ort::ConstKernelInfo& info) const;
  void ReadConstantBias(const Ort::ConstKernelInfo& info);
  void SelectMicrokernels();
  void BuildTileWeights(const PackedWeights& packed);
  void BuildRowWeights(PackedWeights&& packed);

  void Compute(Ort::KernelContext& context) const;
  [[noreturn]] void Fail(const std::string& problem) const;

  std::string node_name_;
  int64_t k_ = 0;
  int64_t n_ = 0;
  size_t block_size_ = 1;  // output channels per group: 1 for csr, 4 for block4
  kernels::Epilogue epilogue_;

  RowWeights row_weights_;
  TileWeights tile_weights_;

  bool has_constant_bias_ = false;
  std::vector<float> constant_bias_;

  const SpmmMicrokernels* microkernels_ = nullptr;
  const kernels::SpmmTileFn* tile_kernels_ = nullptr;
  const kernels::SpmmTileFn* accumulating_tile_kernels_ = nullptr;
  kernels::SpmvRowFn row_kernel_ = nullptr;
};

struct SparseGemmOp : Ort::CustomOpBase<SparseGemmOp, SparseGemmKernel, /*WithStatus=*/true> {
  OrtStatusPtr CreateKernelV2(const OrtApi& api, const OrtKernelInfo* info, void** kernel) const;

  const char* GetName() const { return "SparseGemm"; }
  size_t GetInputTypeCount() const { return 6; }
  ONNXTensorElementDataType GetInputType(size_t index) const;
  OrtCustomOpInputOutputCharacteristic GetInputCharacteristic(size_t index) const;
  size_t GetOutputTypeCount() const { return 1; }
  ONNXTensorElementDataType GetOutputType(size_t /*index*/) const {
    return ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT;
  }
};

}  // namespace ortsparse
