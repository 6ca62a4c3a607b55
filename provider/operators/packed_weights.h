// What SparseGemm and SparseConv share at the ORT boundary (docs/ops.md): the weight matrix's
// attributes, the packed weight inputs and their validation, and the optional bias and residual.
#pragma once

#include <onnxruntime_cxx_api.h>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "kernels/activations/epilogue.h"
#include "operators/op_support.h"

namespace ortsparse {

// Both operators' inputs after X and the weights.
enum PackedOpInput : size_t { kInputBias = kWeightInputsEnd, kInputResidual, kPackedOpInputCount };

// The weight matrix W [K, N] and what the output stage does with X · W.
struct SparseMatrixAttributes {
  int64_t k = 0;
  int64_t n = 0;
  size_t block_size = 1;  // output channels per group: 1 for csr, 4 for block4
  kernels::Epilogue epilogue;
};

// Reads K, N, format and the epilogue attributes, each name after `prefix`; throws
// std::invalid_argument when one is missing or out of range.
SparseMatrixAttributes ReadSparseMatrixAttributes(const Ort::ConstKernelInfo& info,
                                                  const std::string& prefix = "");

// The packed weight inputs, validated against the contract.
struct PackedWeights {
  std::vector<float> values;
  std::vector<int32_t> group_offsets;
  std::vector<int32_t> input_indices;
};

// Checks a packed weight's groups (group_offsets has one entry per group, plus one): offsets
// from 0 to the number of input indices, never decreasing, and within each group indices
// strictly increasing in [0, index_limit); limit_label names that limit in messages.
void CheckGroups(const std::vector<int32_t>& group_offsets,
                 const std::vector<int32_t>& input_indices, int64_t index_limit,
                 const std::string& limit_label);

// An activation and its parameters from the attributes `prefix`activation, `prefix`clip_min,
// `prefix`clip_max and `prefix`alpha (residual_before_activation aside); throws
// std::invalid_argument for an unknown activation.
kernels::Epilogue ReadActivation(const Ort::ConstKernelInfo& info, const std::string& prefix);

// The packed weights from the node's constant inputs, checked against `matrix`.
PackedWeights ReadPackedWeights(const Ort::ConstKernelInfo& info,
                                const SparseMatrixAttributes& matrix);
// The packed weights from tensor attributes `prefix`weight_values, `prefix`weight_group_offsets
// and `prefix`weight_input_indices, as a prologue's come (they are not the node's inputs).
PackedWeights ReadPackedWeightAttributes(const Ort::ConstKernelInfo& info,
                                         const SparseMatrixAttributes& matrix,
                                         const std::string& prefix);
// Throws std::invalid_argument unless `packed` holds one group of indices per block of
// matrix.block_size output channels, as CheckGroups checks them, and their values.
void CheckPackedWeights(const PackedWeights& packed, const SparseMatrixAttributes& matrix);

// The output affine of kernels::OutputBlock, per output channel.
struct OutputAffine {
  std::vector<float> scale;
  std::vector<float> shift;
};

// `out` with the output affine's scale and shift from channel `channel` on, where the node has
// one (`affine` not null).
inline kernels::OutputBlock WithAffine(kernels::OutputBlock out, const OutputAffine* affine,
                                       size_t channel) {
  if (affine != nullptr) {
    out.scale = affine->scale.data() + channel;
    out.shift = affine->shift.data() + channel;
  }
  return out;
}

// The node's output affine from its attributes output_scale and output_shift (float [N] each),
// or none when it has neither; throws std::invalid_argument for one without the other or another
// shape.
std::optional<OutputAffine> ReadOutputAffine(const Ort::ConstKernelInfo& info, int64_t n);

// The bias when it is a constant initializer (validated once, here), else nothing: it then comes
// with each run.
std::optional<std::vector<float>> ReadConstantBias(const Ort::ConstKernelInfo& info, int64_t n);

// The bias of this run (null when the node has none), checked unless it was constant.
const float* BiasForRun(const Ort::KernelContext& context,
                        const std::optional<std::vector<float>>& constant_bias, int64_t n);

// The residual of this run (null when the node has none), checked to have Y's shape.
const float* ResidualForRun(const Ort::KernelContext& context,
                            const std::vector<int64_t>& y_shape);

// The ORT op definition both operators share (operators/op_support.h's NodeOp).
template <typename Op, typename Kernel>
struct PackedWeightOp : NodeOp<Op, Kernel> {
  static constexpr size_t kFirstOptionalInput = kInputBias;
  size_t GetInputTypeCount() const { return kPackedOpInputCount; }
  ONNXTensorElementDataType GetInputType(size_t index) const {
    const bool is_index = index == kInputWeightGroupOffsets || index == kInputWeightInputIndices;
    return is_index ? ONNX_TENSOR_ELEMENT_DATA_TYPE_INT32 : ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT;
  }
  ONNXTensorElementDataType GetOutputType(size_t /*index*/) const {
    return ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT;
  }
};

}  // namespace ortsparse
