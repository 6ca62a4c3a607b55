// CSR tile kernels for AVX-512: one output channel at a time, up to 64 rows (4 vectors).
#include "kernels/f32-spmm/simd-avx512.h"

#include "kernels/activations/math-avx512.h"
#include "kernels/f32-spmm/spmm.h"

namespace ortsparse::kernels {
namespace {

// Computes each segment's products in registers and hands them to
// finish(segment's first channel, sums[kVectors]); before each segment, prefetch(the next
// segment's channel) may start fetching what finishing that one will touch.
template <typename Rows, size_t kRows, typename Finish, typename Prefetch>
void ForEachSegmentSum(const float* base, const TileSegments<typename Rows::Index>& weights,
                       size_t segment_begin, size_t segment_end, Finish&& finish,
                       Prefetch&& prefetch) {
  constexpr size_t kVectors = kRows / 16;
  // Every stored weight adds into the same kVectors accumulators, so a segment's FMAs form
  // dependency chains; narrow tiles split their weights over several accumulator sets. Four FMAs
  // in flight suffice: panel loads, not FMAs, bound this kernel, and more sets cost more to set up
  // and sum per segment.
  constexpr size_t kChains = (4 + kVectors - 1) / kVectors;
  const float* values = weights.values;
  const typename Rows::Index* indices = weights.input_indices;

  for (size_t s = segment_begin; s < segment_end; ++s) {
    if (s + 1 < segment_end) prefetch(static_cast<uint32_t>(weights.segment_channels[s + 1]));
    __m512 sum[kChains][kVectors];
    for (size_t c = 0; c < kChains; ++c) {
      for (size_t v = 0; v < kVectors; ++v) sum[c][v] = _mm512_setzero_ps();
    }
    auto accumulate = [&](size_t chain, size_t i) {
      const __m512 w = _mm512_set1_ps(values[i]);
      const float* row = base + static_cast<size_t>(indices[i]) * Rows::kScale;
      for (size_t v = 0; v < kVectors; ++v) {
        sum[chain][v] = _mm512_fmadd_ps(_mm512_loadu_ps(row + 16 * v), w, sum[chain][v]);
      }
    };

    size_t i = static_cast<uint32_t>(weights.segment_offsets[s]);
    const size_t end = static_cast<uint32_t>(weights.segment_offsets[s + 1]);
    for (; i + kChains <= end; i += kChains) {
#pragma GCC unroll 4
      for (size_t c = 0; c < kChains; ++c) accumulate(c, i + c);
    }
#pragma GCC unroll 4
    for (size_t c = 0; c + 1 < kChains; ++c) {
      if (i + c < end) accumulate(c, i + c);
    }

    __m512 total[kVectors];
    for (size_t v = 0; v < kVectors; ++v) {
      total[v] = sum[0][v];
      for (size_t c = 1; c < kChains; ++c) total[v] = _mm512_add_ps(total[v], sum[c][v]);
    }
    finish(static_cast<uint32_t>(weights.segment_channels[s]), total);
  }
}

}  // namespace

template <typename Rows, size_t kRows, bool kAccumulate>
void Spmm64x1Avx512(const float* base, const TileSegments<typename Rows::Index>& weights,
                   size_t segment_begin, size_t segment_end, float* acc) {
  ForEachSegmentSum<Rows, kRows>(
      base, weights, segment_begin, segment_end, [&](size_t channel, const __m512* total) {
        float* out = acc + channel * kAvx512PanelRows;
        // Earlier blocks' sums join last, so that no FMA waits for them.
        for (size_t v = 0; v < kRows / 16; ++v) {
          __m512 sum = total[v];
          if (kAccumulate) sum = _mm512_add_ps(sum, _mm512_load_ps(out + 16 * v));
          _mm512_store_ps(out + 16 * v, sum);
        }
      },
      // acc is this task's own and stays in L1.
      [](size_t) {});
}

ORTSPARSE_INSTANTIATE_TILE_KERNEL(Spmm64x1Avx512, kAvx512PanelRows, 16)

template <size_t kRows, bool kAccumulate, Activation kActivation, ResidualMode kResidual>
void Spmm64x1FinishAvx512(const float* base, const OffsetSegments& weights, size_t segment_begin,
                         size_t segment_end, const float* acc, const FinishedChannels& out) {
  constexpr size_t kVectors = kRows / 16;
  const avx512::ActivationParams params = avx512::BroadcastParams(out.epilogue);
  ForEachSegmentSum<InputOffsets, kRows>(
      base, weights, segment_begin, segment_end, [&](size_t channel, const __m512* total) {
        const float* earlier = acc + channel * kAvx512PanelRows;
        const __m512 bias =
            out.bias != nullptr ? _mm512_set1_ps(out.bias[channel]) : _mm512_setzero_ps();
        float* y = out.y + channel * out.channel_stride;
        const float* residual = kResidual == ResidualMode::kNone
                                    ? nullptr
                                    : out.residual + channel * out.channel_stride;
        for (size_t v = 0; v < kVectors; ++v) {
          __m512 value = total[v];
          if (kAccumulate) value = _mm512_add_ps(value, _mm512_load_ps(earlier + 16 * v));
          value = _mm512_add_ps(value, bias);
          const __mmask16 lanes = v + 1 == kVectors ? out.last_lanes : __mmask16{0xffff};
          if (kResidual == ResidualMode::kBeforeActivation) {
            value = _mm512_add_ps(value, _mm512_maskz_loadu_ps(lanes, residual + 16 * v));
          }
          value = avx512::Activate<kActivation>(value, params);
          if (kResidual == ResidualMode::kAfterActivation) {
            value = _mm512_add_ps(value, _mm512_maskz_loadu_ps(lanes, residual + 16 * v));
          }
          _mm512_mask_storeu_ps(y + 16 * v, lanes, value);
        }
      },
      // A channel's rows of Y and R lie a whole plane apart, in another page, where the hardware
      // prefetchers do not follow; fetching them one segment ahead hides their misses (+3-4% on
      // ResNet-50, whose residual blocks write and read megabytes per layer).
      [&](size_t channel) {
        const char* y = reinterpret_cast<const char*>(out.y + channel * out.channel_stride);
        const char* residual =
            kResidual == ResidualMode::kNone
                ? nullptr
                : reinterpret_cast<const char*>(out.residual + channel * out.channel_stride);
        for (size_t line = 0; line < kRows * sizeof(float); line += 64) {
          _mm_prefetch(y + line, _MM_HINT_ET0);
          if (residual != nullptr) _mm_prefetch(residual + line, _MM_HINT_T0);
        }
      });
}

#define ORTSPARSE_INSTANTIATE_FINISH(rows, accumulate, activation)                           \
  template void Spmm64x1FinishAvx512<rows, accumulate, activation, ResidualMode::kNone>(      \
      const float*, const OffsetSegments&, size_t, size_t, const float*,                     \
      const FinishedChannels&);                                                              \
  template void Spmm64x1FinishAvx512<rows, accumulate, activation,                            \
                                    ResidualMode::kBeforeActivation>(                        \
      const float*, const OffsetSegments&, size_t, size_t, const float*,                     \
      const FinishedChannels&);                                                              \
  template void Spmm64x1FinishAvx512<rows, accumulate, activation,                            \
                                    ResidualMode::kAfterActivation>(                         \
      const float*, const OffsetSegments&, size_t, size_t, const float*,                     \
      const FinishedChannels&);
#define ORTSPARSE_INSTANTIATE_FINISH_HEIGHTS(accumulate, activation) \
  ORTSPARSE_INSTANTIATE_FINISH(16, accumulate, activation)           \
  ORTSPARSE_INSTANTIATE_FINISH(32, accumulate, activation)           \
  ORTSPARSE_INSTANTIATE_FINISH(48, accumulate, activation)           \
  ORTSPARSE_INSTANTIATE_FINISH(64, accumulate, activation)
ORTSPARSE_INSTANTIATE_FINISH_HEIGHTS(false, Activation::kNone)
ORTSPARSE_INSTANTIATE_FINISH_HEIGHTS(true, Activation::kNone)
ORTSPARSE_INSTANTIATE_FINISH_HEIGHTS(false, Activation::kRelu)
ORTSPARSE_INSTANTIATE_FINISH_HEIGHTS(true, Activation::kRelu)

}  // namespace ortsparse::kernels
