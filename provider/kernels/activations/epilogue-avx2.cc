// AVX2 output stage: transposes 8x8 blocks of channel-major accumulators into rows of Y, or for
// NCHW outputs stores each channel's run as it is, and finishes them (bias, residual, activation)
// on the way.
#include <immintrin.h>

#include <algorithm>

#include "kernels/activations/epilogue.h"
#include "kernels/activations/math-avx2.h"
#include "kernels/f32-spmm/simd-avx2.h"

namespace ortsparse::kernels {
namespace {

// One vector of outputs (8 channels of one row, or 8 rows of one channel) on its way to Y.
template <Activation kActivation, ResidualMode kResidual>
struct VectorFinisher {
  __m256 bias;
  __m256i lanes;
  avx2::ActivationParams params;

  void operator()(__m256 acc, const float* residual, float* y) const {
    __m256 v = _mm256_add_ps(acc, bias);
    if (kResidual == ResidualMode::kBeforeActivation) {
      v = _mm256_add_ps(v, _mm256_maskload_ps(residual, lanes));
    }
    v = avx2::Activate<kActivation>(v, params);
    if (kResidual == ResidualMode::kAfterActivation) {
      v = _mm256_add_ps(v, _mm256_maskload_ps(residual, lanes));
    }
    _mm256_maskstore_ps(y, lanes, v);
  }
};

template <Activation kActivation, ResidualMode kResidual>
VectorFinisher<kActivation, kResidual> MakeFinisher(const OutputBlock& out,
                                                    const Epilogue& epilogue, size_t c0,
                                                    size_t channels) {
  const __m256i lanes = FirstLanesMask(std::min<size_t>(8, channels - c0));
  return {out.bias != nullptr ? _mm256_maskload_ps(out.bias + c0, lanes) : _mm256_setzero_ps(),
          lanes, avx2::BroadcastParams(epilogue)};
}

struct StoreTransposedBody {
  template <Activation kActivation, ResidualMode kResidual>
  static void Run(const float* acc, size_t acc_stride, size_t rows, size_t channels,
                  const OutputBlock& out, const Epilogue& epilogue) {
    const size_t stride = out.row_stride;
    for (size_t c0 = 0; c0 < channels; c0 += 8) {
      const auto finish = MakeFinisher<kActivation, kResidual>(out, epilogue, c0, channels);
      float* y = out.y + c0;
      const float* residual = kResidual == ResidualMode::kNone ? nullptr : out.residual + c0;
      for (size_t r0 = 0; r0 < rows; r0 += 8) {
        // Channels past `channels` hold whatever the caller left there, never stored, and are
        // not read: denormal garbage would slow down the whole vector's finishing many times.
        __m256 block[8];
        for (size_t c = 0; c < 8; ++c) {
          block[c] = c0 + c < channels ? _mm256_loadu_ps(acc + (c0 + c) * acc_stride + r0)
                                       : _mm256_setzero_ps();
        }
        Transpose8x8(block);
        // A full block's rows stay in registers only if the loop over them is unrolled.
        auto finish_row = [&](size_t r) {
          const size_t offset = (r0 + r) * stride;
          finish(block[r], residual != nullptr ? residual + offset : nullptr, y + offset);
        };
        if (rows - r0 >= 8) {
#pragma GCC unroll 8
          for (size_t r = 0; r < 8; ++r) finish_row(r);
        } else {
          for (size_t r = 0; r < rows - r0; ++r) finish_row(r);
        }
      }
    }
  }
};

struct StoreChannelRowsBody {
  template <Activation kActivation, ResidualMode kResidual>
  static void Run(const float* acc, size_t acc_stride, size_t rows, size_t channels,
                  const OutputBlock& out, const Epilogue& epilogue) {
    const avx2::ActivationParams params = avx2::BroadcastParams(epilogue);
    for (size_t c = 0; c < channels; ++c) {
      const __m256 bias = out.bias != nullptr ? _mm256_set1_ps(out.bias[c]) : _mm256_setzero_ps();
      const float* channel_acc = acc + c * acc_stride;
      const size_t offset = c * out.row_stride;
      for (size_t r0 = 0; r0 < rows; r0 += 8) {
        const VectorFinisher<kActivation, kResidual> finish{
            bias, FirstLanesMask(std::min<size_t>(8, rows - r0)), params};
        // A run may end anywhere in acc (SparseConv stores each output row's part of a tile).
        finish(_mm256_maskload_ps(channel_acc + r0, finish.lanes),
               kResidual == ResidualMode::kNone ? nullptr : out.residual + offset + r0,
               out.y + offset + r0);
      }
    }
  }
};

struct StoreRowBody {
  template <Activation kActivation, ResidualMode kResidual>
  static void Run(const float* acc, size_t channels, const OutputBlock& out,
                  const Epilogue& epilogue) {
    for (size_t c0 = 0; c0 < channels; c0 += 8) {
      const auto finish = MakeFinisher<kActivation, kResidual>(out, epilogue, c0, channels);
      finish(_mm256_maskload_ps(acc + c0, finish.lanes),
             kResidual == ResidualMode::kNone ? nullptr : out.residual + c0, out.y + c0);
    }
  }
};

}  // namespace

void StoreTransposedAvx2(const float* acc, size_t acc_stride, size_t rows, size_t channels,
                         const OutputBlock& out, const Epilogue& epilogue) {
  WithEpilogue<StoreTransposedBody>(out, epilogue, acc, acc_stride, rows, channels, out,
                                    epilogue);
}

void StoreRowAvx2(const float* acc, size_t channels, const OutputBlock& out,
                  const Epilogue& epilogue) {
  WithEpilogue<StoreRowBody>(out, epilogue, acc, channels, out, epilogue);
}

void StoreChannelRowsAvx2(const float* acc, size_t acc_stride, size_t rows, size_t channels,
                          const OutputBlock& out, const Epilogue& epilogue) {
  WithEpilogue<StoreChannelRowsBody>(out, epilogue, acc, acc_stride, rows, channels, out,
                                     epilogue);
}

}  // namespace ortsparse::kernels
