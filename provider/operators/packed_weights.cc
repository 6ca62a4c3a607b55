#include "operators/packed_weights.h"

#include <limits>
#include <stdexcept>
#include <utility>

namespace ortsparse {
namespace {

using kernels::Activation;

std::optional<Activation> ParseActivation(const std::string& name) {
  static const std::pair<const char*, Activation> kNames[] = {
      {"none", Activation::kNone},           {"relu", Activation::kRelu},
      {"clip", Activation::kClip},           {"gelu", Activation::kGelu},
      {"gelu_tanh", Activation::kGeluTanh},  {"sigmoid", Activation::kSigmoid},
      {"silu", Activation::kSilu},           {"leaky_relu", Activation::kLeakyRelu},
      {"hard_swish", Activation::kHardSwish},
  };
  for (const auto& [candidate, activation] : kNames) {
    if (name == candidate) return activation;
  }
  return std::nullopt;
}

kernels::Epilogue ReadEpilogue(const Ort::ConstKernelInfo& info, const std::string& prefix) {
  kernels::Epilogue epilogue = ReadActivation(info, prefix);
  const int64_t residual_before =
      IntAttribute(info, (prefix + "residual_before_activation").c_str()).value_or(0);
  if (residual_before != 0 && residual_before != 1) {
    throw std::invalid_argument("attribute " + prefix +
                                "residual_before_activation must be 0 or 1, got " +
                                std::to_string(residual_before));
  }
  epilogue.residual_before_activation = residual_before == 1;
  return epilogue;
}

void CheckBiasShape(const std::vector<int64_t>& shape, int64_t n) {
  if (shape.size() != 1 || shape[0] != n) {
    throw std::invalid_argument("bias has shape " + ShapeString(shape) + ", expected [" +
                                std::to_string(n) + "]");
  }
}

}  // namespace

kernels::Epilogue ReadActivation(const Ort::ConstKernelInfo& info, const std::string& prefix) {
  kernels::Epilogue epilogue;
  const std::string name = prefix + "activation";
  const std::string activation_name = StringAttribute(info, name.c_str()).value_or("none");
  const std::optional<Activation> activation = ParseActivation(activation_name);
  if (!activation) {
    throw std::invalid_argument("unknown " + name + " '" + activation_name +
                                "' (expected none, relu, clip, gelu, gelu_tanh, sigmoid, silu, "
                                "leaky_relu, hard_swish)");
  }
  epilogue.activation = *activation;
  const auto parameter = [&](const char* parameter_name, float fallback) {
    return FloatAttribute(info, (prefix + parameter_name).c_str()).value_or(fallback);
  };
  epilogue.clip_min = parameter("clip_min", epilogue.clip_min);
  epilogue.clip_max = parameter("clip_max", epilogue.clip_max);
  epilogue.alpha = parameter("alpha", epilogue.alpha);
  return epilogue;
}

SparseMatrixAttributes ReadSparseMatrixAttributes(const Ort::ConstKernelInfo& info,
                                                  const std::string& prefix) {
  SparseMatrixAttributes matrix;
  const std::optional<int64_t> k = IntAttribute(info, (prefix + "K").c_str());
  const std::optional<int64_t> n = IntAttribute(info, (prefix + "N").c_str());
  if (!k || !n) {
    throw std::invalid_argument("integer attributes " + prefix + "K and " + prefix +
                                "N are required");
  }
  // Both bound int32 indices and offsets, and their products stay far from size_t overflow.
  constexpr int64_t kMaxDim = std::numeric_limits<int32_t>::max();
  if (*k < 1 || *n < 1 || *k > kMaxDim || *n > kMaxDim) {
    throw std::invalid_argument(prefix + "K and " + prefix + "N must be in [1, 2^31), got " +
                                prefix + "K=" + std::to_string(*k) + ", " + prefix +
                                "N=" + std::to_string(*n));
  }
  matrix.k = *k;
  matrix.n = *n;

  const std::string format_name = prefix + "format";
  const std::optional<std::string> format = StringAttribute(info, format_name.c_str());
  if (format == "csr") {
    matrix.block_size = 1;
  } else if (format == "block4") {
    matrix.block_size = 4;
  } else {
    throw std::invalid_argument("attribute " + format_name + " must be 'csr' or 'block4', got '" +
                                format.value_or("(missing)") + "'");
  }
  matrix.epilogue = ReadEpilogue(info, prefix);
  return matrix;
}

void CheckGroups(const std::vector<int32_t>& group_offsets,
                 const std::vector<int32_t>& input_indices, int64_t index_limit,
                 const std::string& limit_label) {
  const size_t num_groups = group_offsets.size() - 1;
  const size_t stored = input_indices.size();
  if (group_offsets.front() != 0 || static_cast<size_t>(group_offsets.back()) != stored) {
    throw std::invalid_argument("weight_group_offsets must start at 0 and end at " +
                                std::to_string(stored) + " (the number of input indices)");
  }
  // Offsets first: with them monotonic from 0 to `stored`, every group's range is in bounds.
  for (size_t g = 0; g < num_groups; ++g) {
    if (group_offsets[g + 1] < group_offsets[g]) {
      throw std::invalid_argument("weight_group_offsets decreases at group " + std::to_string(g));
    }
  }
  for (size_t g = 0; g < num_groups; ++g) {
    for (int32_t i = group_offsets[g]; i < group_offsets[g + 1]; ++i) {
      const int32_t index = input_indices[i];
      if (index < 0 || index >= index_limit) {
        throw std::invalid_argument("weight_input_indices[" + std::to_string(i) + "] = " +
                                    std::to_string(index) + " is outside [0, " + limit_label +
                                    ")");
      }
      if (i > group_offsets[g] && index <= input_indices[i - 1]) {
        throw std::invalid_argument("weight_input_indices are not strictly increasing in group " +
                                    std::to_string(g) + " (position " + std::to_string(i) + ")");
      }
    }
  }
}

PackedWeights ReadPackedWeights(const Ort::ConstKernelInfo& info,
                                const SparseMatrixAttributes& matrix) {
  PackedWeights packed{
      ConstantVectorInput<float>(info, kInputWeightValues, "weight_values"),
      ConstantVectorInput<int32_t>(info, kInputWeightGroupOffsets, "weight_group_offsets"),
      ConstantVectorInput<int32_t>(info, kInputWeightInputIndices, "weight_input_indices")};
  CheckPackedWeights(packed, matrix);
  return packed;
}

PackedWeights ReadPackedWeightAttributes(const Ort::ConstKernelInfo& info,
                                         const SparseMatrixAttributes& matrix,
                                         const std::string& prefix) {
  const auto read = [&](auto element, const char* name) {
    const std::string attribute = prefix + name;
    auto values = TensorAttribute<decltype(element)>(info, attribute.c_str());
    if (!values) throw std::invalid_argument("tensor attribute " + attribute + " is required");
    return std::move(*values);
  };
  PackedWeights packed{read(0.0f, "weight_values"), read(int32_t{0}, "weight_group_offsets"),
                       read(int32_t{0}, "weight_input_indices")};
  CheckPackedWeights(packed, matrix);
  return packed;
}

void CheckPackedWeights(const PackedWeights& packed, const SparseMatrixAttributes& matrix) {
  const std::vector<int32_t>& group_offsets = packed.group_offsets;
  const std::vector<int32_t>& input_indices = packed.input_indices;
  const size_t block_size = matrix.block_size;

  const size_t num_groups = CeilDiv(static_cast<size_t>(matrix.n), block_size);
  const size_t nnz_blocks = input_indices.size();
  if (group_offsets.size() != num_groups + 1) {
    throw std::invalid_argument("weight_group_offsets has " +
                                std::to_string(group_offsets.size()) + " entries, expected " +
                                std::to_string(num_groups + 1) + " (one per group, plus one)");
  }
  if (packed.values.size() != nnz_blocks * block_size) {
    throw std::invalid_argument("weight_values has " + std::to_string(packed.values.size()) +
                                " entries, expected " + std::to_string(nnz_blocks * block_size) +
                                " (block size " + std::to_string(block_size) + " times " +
                                std::to_string(nnz_blocks) + " input indices)");
  }
  CheckGroups(group_offsets, input_indices, matrix.k, "K=" + std::to_string(matrix.k));
}

std::optional<OutputAffine> ReadOutputAffine(const Ort::ConstKernelInfo& info, int64_t n) {
  std::optional<std::vector<float>> scale = TensorAttribute<float>(info, "output_scale", {n});
  std::optional<std::vector<float>> shift = TensorAttribute<float>(info, "output_shift", {n});
  if (scale.has_value() != shift.has_value()) {
    throw std::invalid_argument("attributes output_scale and output_shift come together");
  }
  if (!scale.has_value()) return std::nullopt;
  return OutputAffine{std::move(*scale), std::move(*shift)};
}

std::optional<std::vector<float>> ReadConstantBias(const Ort::ConstKernelInfo& info, int64_t n) {
  if (!NodeHasInput(info, kInputBias)) return std::nullopt;
  int is_constant = 0;
  const Ort::ConstValue bias = info.GetTensorConstantInput(kInputBias, &is_constant);
  if (!is_constant || bias == nullptr) return std::nullopt;
  CheckBiasShape(bias.GetTensorTypeAndShapeInfo().GetShape(), n);
  const float* data = bias.GetTensorData<float>();
  return std::vector<float>(data, data + n);
}

const float* BiasForRun(const Ort::KernelContext& context,
                        const std::optional<std::vector<float>>& constant_bias, int64_t n) {
  if (constant_bias) return constant_bias->data();
  const Ort::ConstValue bias = OptionalInput(context, kInputBias);
  if (bias == nullptr) return nullptr;
  CheckBiasShape(bias.GetTensorTypeAndShapeInfo().GetShape(), n);
  return bias.GetTensorData<float>();
}

const float* ResidualForRun(const Ort::KernelContext& context,
                            const std::vector<int64_t>& y_shape) {
  const Ort::ConstValue residual = OptionalInput(context, kInputResidual);
  if (residual == nullptr) return nullptr;
  const std::vector<int64_t> shape = residual.GetTensorTypeAndShapeInfo().GetShape();
  if (shape != y_shape) {
    throw std::invalid_argument("residual has shape " + ShapeString(shape) + " but Y has shape " +
                                ShapeString(y_shape));
  }
  return residual.GetTensorData<float>();
}

}  // namespace ortsparse
