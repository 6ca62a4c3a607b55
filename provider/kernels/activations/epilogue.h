// Output stage of SparseGemm and SparseConv: bias, activation, output affine and residual,
// applied while the accumulators are still in cache, and written to Y.
//
//   y = act(acc + bias) * scale + shift + residual      (residual_before_activation == false)
//   y = act(acc + bias + residual) * scale + shift      (residual_before_activation == true)
//
// scale and shift are the node's output affine where it has one (an affine after the activation,
// such as PP-LCNetV3's learnable one, which no weight can absorb), else 1 and 0.
#pragma once

#include <cstddef>
#include <limits>
#include <type_traits>

namespace ortsparse::kernels {

enum class Activation {
  kNone,
  kRelu,
  kClip,
  kGelu,
  kGeluTanh,
  kSigmoid,
  kSilu,
  kLeakyRelu,  // x >= 0 ? x : alpha * x
  kHardSwish,  // x * clip(x / 6 + 1/2, 0, 1), as ONNX HardSwish
};

struct Epilogue {
  Activation activation = Activation::kNone;
  float clip_min = -std::numeric_limits<float>::infinity();
  float clip_max = std::numeric_limits<float>::infinity();
  float alpha = 0.01f;  // leaky_relu's slope for negative inputs
  bool residual_before_activation = false;
};

// Where a block of outputs goes; every pointer is already at the block's first row and channel.
struct OutputBlock {
  float* y;                // row-major, row_stride floats between rows
  const float* residual;   // same layout as y, or null
  const float* bias;       // one value per channel, or null
  size_t row_stride;
  const float* scale = nullptr;  // the output affine, one value per channel each; both or none
  const float* shift = nullptr;
};

enum class ResidualMode { kNone, kBeforeActivation, kAfterActivation };

// Calls Body::Run<activation, residual mode>(args...) with both as compile-time constants, so
// that the per-element loops carry no switch.
template <typename Body, typename... Args>
void WithEpilogue(const OutputBlock& out, const Epilogue& epilogue, const Args&... args) {
  auto with_residual = [&](auto activation) {
    constexpr Activation kActivation = decltype(activation)::value;
    if (out.residual == nullptr) {
      Body::template Run<kActivation, ResidualMode::kNone>(args...);
    } else if (epilogue.residual_before_activation) {
      Body::template Run<kActivation, ResidualMode::kBeforeActivation>(args...);
    } else {
      Body::template Run<kActivation, ResidualMode::kAfterActivation>(args...);
    }
  };
  switch (epilogue.activation) {
    case Activation::kNone:
      return with_residual(std::integral_constant<Activation, Activation::kNone>{});
    case Activation::kRelu:
      return with_residual(std::integral_constant<Activation, Activation::kRelu>{});
    case Activation::kClip:
      return with_residual(std::integral_constant<Activation, Activation::kClip>{});
    case Activation::kGelu:
      return with_residual(std::integral_constant<Activation, Activation::kGelu>{});
    case Activation::kGeluTanh:
      return with_residual(std::integral_constant<Activation, Activation::kGeluTanh>{});
    case Activation::kSigmoid:
      return with_residual(std::integral_constant<Activation, Activation::kSigmoid>{});
    case Activation::kSilu:
      return with_residual(std::integral_constant<Activation, Activation::kSilu>{});
    case Activation::kLeakyRelu:
      return with_residual(std::integral_constant<Activation, Activation::kLeakyRelu>{});
    case Activation::kHardSwish:
      return with_residual(std::integral_constant<Activation, Activation::kHardSwish>{});
  }
}

// y[r][c] = epilogue(acc[c * acc_stride + r]) for r < rows, c < channels. acc is channel-major
// (the tile kernels' output) and readable, though not necessarily initialized, up to a multiple
// of the vector width in both rows and channels.
using StoreTransposedKernel = void(const float* acc, size_t acc_stride, size_t rows,
                                   size_t channels, const OutputBlock& out,
                                   const Epilogue& epilogue);
using StoreTransposedFn = StoreTransposedKernel*;
StoreTransposedKernel StoreTransposedAvx512, StoreTransposedAvx2, StoreTransposedScalar;

// y[c] = epilogue(acc[c]) for c < channels: one row (the row kernels' output).
using StoreRowKernel = void(const float* acc, size_t channels, const OutputBlock& out,
                            const Epilogue& epilogue);
using StoreRowFn = StoreRowKernel*;
StoreRowKernel StoreRowAvx512, StoreRowAvx2, StoreRowScalar;

// y[c * out.row_stride + r] = epilogue(acc[c * acc_stride + r]) for r < rows, c < channels: acc's
// channel-major layout is already Y's when Y is NCHW (SparseConv), so each channel's run of pixels
// is finished in place of a transpose; out.row_stride is then the distance between channels.
using StoreChannelRowsKernel = void(const float* acc, size_t acc_stride, size_t rows,
                                    size_t channels, const OutputBlock& out,
                                    const Epilogue& epilogue);
using StoreChannelRowsFn = StoreChannelRowsKernel*;
StoreChannelRowsKernel StoreChannelRowsAvx512, StoreChannelRowsAvx2, StoreChannelRowsScalar;

}  // namespace ortsparse::kernels
