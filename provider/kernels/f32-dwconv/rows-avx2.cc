#include "kernels/f32-dwconv/rows-simd.h"
#include "kernels/f32-spmm/simd-avx2.h"

namespace ortsparse::kernels {

void DepthwiseRowsAvx2(const DepthwiseRows& rows, const Epilogue& epilogue) {
  DepthwiseRowsWith<avx2::F32x8>(rows, epilogue);
}

void DepthwiseRowsOfXAvx2(const DepthwiseRowsOfX& rows, const Epilogue& epilogue) {
  DepthwiseRowsOfXWith<avx2::F32x8>(rows, epilogue);
}

}  // namespace ortsparse::kernels
