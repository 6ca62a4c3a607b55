// Portable plane packer: element copies.
#include <algorithm>

#include "kernels/f32-spconv/planes-impl.h"

namespace ortsparse::kernels {
namespace {

struct ElementRuns {
  static void Copy(const float* row, int64_t width, int64_t first, size_t count, float* out) {
    GatherStridedRun(row, width, first, 1, count, out);
  }
  static void CopyEveryOther(const float* row, int64_t width, int64_t first, size_t count,
                             float* out) {
    GatherStridedRun(row, width, first, 2, count, out);
  }
  static void CopyEvenAndOdd(const float* row, int64_t width, int64_t first, size_t count,
                             float* even, float* odd) {
    GatherStridedRun(row, width, first, 2, count, even);
    GatherStridedRun(row, width, first + 1, 2, count, odd);
  }
  static void Zero(float* out, size_t count) { std::fill(out, out + count, 0.0f); }
};

}  // namespace

void PackInputPlanesScalar(const float* channels, const InputPlanes& planes_layout,
                           size_t first_plane_row, size_t channel_begin, size_t channel_end,
                           float* planes) {
  PackInputPlanesWith<ElementRuns>(channels, planes_layout, first_plane_row, channel_begin,
                                   channel_end, planes);
}

}  // namespace ortsparse::kernels
