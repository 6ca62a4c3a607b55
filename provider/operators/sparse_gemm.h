// SparseGemm (domain ortsparse): Y = epilogue(X · W) with W sparse, constant and packed by the
// rewriter. Contract: docs/ops.md.
#pragma once

#include <onnxruntime_cxx_api.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "operators/packed_weights.h"
#include "operators/spmm_tiles.h"

namespace ortsparse {

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

class SparseGemmKernel : public NodeKernel<SparseGemmKernel> {
 public:
  // Reads the attributes and the constant packed weights, validates them and lays the weights out
  // for the kernels; throws std::invalid_argument for a malformed node.
  explicit SparseGemmKernel(const Ort::ConstKernelInfo& info);
  void Compute(Ort::KernelContext& context) const;

 private:
  void BuildRowWeights(PackedWeights&& packed);

  SparseMatrixAttributes matrix_;
  Threading threading_ = Threading::kIntraOpPool;
  std::optional<std::vector<float>> constant_bias_;
  std::optional<OutputAffine> output_affine_;

  const SpmmMicrokernels* microkernels_ = nullptr;
  TileKernels<uint16_t> tile_kernels_{};
  kernels::SpmvRowFn row_kernel_ = nullptr;
  RowWeights row_weights_;
  TileWeights tile_weights_;
};

struct SparseGemmOp : PackedWeightOp<SparseGemmOp, SparseGemmKernel> {
  const char* GetName() const { return "SparseGemm"; }
};

}  // namespace ortsparse
