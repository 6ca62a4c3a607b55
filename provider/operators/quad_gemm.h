// The quad-packed product both SparseQGemm and SparseMatMulInteger run: X's rows in tiles of the
// family's panel height, each tile's panel packed once by the tasks that need it, and every
// (tile, chunk of output channels) a parallel task whose int32 sums the op's output stage takes.
#pragma once

#include <onnxruntime_cxx_api.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "operators/op_support.h"
#include "operators/quad_tiles.h"
#include "operators/spmm_tiles.h"

namespace ortsparse {

// Sums stay exact in int32 while K * 255 * 128 < 2^31.
inline constexpr int64_t kMaxQuadGemmK = 65536;
// Output channels per task: their int32 sums for one tile stay within 16 KB of L1.
inline constexpr size_t kQuadGemmChunkChannels = 64;
static_assert(kernels::kVnniPanelRows <= kMaxPanelRows &&
              kernels::kAvx2QuadPanelRows <= kMaxPanelRows &&
              kernels::kScalarQuadPanelRows <= kMaxPanelRows);

// What SparseQGemm and SparseMatMulInteger read from their node alike: attributes K, N and format
// (quad4) and the quad-packed weights, laid out for the family's panels.
class QuadGemmWeights {
 public:
  // Throws std::invalid_argument for a malformed node.
  explicit QuadGemmWeights(const Ort::ConstKernelInfo& info);

  int64_t k() const { return k_; }
  int64_t n() const { return n_; }
  const QuadPackedWeights& packed() const { return packed_; }
  const QuadMicrokernels& microkernels() const { return *microkernels_; }
  kernels::QuadWeights View() const { return packed_.View(panel_offsets_); }

 private:
  int64_t k_ = 0;
  int64_t n_ = 0;
  QuadPackedWeights packed_;
  const QuadMicrokernels* microkernels_ = nullptr;
  // Where each stored quad's rows start in a panel of the family's height.
  std::vector<int32_t> panel_offsets_;
};

struct QuadGemmShape {
  size_t rows;
  size_t k;
  size_t n;
};

// Multiplies x (rows x K bytes, row-major) by `weights`, flipping the sign bit of every byte when
// flip_sign (int8 activations), and calls finish(acc, acc_stride, row0, rows, channel_begin,
// channels) once per task with the task's channel-major sums acc[c * acc_stride + r] of rows
// row0.. and channels channel_begin...
template <typename Finish>
void RunQuadGemm(Ort::KernelContext& context, const QuadGemmWeights& weights, const uint8_t* x,
                 size_t rows, bool flip_sign, const Finish& finish) {
  const QuadMicrokernels& mk = weights.microkernels();
  const kernels::QuadWeights view = weights.View();
  const QuadGemmShape shape = {rows, static_cast<size_t>(weights.k()),
                               static_cast<size_t>(weights.n())};
  struct Job {
    const QuadMicrokernels* mk;
    const kernels::QuadWeights* weights;
    const uint8_t* x;
    QuadGemmShape shape;
    bool flip_sign;
    size_t chunks;
    uint8_t* panels;  // one per tile
    size_t panel_bytes;
    PackProgress* panel_progress;  // one per tile
    const Finish* finish;
  };
  auto task = [](void* data, size_t index) {
    const Job& job = *static_cast<const Job*>(data);
    const QuadMicrokernels& kernels = *job.mk;
    const size_t tile = index / job.chunks;
    const size_t chunk = index % job.chunks;
    const size_t row0 = tile * kernels.panel_rows;
    const size_t rows = std::min(kernels.panel_rows, job.shape.rows - row0);
    uint8_t* panel = job.panels + tile * job.panel_bytes;
    PackOnce(job.panel_progress[tile], 1, 1, [&](size_t, size_t) {
      kernels.pack_panel(job.x + row0 * job.shape.k, job.shape.k, rows, job.shape.k,
                         job.flip_sign, panel);
    });
    const size_t channel_begin = chunk * kQuadGemmChunkChannels;
    const size_t channels = std::min(kQuadGemmChunkChannels, job.shape.n - channel_begin);
    alignas(64) int32_t acc[kQuadGemmChunkChannels * kMaxPanelRows];
    kernels.TileFor(rows)(panel, *job.weights, channel_begin, channel_begin + channels, acc);
    (*job.finish)(acc, kernels.panel_rows, row0, rows, channel_begin, channels);
  };

  Job job{&mk, &view, x, shape, flip_sign, CeilDiv(shape.n, kQuadGemmChunkChannels),
          nullptr, CeilDiv(shape.k, 4) * mk.panel_bytes_per_quad, nullptr, &finish};
  const size_t tiles = CeilDiv(shape.rows, mk.panel_rows);
  const ScratchBuffer panels(context, CeilDiv(tiles * job.panel_bytes, sizeof(float)));
  job.panels = reinterpret_cast<uint8_t*>(panels.data());
  const std::unique_ptr<PackProgress[]> panel_progress(new PackProgress[tiles]);
  job.panel_progress = panel_progress.get();
  context.ParallelFor(task, tiles * job.chunks, 0, &job);
}

}  // namespace ortsparse
