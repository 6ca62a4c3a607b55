// The output stage, written once over a vector type (epilogue-avx2.cc: 8 lanes, epilogue-avx512.cc:
// 16): transposes blocks of channel-major accumulators into rows of Y, or for NCHW outputs stores
// each channel's run as it is, and finishes them (bias, residual, activation) on the way.
//
// V is the ISA's float vector (simd-avx2.h, simd-avx512.h) with kInterleavedChannels, how many
// channels' vectors StoreChannelRows finishes at a time.
#pragma once

#include <algorithm>
#include <cstddef>

#include "kernels/activations/epilogue.h"
#include "kernels/activations/math-simd.h"

namespace ortsparse::kernels {
// Internal linkage: each ISA's instantiations stay in the files compiled with its flags.
namespace {

// One vector of outputs, kLanes channels of one row or kLanes rows of one channel, from
// accumulator to Y. Everything the loops below keep constant is hoisted here, out of their way.
template <class V, Activation kActivation, ResidualMode kResidual>
struct VectorFinisher {
  typename V::Reg bias;
  typename V::Lanes lanes;
  ActivationParamsOf<V> params;
  // The output affine (OutputBlock::scale, shift); rare enough to cost a predictable branch
  // rather than doubling every instantiation.
  bool affine = false;
  typename V::Reg scale{};
  typename V::Reg shift{};

  void operator()(typename V::Reg acc, const float* residual, float* y) const {
    typename V::Reg v = V::Add(acc, bias);
    if (kResidual == ResidualMode::kBeforeActivation) {
      v = V::Add(v, V::LoadLanes(lanes, residual));
    }
    v = ActivateOf<V, kActivation>(v, params);
    if (affine) v = V::Fmadd(v, scale, shift);
    if (kResidual == ResidualMode::kAfterActivation) {
      v = V::Add(v, V::LoadLanes(lanes, residual));
    }
    V::StoreLanes(y, lanes, v);
  }
};

template <class V, Activation kActivation, ResidualMode kResidual>
VectorFinisher<V, kActivation, kResidual> MakeFinisher(const OutputBlock& out,
                                                       const Epilogue& epilogue, size_t c0,
                                                       size_t channels) {
  const typename V::Lanes lanes = V::FirstLanes(std::min<size_t>(V::kLanes, channels - c0));
  VectorFinisher<V, kActivation, kResidual> finish{
      out.bias != nullptr ? V::LoadLanes(lanes, out.bias + c0) : V::Zero(), lanes,
      BroadcastParamsOf<V>(epilogue)};
  if (out.scale != nullptr) {
    finish.affine = true;
    finish.scale = V::LoadLanes(lanes, out.scale + c0);
    finish.shift = V::LoadLanes(lanes, out.shift + c0);
  }
  return finish;
}

template <class V>
struct StoreTransposedBody {
  template <Activation kActivation, ResidualMode kResidual>
  static void Run(const float* acc, size_t acc_stride, size_t rows, size_t channels,
                  const OutputBlock& out, const Epilogue& epilogue) {
    constexpr size_t kLanes = V::kLanes;
    const size_t stride = out.row_stride;
    for (size_t c0 = 0; c0 < channels; c0 += kLanes) {
      const auto finish = MakeFinisher<V, kActivation, kResidual>(out, epilogue, c0, channels);
      float* y = out.y + c0;
      const float* residual = kResidual == ResidualMode::kNone ? nullptr : out.residual + c0;
      for (size_t r0 = 0; r0 < rows; r0 += kLanes) {
        // Channels past `channels` hold whatever the caller left there, never stored: they are
        // not even read, since garbage there is often denormal, and finishing a vector with a
        // denormal lane takes many times as long (SparseConv's grouped output took twice as long).
        typename V::Reg block[kLanes];
        for (size_t c = 0; c < kLanes; ++c) {
          block[c] = c0 + c < channels ? V::Load(acc + (c0 + c) * acc_stride + r0) : V::Zero();
        }
        V::Transpose(block);
        // A full block's rows stay in registers only if the loop over them is unrolled.
        auto finish_row = [&](size_t r) {
          const size_t offset = (r0 + r) * stride;
          finish(block[r], residual != nullptr ? residual + offset : nullptr, y + offset);
        };
        if (rows - r0 >= kLanes) {
#pragma GCC unroll 16
          for (size_t r = 0; r < kLanes; ++r) finish_row(r);
        } else {
          for (size_t r = 0; r < rows - r0; ++r) finish_row(r);
        }
      }
    }
  }
};

// Finishes channels [c, c + kChannels) of StoreChannelRowsBody's accumulators, a vector of each
// at a time.
template <class V, Activation kActivation, ResidualMode kResidual, size_t kChannels>
void FinishChannelRows(const float* acc, size_t acc_stride, size_t rows, size_t c,
                       const OutputBlock& out, const ActivationParamsOf<V>& params) {
  typename V::Reg bias[kChannels], scale[kChannels], shift[kChannels];
  const bool affine = out.scale != nullptr;
  for (size_t i = 0; i < kChannels; ++i) {
    bias[i] = out.bias != nullptr ? V::Set1(out.bias[c + i]) : V::Zero();
    scale[i] = affine ? V::Set1(out.scale[c + i]) : V::Zero();
    shift[i] = affine ? V::Set1(out.shift[c + i]) : V::Zero();
  }
  for (size_t r0 = 0; r0 < rows; r0 += V::kLanes) {
    const typename V::Lanes lanes = V::FirstLanes(std::min<size_t>(V::kLanes, rows - r0));
#pragma GCC unroll 4
    for (size_t i = 0; i < kChannels; ++i) {
      const VectorFinisher<V, kActivation, kResidual> finish{
          bias[i], lanes, params, affine, scale[i], shift[i]};
      // A run may end anywhere in acc (SparseConv stores each output row's part of a tile).
      const size_t offset = (c + i) * out.row_stride + r0;
      finish(V::LoadLanes(lanes, acc + (c + i) * acc_stride + r0),
             kResidual == ResidualMode::kNone ? nullptr : out.residual + offset, out.y + offset);
    }
  }
}

template <class V>
struct StoreChannelRowsBody {
  template <Activation kActivation, ResidualMode kResidual>
  static void Run(const float* acc, size_t acc_stride, size_t rows, size_t channels,
                  const OutputBlock& out, const Epilogue& epilogue) {
    constexpr size_t kInterleaved = V::kInterleavedChannels;
    const ActivationParamsOf<V> params = BroadcastParamsOf<V>(epilogue);
    size_t c = 0;
    for (; c + kInterleaved <= channels; c += kInterleaved) {
      FinishChannelRows<V, kActivation, kResidual, kInterleaved>(acc, acc_stride, rows, c, out,
                                                                 params);
    }
    for (; c < channels; ++c) {
      FinishChannelRows<V, kActivation, kResidual, 1>(acc, acc_stride, rows, c, out, params);
    }
  }
};

template <class V>
struct StoreRowBody {
  template <Activation kActivation, ResidualMode kResidual>
  static void Run(const float* acc, size_t channels, const OutputBlock& out,
                  const Epilogue& epilogue) {
    for (size_t c0 = 0; c0 < channels; c0 += V::kLanes) {
      const auto finish = MakeFinisher<V, kActivation, kResidual>(out, epilogue, c0, channels);
      finish(V::LoadLanes(finish.lanes, acc + c0),
             kResidual == ResidualMode::kNone ? nullptr : out.residual + c0, out.y + c0);
    }
  }
};

}  // namespace
}  // namespace ortsparse::kernels
