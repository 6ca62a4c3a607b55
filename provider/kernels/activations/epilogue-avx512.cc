// AVX-512 output stage: transposes 16x16 blocks of channel-major accumulators into rows of Y, or
// for NCHW outputs stores each channel's run as it is, and finishes them (bias, residual,
// activation) on the way.
#include "kernels/f32-spmm/simd-avx512.h"

#include <algorithm>

#include "kernels/activations/epilogue.h"
#include "kernels/activations/math-avx512.h"

namespace ortsparse::kernels {
namespace {

__mmask16 FirstLanes(size_t count) { return static_cast<__mmask16>((1u << count) - 1); }

// One vector of outputs, 16 channels of one row or 16 rows of one channel, from accumulator to Y.
// Everything the loops below keep constant is hoisted here, out of their way.
template <Activation kActivation, ResidualMode kResidual>
struct VectorFinisher {
  __m512 bias;
  __mmask16 lanes;
  avx512::ActivationParams params;

  void operator()(__m512 acc, const float* residual, float* y) const {
    __m512 v = _mm512_add_ps(acc, bias);
    if (kResidual == ResidualMode::kBeforeActivation) {
      v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(lanes, residual));
    }
    v = avx512::Activate<kActivation>(v, params);
    if (kResidual == ResidualMode::kAfterActivation) {
      v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(lanes, residual));
    }
    _mm512_mask_storeu_ps(y, lanes, v);
  }
};

template <Activation kActivation, ResidualMode kResidual>
VectorFinisher<kActivation, kResidual> MakeFinisher(const OutputBlock& out,
                                                    const Epilogue& epilogue, size_t c0,
                                                    size_t channels) {
  const __mmask16 lanes = FirstLanes(std::min<size_t>(16, channels - c0));
  return {out.bias != nullptr ? _mm512_maskz_loadu_ps(lanes, out.bias + c0) : _mm512_setzero_ps(),
          lanes, avx512::BroadcastParams(epilogue)};
}

struct StoreTransposedBody {
  template <Activation kActivation, ResidualMode kResidual>
  static void Run(const float* acc, size_t acc_stride, size_t rows, size_t channels,
                  const OutputBlock& out, const Epilogue& epilogue) {
    const size_t stride = out.row_stride;
    for (size_t c0 = 0; c0 < channels; c0 += 16) {
      const auto finish = MakeFinisher<kActivation, kResidual>(out, epilogue, c0, channels);
      float* y = out.y + c0;
      const float* residual = kResidual == ResidualMode::kNone ? nullptr : out.residual + c0;
      for (size_t r0 = 0; r0 < rows; r0 += 16) {
        // Channels past `channels` hold whatever the caller left there, never stored: they are
        // not even read, since garbage there is often denormal, and finishing a vector with a
        // denormal lane takes many times as long (SparseConv's grouped output took twice as long).
        __m512 block[16];
        for (size_t c = 0; c < 16; ++c) {
          block[c] = c0 + c < channels ? _mm512_loadu_ps(acc + (c0 + c) * acc_stride + r0)
                                       : _mm512_setzero_ps();
        }
        Transpose16x16(block);
        // A full block's rows stay in registers only if the loop over them is unrolled.
        auto finish_row = [&](size_t r) {
          const size_t offset = (r0 + r) * stride;
          finish(block[r], residual != nullptr ? residual + offset : nullptr, y + offset);
        };
        if (rows - r0 >= 16) {
#pragma GCC unroll 16
          for (size_t r = 0; r < 16; ++r) finish_row(r);
        } else {
          for (size_t r = 0; r < rows - r0; ++r) finish_row(r);
        }
      }
    }
  }
};

// Finishes channels [c, c + kChannels) of StoreChannelRowsBody's accumulators, a vector of each
// at a time.
template <Activation kActivation, ResidualMode kResidual, size_t kChannels>
void FinishChannelRows(const float* acc, size_t acc_stride, size_t rows, size_t c,
                       const OutputBlock& out, const avx512::ActivationParams& params) {
  __m512 bias[kChannels];
  for (size_t i = 0; i < kChannels; ++i) {
    bias[i] = out.bias != nullptr ? _mm512_set1_ps(out.bias[c + i]) : _mm512_setzero_ps();
  }
  for (size_t r0 = 0; r0 < rows; r0 += 16) {
    const __mmask16 lanes = FirstLanes(std::min<size_t>(16, rows - r0));
#pragma GCC unroll 4
    for (size_t i = 0; i < kChannels; ++i) {
      const VectorFinisher<kActivation, kResidual> finish{bias[i], lanes, params};
      // A run may end anywhere in acc (SparseConv stores each output row's part of a tile).
      const size_t offset = (c + i) * out.row_stride + r0;
      finish(_mm512_maskz_loadu_ps(lanes, acc + (c + i) * acc_stride + r0),
             kResidual == ResidualMode::kNone ? nullptr : out.residual + offset, out.y + offset);
    }
  }
}

struct StoreChannelRowsBody {
  // Four channels' vectors at a time: an activation's arithmetic is one long dependency chain,
  // and four independent ones interleave where a single channel's rows, often only 1-3 vectors
  // long, left the FMA units waiting on latency (YOLOv5s-like at 80%, SiLU: about 1% faster).
  static constexpr size_t kInterleavedChannels = 4;

  template <Activation kActivation, ResidualMode kResidual>
  static void Run(const float* acc, size_t acc_stride, size_t rows, size_t channels,
                  const OutputBlock& out, const Epilogue& epilogue) {
    const avx512::ActivationParams params = avx512::BroadcastParams(epilogue);
    size_t c = 0;
    for (; c + kInterleavedChannels <= channels; c += kInterleavedChannels) {
      FinishChannelRows<kActivation, kResidual, kInterleavedChannels>(acc, acc_stride, rows, c,
                                                                       out, params);
    }
    for (; c < channels; ++c) {
      FinishChannelRows<kActivation, kResidual, 1>(acc, acc_stride, rows, c, out, params);
    }
  }
};

struct StoreRowBody {
  template <Activation kActivation, ResidualMode kResidual>
  static void Run(const float* acc, size_t channels, const OutputBlock& out,
                  const Epilogue& epilogue) {
    for (size_t c0 = 0; c0 < channels; c0 += 16) {
      const auto finish = MakeFinisher<kActivation, kResidual>(out, epilogue, c0, channels);
      finish(_mm512_maskz_loadu_ps(finish.lanes, acc + c0),
             kResidual == ResidualMode::kNone ? nullptr : out.residual + c0, out.y + c0);
    }
  }
};

}  // namespace

void StoreTransposedAvx512(const float* acc, size_t acc_stride, size_t rows, size_t channels,
                           const OutputBlock& out, const Epilogue& epilogue) {
  WithEpilogue<StoreTransposedBody>(out, epilogue, acc, acc_stride, rows, channels, out,
                                    epilogue);
}

void StoreRowAvx512(const float* acc, size_t channels, const OutputBlock& out,
                    const Epilogue& epilogue) {
  WithEpilogue<StoreRowBody>(out, epilogue, acc, channels, out, epilogue);
}

void StoreChannelRowsAvx512(const float* acc, size_t acc_stride, size_t rows, size_t channels,
                            const OutputBlock& out, const Epilogue& epilogue) {
  WithEpilogue<StoreChannelRowsBody>(out, epilogue, acc, acc_stride, rows, channels, out,
                                     epilogue);
}

}  // namespace ortsparse::kernels
