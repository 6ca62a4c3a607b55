// AVX2 output stage: epilogue-simd.h's on 8 lanes, 8x8 blocks.
#include <immintrin.h>

#include "kernels/activations/epilogue-simd.h"
#include "kernels/f32-spmm/simd-avx2.h"

namespace ortsparse::kernels {
namespace {

struct Avx2Output : avx2::F32x8 {
  // One channel's vectors at a time: interleaving channels was measured only on AVX-512.
  static constexpr size_t kInterleavedChannels = 1;
};

}  // namespace

void StoreTransposedAvx2(const float* acc, size_t acc_stride, size_t rows, size_t channels,
                         const OutputBlock& out, const Epilogue& epilogue) {
  WithEpilogue<StoreTransposedBody<Avx2Output>>(out, epilogue, acc, acc_stride, rows, channels,
                                                out, epilogue);
}

void StoreRowAvx2(const float* acc, size_t channels, const OutputBlock& out,
                  const Epilogue& epilogue) {
  WithEpilogue<StoreRowBody<Avx2Output>>(out, epilogue, acc, channels, out, epilogue);
}

void StoreChannelRowsAvx2(const float* acc, size_t acc_stride, size_t rows, size_t channels,
                          const OutputBlock& out, const Epilogue& epilogue) {
  WithEpilogue<StoreChannelRowsBody<Avx2Output>>(out, epilogue, acc, acc_stride, rows, channels,
                                                 out, epilogue);
}

}  // namespace ortsparse::kernels
