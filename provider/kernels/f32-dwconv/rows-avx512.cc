#include "kernels/f32-spmm/simd-avx512.h"
// simd-avx512.h comes first: it includes the intrinsics under its diagnostic settings.
#include "kernels/f32-dwconv/rows-simd.h"

namespace ortsparse::kernels {

void DepthwiseRowsAvx512(const DepthwiseRows& rows, const Epilogue& epilogue) {
  DepthwiseRowsWith<avx512::F32x16>(rows, epilogue);
}

void DepthwiseRowsOfXAvx512(const DepthwiseRowsOfX& rows, const Epilogue& epilogue) {
  DepthwiseRowsOfXWith<avx512::F32x16>(rows, epilogue);
}

}  // namespace ortsparse::kernels
