// Portable quad plane packer.
#include "kernels/u8s8-spconv/planes-impl.h"

namespace ortsparse::kernels {
namespace {

struct ScalarInterleave {
  static void Run(const QuadRow& row, int64_t first, size_t stride, size_t count, uint32_t flip,
                  uint32_t pad, uint32_t* out) {
    InterleaveRunScalar(row, first, stride, count, flip, pad, out);
  }
};

}  // namespace

void PackQuadPlanesScalar(const QuadPlanesSource& source, const InputPlanes& layout,
                          size_t quad_begin, size_t quad_end, uint32_t* planes) {
  PackQuadPlanesWith<ScalarInterleave>(source, layout, quad_begin, quad_end, planes);
}

}  // namespace ortsparse::kernels
