#include "operators/sparse_gemm.h"

#include <algorithm>
#include <memory>
#include <stdexcept>
#include <utility>

namespace ortsparse {
namespace {

// Row-path work item: this many output channels of one row.
constexpr size_t kRowTaskChannels = 256;
// The row kernels' indices are 16 bits, counted from 0, so they serve only K up to this.
constexpr size_t kMaxRowKernelK = size_t{1} << 16;

// Everything one Compute call's parallel tasks read; tasks write disjoint parts of Y and panels.
struct Job {
  const SpmmMicrokernels* microkernels;
  TileKernels<uint16_t> tile_kernels;
  kernels::SpmvRowFn row_kernel;
  kernels::SparseWeights weights;
  const TileWeights* tile_weights;
  kernels::WeightSegments segments;
  kernels::Epilogue epilogue;
  size_t block_size;
  const float* x;
  const float* bias;
  const float* residual;
  const OutputAffine* affine;  // or null
  float* y;
  size_t rows;
  size_t k;
  size_t n;
  float* panels;  // tile path: one panel of k * panel_rows floats per tile
  PackProgress* panel_progress;  // one per tile
  size_t channel_chunks;  // row path: tasks per row

  kernels::OutputBlock Output(size_t row, size_t channel) const {
    const size_t offset = row * n + channel;
    return WithAffine({y + offset, residual != nullptr ? residual + offset : nullptr,
                       bias != nullptr ? bias + channel : nullptr, n},
                      affine, channel);
  }
  size_t FirstGroup(size_t channel) const { return channel / block_size; }
  size_t EndGroup(size_t channel_end) const { return CeilDiv(channel_end, block_size); }
};

void TileTask(void* data, size_t task) {
  const Job& job = *static_cast<const Job*>(data);
  const SpmmMicrokernels& mk = *job.microkernels;
  const TileWeights& tw = *job.tile_weights;
  const size_t tile = task / tw.chunks;
  const size_t chunk = task % tw.chunks;
  const size_t row0 = tile * mk.panel_rows;
  const size_t rows = std::min(mk.panel_rows, job.rows - row0);
  float* panel = job.panels + tile * job.k * mk.panel_rows;
  PackOnce(job.panel_progress[tile], job.k, kPackTaskColumns, [&](size_t k_begin, size_t k_end) {
    mk.pack_panel(job.x + row0 * job.k, job.k, rows, k_begin, k_end, panel);
  });

  alignas(64) float acc[kMaxChunkChannels * kMaxPanelRows];
  MultiplyTile(mk, job.tile_kernels, tw, job.segments, panel, tw.k_block_rows * mk.panel_rows, rows,
               chunk, acc);
  const size_t chunk_begin = tw.ChunkBegin(chunk);
  const size_t chunk_end = std::min(job.n, tw.ChunkBegin(chunk + 1));
  for (size_t n0 = chunk_begin; n0 < chunk_end; n0 += kStoreChannels) {
    mk.store_transposed(acc + (n0 - chunk_begin) * mk.panel_rows, mk.panel_rows, rows,
                        std::min(kStoreChannels, chunk_end - n0), job.Output(row0, n0),
                        job.epilogue);
  }
}

void RowTask(void* data, size_t task) {
  const Job& job = *static_cast<const Job*>(data);
  const size_t row = task / job.channel_chunks;
  const size_t n0 = (task % job.channel_chunks) * kRowTaskChannels;
  const size_t n1 = std::min(job.n, n0 + kRowTaskChannels);
  alignas(64) float acc[kRowTaskChannels];
  job.row_kernel(job.x + row * job.k, job.weights, job.FirstGroup(n0), job.EndGroup(n1), acc);
  job.microkernels->store_row(acc, n1 - n0, job.Output(row, n0), job.epilogue);
}

}  // namespace

SparseGemmKernel::SparseGemmKernel(const Ort::ConstKernelInfo& info) {
  matrix_ = ReadSparseMatrixAttributes(info);
  threading_ = ReadThreading(info);
  PackedWeights packed = ReadPackedWeights(info, matrix_);
  constant_bias_ = ReadConstantBias(info, matrix_.n);
  output_affine_ = ReadOutputAffine(info, matrix_.n);
  microkernels_ = &SelectMicrokernels();
  tile_kernels_ = PanelTileKernelsFor(*microkernels_, matrix_.block_size);
  row_kernel_ = matrix_.block_size == 4 ? microkernels_->block4_row : microkernels_->csr_row;
  tile_weights_ = BuildTileWeights(packed, matrix_, *microkernels_);
  BuildRowWeights(std::move(packed));
}

void SparseGemmKernel::BuildRowWeights(PackedWeights&& packed) {
  if (static_cast<size_t>(matrix_.k) > kMaxRowKernelK) return;
  row_weights_.values = std::move(packed.values);
  row_weights_.group_offsets = std::move(packed.group_offsets);
  row_weights_.input_indices.assign(packed.input_indices.begin(), packed.input_indices.end());
}

void SparseGemmKernel::Compute(Ort::KernelContext& context) const {
  const Ort::ConstValue x = context.GetInput(kInputX);
  const std::vector<int64_t> x_shape = x.GetTensorTypeAndShapeInfo().GetShape();
  const auto [y_shape, rows] = MatrixProductShape(x_shape, matrix_.k, matrix_.n);

  Job job{};
  job.bias = BiasForRun(context, constant_bias_, matrix_.n);
  job.residual = ResidualForRun(context, y_shape);
  job.affine = output_affine_.has_value() ? &*output_affine_ : nullptr;
  Ort::UnownedValue y = context.GetOutput(0, y_shape);
  if (rows == 0) return;

  job.microkernels = microkernels_;
  job.tile_kernels = tile_kernels_;
  job.row_kernel = row_kernel_;
  job.weights = row_weights_.View();
  job.tile_weights = &tile_weights_;
  job.segments = tile_weights_.View();
  job.epilogue = matrix_.epilogue;
  job.block_size = matrix_.block_size;
  job.x = x.GetTensorData<float>();
  job.y = y.GetTensorMutableData<float>();
  job.rows = rows;
  job.k = static_cast<size_t>(matrix_.k);
  job.n = static_cast<size_t>(matrix_.n);

  if (rows <= microkernels_->row_kernel_max_rows && !row_weights_.group_offsets.empty()) {
    job.channel_chunks = CeilDiv(job.n, kRowTaskChannels);
    RunTasks(context, threading_, RowTask, rows * job.channel_chunks, &job);
    return;
  }

  const size_t panel_rows = microkernels_->panel_rows;
  const size_t tiles = CeilDiv(rows, panel_rows);
  const ScratchBuffer panels(context, tiles * job.k * panel_rows);
  job.panels = panels.data();
  const std::unique_ptr<PackProgress[]> panel_progress(new PackProgress[tiles]);
  job.panel_progress = panel_progress.get();
  RunTasks(context, threading_, TileTask, tiles * tile_weights_.chunks, &job);
}

}  // namespace ortsparse
