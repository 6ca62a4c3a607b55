// SparseMatMulInteger (domain ortsparse): Y = (X - x_zero_point) · W in int32, exactly, with X
// uint8 or int8, W int8, sparse, constant and packed in quads along K by the rewriter: ONNX's
// MatMulInteger with a symmetric constant weight, as dynamic quantization leaves it (its Cast and
// scale Mul after it stay in the graph). Contract: docs/ops.md.
#pragma once

#include <onnxruntime_cxx_api.h>

#include <cstdint>
#include <optional>
#include <string>

#include "operators/integer_op.h"
#include "operators/op_support.h"
#include "operators/quad_gemm.h"

namespace ortsparse {

static_assert(kIntegerInputWeightValues == kQuadGemmWeightValuesInput);

class SparseMatMulIntegerKernel {
 public:
  // Reads the attributes and the packed weights and validates them; throws std::invalid_argument
  // for a malformed node.
  SparseMatMulIntegerKernel(const OrtApi& api, const OrtKernelInfo* info);

  // Never throws: errors become the returned status.
  OrtStatusPtr ComputeV2(OrtKernelContext* context) const;

 private:
  void Compute(Ort::KernelContext& context) const;

  std::string node_label_;
  bool flip_sign_ = false;  // X is int8
  std::optional<QuadGemmWeights> weights_;
};

OrtStatusPtr CreateSparseMatMulIntegerKernel(const OrtApi& api, const OrtKernelInfo* info,
                                             void** kernel);

// One op per activation type, both named SparseMatMulInteger (operators/integer_op.h).
template <ONNXTensorElementDataType kType>
struct SparseMatMulIntegerOp
    : IntegerOp<SparseMatMulIntegerOp<kType>, SparseMatMulIntegerKernel, kType> {
  const char* GetName() const { return "SparseMatMulInteger"; }
  OrtStatusPtr CreateKernelV2(const OrtApi& api, const OrtKernelInfo* info, void** kernel) const {
    return CreateSparseMatMulIntegerKernel(api, info, kernel);
  }
};

}  // namespace ortsparse
