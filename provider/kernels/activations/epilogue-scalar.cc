// Portable output stage, with the C library's math functions.
#include <algorithm>
#include <cmath>

#include "kernels/activations/coefficients.h"
#include "kernels/activations/epilogue.h"

namespace ortsparse::kernels {
namespace {

template <Activation kActivation>
float Activate(float x, const Epilogue& epilogue) {
  namespace k = coefficients;
  switch (kActivation) {
    case Activation::kNone:
      return x;
    case Activation::kRelu:
      return std::max(x, 0.0f);
    case Activation::kClip:
      return std::min(std::max(x, epilogue.clip_min), epilogue.clip_max);
    case Activation::kGelu:
      return 0.5f * x * std::erfc(-x * k::kSqrtHalf);
    case Activation::kGeluTanh:  // 0.5 x (1 + tanh(u)) = x sigmoid(2u), which does not cancel
      return x / (1.0f + std::exp(-2.0f * k::kSqrtTwoOverPi * x *
                                  (1.0f + k::kGeluTanhCubic * x * x)));
    case Activation::kSigmoid:
      return 1.0f / (1.0f + std::exp(-x));
    case Activation::kSilu:
      return x / (1.0f + std::exp(-x));
    case Activation::kLeakyRelu:
      return x >= 0.0f ? x : epilogue.alpha * x;
    case Activation::kHardSwish:
      return x * std::min(std::max(x * k::kHardSwishSlope + k::kHardSwishOffset, 0.0f), 1.0f);
  }
  return x;
}

template <Activation kActivation, ResidualMode kResidual>
void Finish(float acc, size_t channel, size_t offset, const OutputBlock& out,
            const Epilogue& epilogue) {
  float v = acc + (out.bias != nullptr ? out.bias[channel] : 0.0f);
  if (kResidual == ResidualMode::kBeforeActivation) v += out.residual[offset];
  v = Activate<kActivation>(v, epilogue);
  if (out.scale != nullptr) v = v * out.scale[channel] + out.shift[channel];
  if (kResidual == ResidualMode::kAfterActivation) v += out.residual[offset];
  out.y[offset] = v;
}

struct StoreTransposedBody {
  template <Activation kActivation, ResidualMode kResidual>
  static void Run(const float* acc, size_t acc_stride, size_t rows, size_t channels,
                  const OutputBlock& out, const Epilogue& epilogue) {
    for (size_t r = 0; r < rows; ++r) {
      for (size_t c = 0; c < channels; ++c) {
        Finish<kActivation, kResidual>(acc[c * acc_stride + r], c, r * out.row_stride + c, out,
                                       epilogue);
      }
    }
  }
};

struct StoreChannelRowsBody {
  template <Activation kActivation, ResidualMode kResidual>
  static void Run(const float* acc, size_t acc_stride, size_t rows, size_t channels,
                  const OutputBlock& out, const Epilogue& epilogue) {
    for (size_t c = 0; c < channels; ++c) {
      for (size_t r = 0; r < rows; ++r) {
        Finish<kActivation, kResidual>(acc[c * acc_stride + r], c, c * out.row_stride + r, out,
                                       epilogue);
      }
    }
  }
};

struct StoreRowBody {
  template <Activation kActivation, ResidualMode kResidual>
  static void Run(const float* acc, size_t channels, const OutputBlock& out,
                  const Epilogue& epilogue) {
    for (size_t c = 0; c < channels; ++c) {
      Finish<kActivation, kResidual>(acc[c], c, c, out, epilogue);
    }
  }
};

}  // namespace

void StoreTransposedScalar(const float* acc, size_t acc_stride, size_t rows, size_t channels,
                           const OutputBlock& out, const Epilogue& epilogue) {
  WithEpilogue<StoreTransposedBody>(out, epilogue, acc, acc_stride, rows, channels, out,
                                    epilogue);
}

void StoreRowScalar(const float* acc, size_t channels, const OutputBlock& out,
                    const Epilogue& epilogue) {
  WithEpilogue<StoreRowBody>(out, epilogue, acc, channels, out, epilogue);
}

void StoreChannelRowsScalar(const float* acc, size_t acc_stride, size_t rows, size_t channels,
                            const OutputBlock& out, const Epilogue& epilogue) {
  WithEpilogue<StoreChannelRowsBody>(out, epilogue, acc, acc_stride, rows, channels, out,
                                     epilogue);
}

}  // namespace ortsparse::kernels
