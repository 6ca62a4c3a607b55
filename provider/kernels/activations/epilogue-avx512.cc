// AVX-512 output stage: epilogue-simd.h's on 16 lanes, 16x16 blocks.
#include "kernels/f32-spmm/simd-avx512.h"

#include "kernels/activations/epilogue-simd.h"

namespace ortsparse::kernels {
namespace {

struct Avx512Output : avx512::F32x16 {
  // Four channels' vectors at a time: an activation's arithmetic is one long dependency chain,
  // and four independent ones interleave where a single channel's rows, often only 1-3 vectors
  // long, left the FMA units waiting on latency (YOLOv5s-like at 80%, SiLU: about 1% faster).
  static constexpr size_t kInterleavedChannels = 4;
};

}  // namespace

void StoreTransposedAvx512(const float* acc, size_t acc_stride, size_t rows, size_t channels,
                           const OutputBlock& out, const Epilogue& epilogue) {
  WithEpilogue<StoreTransposedBody<Avx512Output>>(out, epilogue, acc, acc_stride, rows, channels,
                                                  out, epilogue);
}

void StoreRowAvx512(const float* acc, size_t channels, const OutputBlock& out,
                    const Epilogue& epilogue) {
  WithEpilogue<StoreRowBody<Avx512Output>>(out, epilogue, acc, channels, out, epilogue);
}

void StoreChannelRowsAvx512(const float* acc, size_t acc_stride, size_t rows, size_t channels,
                            const OutputBlock& out, const Epilogue& epilogue) {
  WithEpilogue<StoreChannelRowsBody<Avx512Output>>(out, epilogue, acc, acc_stride, rows,
                                                   channels, out, epilogue);
}

}  // namespace ortsparse::kernels
