// CSR tile kernels for AVX-512: one output channel at a time, up to 64 rows (4 vectors).
#include "kernels/activations/math-simd.h"
#include "kernels/f32-spmm/simd-avx512.h"
#include "kernels/f32-spmm/spmm.h"
#include "kernels/f32-spmm/tiles-simd.h"

namespace ortsparse::kernels {

template <typename Rows, size_t kRows, bool kAccumulate>
void Spmm64x1Avx512(const float* base, const TileSegments<typename Rows::Index>& weights,
                    size_t segment_begin, size_t segment_end, float* acc) {
  SpmmCsrTile<avx512::F32x16, kAvx512PanelRows, Rows, kRows, kAccumulate>(
      base, weights, segment_begin, segment_end, acc);
}

ORTSPARSE_INSTANTIATE_TILE_KERNEL(Spmm64x1Avx512, kAvx512PanelRows, 16)

template <size_t kRows, bool kAccumulate, Activation kActivation, ResidualMode kResidual>
void Spmm64x1FinishAvx512(const float* base, const OffsetSegments& weights, size_t segment_begin,
                         size_t segment_end, const float* acc, const FinishedChannels& out) {
  constexpr size_t kVectors = kRows / 16;
  const ActivationParamsOf<avx512::F32x16> params = BroadcastParamsOf<avx512::F32x16>(out.epilogue);
  ForEachSegmentSum<avx512::F32x16, InputOffsets, kRows>(
      base, weights, segment_begin, segment_end,
      [&](size_t channel, const __m512* total) {
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
          value = ActivateOf<avx512::F32x16, kActivation>(value, params);
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
