// The integer ops (domain ortsparse), ONNX's MatMulInteger and ConvInteger with a symmetric
// constant weight, as dynamic quantization leaves them (their Cast and scale Mul after them stay in
// the graph). X is uint8 or int8, W int8, sparse, constant and packed by the rewriter in quads of
// four input channels (along K, or at one kernel tap); Y is int32, exactly:
// - SparseMatMulInteger: Y = (X - x_zero_point) · W;
// - SparseConvInteger: Y = conv2d(X - x_zero_point, W) on NCHW tensors, SparseQConv's convolution
//   with the sums stored as they are.
// Both take X, the packed weights, an optional run-time x_zero_point of X's type, and give Y. One
// op is registered per activation type, so that x_zero_point's type can be X's.
// Contract: docs/ops.md.
#pragma once

#include <onnxruntime_cxx_api.h>

#include <cstddef>
#include <cstdint>
#include <vector>

#include "operators/op_support.h"
#include "operators/quad_conv.h"
#include "operators/quad_gemm.h"

namespace ortsparse {

// The integer ops' input after X and the weights.
enum IntegerOpInput : size_t { kIntegerInputXZeroPoint = kWeightInputsEnd, kIntegerInputCount };

// Whether the node's X is int8, which the kernels read flipped to uint8 (x + 128).
inline bool SignedX(const Ort::ConstKernelInfo& info) {
  return info.GetInputTypeInfo(kInputX).GetTensorTypeAndShapeInfo().GetElementType() ==
         ONNX_TENSOR_ELEMENT_DATA_TYPE_INT8;
}

// -zero_point * Σ_k W[k, c] for every channel c, given those sums: added to Σ x w, it makes
// Σ (x - zero_point) w. |zero_point Σ w| <= 255 * 127 * K stays within int32 for K <= 2^16, and
// so does the result, so adding the two in int32 is exact.
inline std::vector<int32_t> ZeroPointOffsets(int32_t zero_point,
                                             const std::vector<int32_t>& channel_sums) {
  std::vector<int32_t> offsets(channel_sums.size());
  for (size_t c = 0; c < offsets.size(); ++c) offsets[c] = -zero_point * channel_sums[c];
  return offsets;
}

// The kernel of SparseMatMulInteger (Weights: QuadGemmWeights) and SparseConvInteger (QuadConv),
// whose files define Compute. Weights is constructed from the node's info and validates it.
template <typename Weights>
class IntegerKernel : public NodeKernel<IntegerKernel<Weights>> {
 public:
  explicit IntegerKernel(const Ort::ConstKernelInfo& info)
      : flip_sign_(SignedX(info)), weights_(info) {}
  void Compute(Ort::KernelContext& context) const;

 private:
  bool flip_sign_;  // X is int8
  Weights weights_;
};

// Op: the op's own type (CRTP), with GetName.
template <typename Op, typename Kernel, ONNXTensorElementDataType kType>
struct IntegerOp : NodeOp<Op, Kernel> {
  static constexpr size_t kFirstOptionalInput = kIntegerInputXZeroPoint;
  size_t GetInputTypeCount() const { return kIntegerInputCount; }
  ONNXTensorElementDataType GetInputType(size_t index) const {
    switch (index) {
      case kInputX:
      case kIntegerInputXZeroPoint:
        return kType;
      case kInputWeightValues:
        return ONNX_TENSOR_ELEMENT_DATA_TYPE_INT8;
      default:
        return ONNX_TENSOR_ELEMENT_DATA_TYPE_INT32;
    }
  }
  ONNXTensorElementDataType GetOutputType(size_t /*index*/) const {
    return ONNX_TENSOR_ELEMENT_DATA_TYPE_INT32;
  }
};

using SparseMatMulIntegerKernel = IntegerKernel<QuadGemmWeights>;
using SparseConvIntegerKernel = IntegerKernel<QuadConv>;
template <>
void SparseMatMulIntegerKernel::Compute(Ort::KernelContext& context) const;
template <>
void SparseConvIntegerKernel::Compute(Ort::KernelContext& context) const;

template <ONNXTensorElementDataType kType>
struct SparseMatMulIntegerOp
    : IntegerOp<SparseMatMulIntegerOp<kType>, SparseMatMulIntegerKernel, kType> {
  const char* GetName() const { return "SparseMatMulInteger"; }
};
template <ONNXTensorElementDataType kType>
struct SparseConvIntegerOp : IntegerOp<SparseConvIntegerOp<kType>, SparseConvIntegerKernel, kType> {
  const char* GetName() const { return "SparseConvInteger"; }
};

}  // namespace ortsparse
