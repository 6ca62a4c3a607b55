#include "operators/sparse_gemm.h"

#include <emmintrin.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <exception>
#include <limits>
#include <memory>
#include <new>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <utility>

#include "isa/cpu_features.h"

namespace ortsparse {
namespace {

using kernels::Activation;

constexpr size_t kMaxPanelRows = kernels::kAvx512PanelRows;
static_assert(kernels::kAvx2PanelRows <= kMaxPanelRows &&
              kernels::kScalarPanelRows <= kMaxPanelRows);
// Output channels per call of the output stage: it transposes 16x16 blocks.
constexpr size_t kStoreChannels = 16;
// Row-path work item: this many output channels of one row.
constexpr size_t kRowTaskChannels = 256;
// Panel-packing share: this many input features of one panel.
constexpr size_t kPackTaskColumns = 128;
// Tile-path chunks: about 8 per weight matrix, so that ORT's dynamic scheduling evens out the
// threads even with one tile, within bounds that keep segment ordering effective (wider) and a
// chunk's accumulators (on the stack, hot in cache from task to task) within 32 KB (narrower).
constexpr size_t kChunksPerMatrix = 8;
constexpr size_t kMinChunkChannels = 64;
constexpr size_t kMaxChunkChannels = 128;
// Weight indices are 16 bits: the tile kernels' count from their block of input features, the
// row kernels' from 0 (so these serve only K up to this).
constexpr size_t kMaxBlockRows = size_t{1} << 16;
// Blocks of input features trade L2 traffic for per-segment overhead (accumulator reload, loop
// setup); below this many stored weights per segment, on average, the overhead wins.
constexpr size_t kMinMeanSegmentLength = 8;
// A block's panel rows take two thirds of L1, the rest holding accumulators and weights; this much
// when the CPU does not report its L1 size.
constexpr size_t kDefaultL1PanelBytes = 32 * 1024;

// Row-kernel limits: the rows below which gathering each row beats one narrow tile, measured on
// 1024x1024 weights at 90% sparsity (a narrow tile costs about as much as that many rows).
const SpmmMicrokernels kAvx512Microkernels = {
    kernels::kAvx512PanelRows,
    16,
    2,
    kernels::PackPanelAvx512,
    {kernels::SpmmCsrAvx512<16, false>, kernels::SpmmCsrAvx512<32, false>,
     kernels::SpmmCsrAvx512<48, false>, kernels::SpmmCsrAvx512<64, false>},
    {kernels::SpmmCsrAvx512<16, true>, kernels::SpmmCsrAvx512<32, true>,
     kernels::SpmmCsrAvx512<48, true>, kernels::SpmmCsrAvx512<64, true>},
    {kernels::SpmmBlock4Avx512<16, false>, kernels::SpmmBlock4Avx512<32, false>,
     kernels::SpmmBlock4Avx512<48, false>, kernels::SpmmBlock4Avx512<64, false>},
    {kernels::SpmmBlock4Avx512<16, true>, kernels::SpmmBlock4Avx512<32, true>,
     kernels::SpmmBlock4Avx512<48, true>, kernels::SpmmBlock4Avx512<64, true>},
    kernels::SpmvCsrAvx512,
    kernels::SpmvBlock4Avx512,
    kernels::StoreTransposedAvx512,
    kernels::StoreRowAvx512,
};

const SpmmMicrokernels kAvx2Microkernels = {
    kernels::kAvx2PanelRows,
    8,
    2,
    kernels::PackPanelAvx2,
    {kernels::SpmmCsrAvx2<8, false>, kernels::SpmmCsrAvx2<16, false>,
     kernels::SpmmCsrAvx2<24, false>, kernels::SpmmCsrAvx2<32, false>},
    {kernels::SpmmCsrAvx2<8, true>, kernels::SpmmCsrAvx2<16, true>, kernels::SpmmCsrAvx2<24, true>,
     kernels::SpmmCsrAvx2<32, true>},
    {kernels::SpmmBlock4Avx2<8, false>, kernels::SpmmBlock4Avx2<16, false>,
     kernels::SpmmBlock4Avx2<24, false>, kernels::SpmmBlock4Avx2<32, false>},
    {kernels::SpmmBlock4Avx2<8, true>, kernels::SpmmBlock4Avx2<16, true>,
     kernels::SpmmBlock4Avx2<24, true>, kernels::SpmmBlock4Avx2<32, true>},
    kernels::SpmvCsrAvx2,
    kernels::SpmvBlock4Avx2,
    kernels::StoreTransposedAvx2,
    kernels::StoreRowAvx2,
};

const SpmmMicrokernels kScalarMicrokernels = {
    kernels::kScalarPanelRows,
    kernels::kScalarPanelRows,
    7,
    kernels::PackPanelScalar,
    {kernels::SpmmCsrScalar<false>},
    {kernels::SpmmCsrScalar<true>},
    {kernels::SpmmBlock4Scalar<false>},
    {kernels::SpmmBlock4Scalar<true>},
    kernels::SpmvCsrScalar,
    kernels::SpmvBlock4Scalar,
    kernels::StoreTransposedScalar,
    kernels::StoreRowScalar,
};

size_t CeilDiv(size_t a, size_t b) { return (a + b - 1) / b; }
size_t RoundUp(size_t a, size_t b) { return CeilDiv(a, b) * b; }

std::string ShapeString(const std::vector<int64_t>& shape) {
  std::ostringstream s;
  s << '[';
  for (size_t i = 0; i < shape.size(); ++i) s << (i ? ", " : "") << shape[i];
  s << ']';
  return s.str();
}

// Optional attributes: ORT reports a missing one as an error status, which here means "absent".
std::optional<int64_t> IntAttribute(const OrtKernelInfo* info, const char* name) {
  int64_t value = 0;
  Ort::Status status{Ort::GetApi().KernelInfoGetAttribute_int64(info, name, &value)};
  if (!status.IsOK()) return std::nullopt;
  return value;
}

std::optional<float> FloatAttribute(const OrtKernelInfo* info, const char* name) {
  float value = 0;
  Ort::Status status{Ort::GetApi().KernelInfoGetAttribute_float(info, name, &value)};
  if (!status.IsOK()) return std::nullopt;
  return value;
}

std::optional<std::string> StringAttribute(const OrtKernelInfo* info, const char* name) {
  size_t size = 0;
  Ort::Status status{Ort::GetApi().KernelInfoGetAttribute_string(info, name, nullptr, &size)};
  if (!status.IsOK()) return std::nullopt;
  std::string value(size, '\0');
  status =
      Ort::Status{Ort::GetApi().KernelInfoGetAttribute_string(info, name, value.data(), &size)};
  if (!status.IsOK()) return std::nullopt;
  value.resize(size > 0 ? size - 1 : 0);  // drop the terminating '\0'
  return value;
}

std::optional<Activation> ParseActivation(const std::string& name) {
  static const std::pair<const char*, Activation> kNames[] = {
      {"none", Activation::kNone},         {"relu", Activation::kRelu},
      {"clip", Activation::kClip},         {"gelu", Activation::kGelu},
      {"gelu_tanh", Activation::kGeluTanh}, {"sigmoid", Activation::kSigmoid},
      {"silu", Activation::kSilu},
  };
  for (const auto& [candidate, activation] : kNames) {
    if (name == candidate) return activation;
  }
  return std::nullopt;
}

// A constant 1-D input of the expected element type, copied out of ORT's initializer.
template <typename T>
std::vector<T> ReadConstantVector(const Ort::ConstKernelInfo& info, size_t index,
                                  const char* name) {
  int is_constant = 0;
  Ort::ConstValue value{nullptr};
  if (index < info.GetInputCount()) value = info.GetTensorConstantInput(index, &is_constant);
  if (!is_constant || value == nullptr) {
    throw std::invalid_argument(std::string(name) + " (input " + std::to_string(index) +
                                ") must be a constant initializer");
  }
  const Ort::TensorTypeAndShapeInfo type_shape = value.GetTensorTypeAndShapeInfo();
  const std::vector<int64_t> shape = type_shape.GetShape();
  if (shape.size() != 1) {
    throw std::invalid_argument(std::string(name) + " must be 1-D, got shape " +
                                ShapeString(shape));
  }
  const T* data = value.GetTensorData<T>();
  return std::vector<T>(data, data + shape[0]);
}

// Scratch memory from the session's CPU allocator (its arena reuses blocks between runs), aligned
// for full-vector loads.
class ScratchBuffer {
 public:
  ScratchBuffer(const Ort::KernelContext& context, size_t floats) {
    const Ort::MemoryInfo cpu = Ort::MemoryInfo::CreateCpu(OrtArenaAllocator, OrtMemTypeDefault);
    allocator_ = context.GetAllocator(*cpu);
    raw_ = allocator_->Alloc(allocator_, floats * sizeof(float) + kAlignment);
    if (raw_ == nullptr) {
      Ort::GetApi().ReleaseAllocator(allocator_);
      throw std::bad_alloc();
    }
    const uintptr_t address = reinterpret_cast<uintptr_t>(raw_);
    data_ = reinterpret_cast<float*>((address + kAlignment - 1) & ~(kAlignment - 1));
  }
  ~ScratchBuffer() {
    allocator_->Free(allocator_, raw_);
    Ort::GetApi().ReleaseAllocator(allocator_);
  }
  ScratchBuffer(const ScratchBuffer&) = delete;
  ScratchBuffer& operator=(const ScratchBuffer&) = delete;

  float* data() const { return data_; }

 private:
  static constexpr uintptr_t kAlignment = 64;
  OrtAllocator* allocator_ = nullptr;
  void* raw_ = nullptr;
  float* data_ = nullptr;
};

// A tile's panel is packed by the tasks that need it: whichever of them arrive first claim its
// chunks of input features, and each waits until the whole panel is there. One ParallelFor per call
// instead of a packing one and a computing one saves a dispatch of ORT's pool, and a wake-up of its
// workers when they have gone to sleep between runs.
struct PanelProgress {
  std::atomic<size_t> next_chunk{0};
  std::atomic<size_t> packed_chunks{0};
};

// Everything one Compute call's parallel tasks read; tasks write disjoint parts of Y and panels.
struct Job {
  const SpmmMicrokernels* microkernels;
  const kernels::SpmmTileFn* tile_kernels;
  const kernels::SpmmTileFn* accumulating_tile_kernels;
  kernels::SpmvRowFn row_kernel;
  kernels::SparseWeights weights;
  const TileWeights* tile_weights;
  kernels::WeightSegments segments;
  kernels::Epilogue epilogue;
  size_t block_size;
  const float* x;
  const float* bias;
  const float* residual;
  float* y;
  size_t rows;
  size_t k;
  size_t n;
  float* panels;  // tile path: one panel of k * panel_rows floats per tile
  PanelProgress* panel_progress;  // one per tile
  size_t tiles;
  size_t pack_chunks;     // chunks of input features per panel
  size_t channel_chunks;  // row path: tasks per row

  kernels::OutputBlock Output(size_t row, size_t channel) const {
    const size_t offset = row * n + channel;
    return {y + offset, residual != nullptr ? residual + offset : nullptr,
            bias != nullptr ? bias + channel : nullptr, n};
  }
  size_t FirstGroup(size_t channel) const { return channel / block_size; }
  size_t EndGroup(size_t channel_end) const { return CeilDiv(channel_end, block_size); }
};

void PackPanel(const Job& job, size_t tile) {
  const size_t panel_rows = job.microkernels->panel_rows;
  const size_t row0 = tile * panel_rows;
  PanelProgress& progress = job.panel_progress[tile];
  for (size_t chunk; (chunk = progress.next_chunk.fetch_add(1, std::memory_order_relaxed)) <
                     job.pack_chunks;) {
    const size_t k_begin = chunk * kPackTaskColumns;
    job.microkernels->pack_panel(job.x + row0 * job.k, job.k,
                                 std::min(panel_rows, job.rows - row0), k_begin,
                                 std::min(job.k, k_begin + kPackTaskColumns),
                                 job.panels + tile * job.k * panel_rows);
    progress.packed_chunks.fetch_add(1, std::memory_order_release);
  }
  // Others still pack their last chunks, a microsecond or two of work each.
  while (progress.packed_chunks.load(std::memory_order_acquire) < job.pack_chunks) _mm_pause();
}

void TileTask(void* data, size_t task) {
  const Job& job = *static_cast<const Job*>(data);
  const SpmmMicrokernels& mk = *job.microkernels;
  const TileWeights& tw = *job.tile_weights;
  const size_t tile = task / tw.chunks;
  const size_t chunk = task % tw.chunks;
  const size_t row0 = tile * mk.panel_rows;
  const size_t rows = std::min(mk.panel_rows, job.rows - row0);
  const size_t variant = CeilDiv(rows, mk.vector_rows) - 1;
  const float* panel = job.panels + tile * job.k * mk.panel_rows;
  PackPanel(job, tile);

  alignas(64) float acc[kMaxChunkChannels * kMaxPanelRows];
  for (size_t block = 0; block < tw.k_blocks; ++block) {
    const size_t pass = chunk * tw.k_blocks + block;
    const kernels::SpmmTileFn kernel =
        block == 0 ? job.tile_kernels[variant] : job.accumulating_tile_kernels[variant];
    kernel(panel + block * tw.k_block_rows * mk.panel_rows, job.segments,
           tw.pass_offsets[pass], tw.pass_offsets[pass + 1], acc);
  }
  const size_t chunk_begin = chunk * tw.chunk_channels;
  const size_t chunk_end = std::min(job.n, chunk_begin + tw.chunk_channels);
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

SparseGemmKernel::SparseGemmKernel(const OrtApi& /*api*/, const OrtKernelInfo* info) {
  const Ort::ConstKernelInfo kernel_info{info};
  node_name_ = kernel_info.GetNodeName();
  try {
    ReadAttributes(kernel_info);
    PackedWeights packed = ReadPackedWeights(kernel_info);
    ReadConstantBias(kernel_info);
    SelectMicrokernels();
    BuildTileWeights(packed);
    BuildRowWeights(std::move(packed));
  } catch (const std::exception& e) {
    Fail(e.what());
  }
}

void SparseGemmKernel::Fail(const std::string& problem) const {
  throw Ort::Exception("SparseGemm node '" + node_name_ + "': " + problem, ORT_INVALID_ARGUMENT);
}

void SparseGemmKernel::ReadAttributes(const Ort::ConstKernelInfo& info) {
  const std::optional<int64_t> k = IntAttribute(info, "K");
  const std::optional<int64_t> n = IntAttribute(info, "N");
  if (!k || !n) throw std::invalid_argument("integer attributes K and N are required");
  // Both bound int32 indices and offsets, and their products stay far from size_t overflow.
  constexpr int64_t kMaxDim = std::numeric_limits<int32_t>::max();
  if (*k < 1 || *n < 1 || *k > kMaxDim || *n > kMaxDim) {
    throw std::invalid_argument("K and N must be in [1, 2^31), got K=" + std::to_string(*k) +
                                ", N=" + std::to_string(*n));
  }
  k_ = *k;
  n_ = *n;

  const std::optional<std::string> format = StringAttribute(info, "format");
  if (format == "csr") {
    block_size_ = 1;
  } else if (format == "block4") {
    block_size_ = 4;
  } else {
    throw std::invalid_argument("attribute format must be 'csr' or 'block4', got '" +
                                format.value_or("(missing)") + "'");
  }

  const std::string activation_name = StringAttribute(info, "activation").value_or("none");
  const std::optional<Activation> activation = ParseActivation(activation_name);
  if (!activation) {
    throw std::invalid_argument("unknown activation '" + activation_name +
                                "' (expected none, relu, clip, gelu, gelu_tanh, sigmoid, silu)");
  }
  epilogue_.activation = *activation;
  epilogue_.clip_min = FloatAttribute(info, "clip_min").value_or(epilogue_.clip_min);
  epilogue_.clip_max = FloatAttribute(info, "clip_max").value_or(epilogue_.clip_max);

  const int64_t residual_before = IntAttribute(info, "residual_before_activation").value_or(0);
  if (residual_before != 0 && residual_before != 1) {
    throw std::invalid_argument("attribute residual_before_activation must be 0 or 1, got " +
                                std::to_string(residual_before));
  }
  epilogue_.residual_before_activation = residual_before == 1;
}

PackedWeights SparseGemmKernel::ReadPackedWeights(const Ort::ConstKernelInfo& info) const {
  PackedWeights packed{ReadConstantVector<float>(info, 1, "weight_values"),
                       ReadConstantVector<int32_t>(info, 2, "weight_group_offsets"),
                       ReadConstantVector<int32_t>(info, 3, "weight_input_indices")};
  const std::vector<int32_t>& group_offsets = packed.group_offsets;
  const std::vector<int32_t>& input_indices = packed.input_indices;

  const size_t num_groups = CeilDiv(static_cast<size_t>(n_), block_size_);
  const size_t nnz_blocks = input_indices.size();
  if (group_offsets.size() != num_groups + 1) {
    throw std::invalid_argument("weight_group_offsets has " +
                                std::to_string(group_offsets.size()) + " entries, expected " +
                                std::to_string(num_groups + 1) + " (one per group, plus one)");
  }
  if (packed.values.size() != nnz_blocks * block_size_) {
    throw std::invalid_argument("weight_values has " + std::to_string(packed.values.size()) +
                                " entries, expected " + std::to_string(nnz_blocks * block_size_) +
                                " (block size " + std::to_string(block_size_) + " times " +
                                std::to_string(nnz_blocks) + " input indices)");
  }
  if (group_offsets.front() != 0 ||
      static_cast<size_t>(group_offsets.back()) != nnz_blocks) {
    throw std::invalid_argument("weight_group_offsets must start at 0 and end at " +
                                std::to_string(nnz_blocks) + " (the number of input indices)");
  }
  // Offsets first: with them monotonic from 0 to nnz_blocks, every group's range is in bounds.
  for (size_t g = 0; g < num_groups; ++g) {
    if (group_offsets[g + 1] < group_offsets[g]) {
      throw std::invalid_argument("weight_group_offsets decreases at group " + std::to_string(g));
    }
  }
  for (size_t g = 0; g < num_groups; ++g) {
    for (int32_t i = group_offsets[g]; i < group_offsets[g + 1]; ++i) {
      const int32_t k = input_indices[i];
      if (k < 0 || k >= k_) {
        throw std::invalid_argument("weight_input_indices[" + std::to_string(i) + "] = " +
                                    std::to_string(k) + " is outside [0, K=" +
                                    std::to_string(k_) + ")");
      }
      if (i > group_offsets[g] && k <= input_indices[i - 1]) {
        throw std::invalid_argument("weight_input_indices are not strictly increasing in group " +
                                    std::to_string(g) + " (position " + std::to_string(i) + ")");
      }
    }
  }
  return packed;
}

void SparseGemmKernel::ReadConstantBias(const Ort::ConstKernelInfo& info) {
  if (info.GetInputCount() <= 4 || info.GetInputName(4).empty()) return;
  int is_constant = 0;
  const Ort::ConstValue bias = info.GetTensorConstantInput(4, &is_constant);
  if (!is_constant || bias == nullptr) return;
  const std::vector<int64_t> shape = bias.GetTensorTypeAndShapeInfo().GetShape();
  if (shape.size() != 1 || shape[0] != n_) {
    throw std::invalid_argument("bias has shape " + ShapeString(shape) + ", expected [" +
                                std::to_string(n_) + "]");
  }
  const float* data = bias.GetTensorData<float>();
  constant_bias_.assign(data, data + n_);
  has_constant_bias_ = true;
}

void SparseGemmKernel::SelectMicrokernels() {
  switch (isa::SelectKernelFamily()) {
    case isa::KernelFamily::kAvx512:
    case isa::KernelFamily::kAvx512Vnni:  // nothing in FP32 gains from VNNI
      microkernels_ = &kAvx512Microkernels;
      break;
    case isa::KernelFamily::kAvx2:
      microkernels_ = &kAvx2Microkernels;
      break;
    case isa::KernelFamily::kScalar:
      microkernels_ = &kScalarMicrokernels;
      break;
  }
  const bool block4 = block_size_ == 4;
  tile_kernels_ = block4 ? microkernels_->block4_tiles : microkernels_->csr_tiles;
  accumulating_tile_kernels_ =
      block4 ? microkernels_->block4_tiles_accumulating : microkernels_->csr_tiles_accumulating;
  row_kernel_ = block4 ? microkernels_->block4_row : microkernels_->csr_row;
}

void SparseGemmKernel::BuildTileWeights(const PackedWeights& packed) {
  TileWeights& tw = tile_weights_;
  const size_t k = static_cast<size_t>(k_);
  const size_t n = static_cast<size_t>(n_);
  const size_t stored_blocks = packed.input_indices.size();

  tw.chunk_channels = std::clamp(RoundUp(CeilDiv(n, kChunksPerMatrix), kStoreChannels),
                                 kMinChunkChannels, kMaxChunkChannels);
  tw.chunks = CeilDiv(n, tw.chunk_channels);

  // block4 shares each panel load among four channels and is bound by arithmetic, not L2, so it
  // keeps as few blocks as its indices allow.
  tw.k_blocks = CeilDiv(k, kMaxBlockRows);
  if (block_size_ == 1) {
    const uint64_t l1_bytes = isa::DetectCpuFeatures().l1d_bytes;
    const size_t panel_budget = l1_bytes > 0 ? l1_bytes * 2 / 3 : kDefaultL1PanelBytes;
    const size_t l1_block_rows = std::max<size_t>(
        1, panel_budget / (microkernels_->panel_rows * sizeof(float)));
    const size_t mean_group_length = stored_blocks / n;
    tw.k_blocks = std::clamp<size_t>(mean_group_length / kMinMeanSegmentLength, tw.k_blocks,
                                     std::max(tw.k_blocks, CeilDiv(k, l1_block_rows)));
  }
  tw.k_block_rows = CeilDiv(k, tw.k_blocks);

  struct Segment {
    size_t group, begin, end;
  };
  std::vector<size_t> cursor(packed.group_offsets.begin(), packed.group_offsets.end() - 1);
  std::vector<Segment> pass;
  tw.pass_offsets.push_back(0);
  for (size_t chunk = 0; chunk < tw.chunks; ++chunk) {
    const size_t first_group = chunk * tw.chunk_channels / block_size_;
    const size_t end_group =
        CeilDiv(std::min(n, (chunk + 1) * tw.chunk_channels), block_size_);
    for (size_t block = 0; block < tw.k_blocks; ++block) {
      const int32_t block_begin = static_cast<int32_t>(block * tw.k_block_rows);
      const int64_t block_end = static_cast<int64_t>((block + 1) * tw.k_block_rows);
      pass.clear();
      for (size_t g = first_group; g < end_group; ++g) {
        const size_t begin = cursor[g];
        size_t end = begin;
        while (end < static_cast<size_t>(packed.group_offsets[g + 1]) &&
               packed.input_indices[end] < block_end) {
          ++end;
        }
        cursor[g] = end;
        if (end > begin || block == 0) pass.push_back({g, begin, end});
      }
      std::stable_sort(pass.begin(), pass.end(), [](const Segment& a, const Segment& b) {
        return a.end - a.begin < b.end - b.begin;
      });
      for (const Segment& segment : pass) {
        tw.segment_offsets.push_back(static_cast<int32_t>(tw.input_indices.size()));
        tw.segment_channels.push_back(
            static_cast<int32_t>(segment.group * block_size_ - chunk * tw.chunk_channels));
        for (size_t i = segment.begin; i < segment.end; ++i) {
          tw.input_indices.push_back(static_cast<uint16_t>(packed.input_indices[i] - block_begin));
        }
        tw.values.insert(tw.values.end(), packed.values.begin() + segment.begin * block_size_,
                         packed.values.begin() + segment.end * block_size_);
      }
      tw.pass_offsets.push_back(tw.segment_channels.size());
    }
  }
  tw.segment_offsets.push_back(static_cast<int32_t>(tw.input_indices.size()));
}

void SparseGemmKernel::BuildRowWeights(PackedWeights&& packed) {
  if (static_cast<size_t>(k_) > kMaxBlockRows) return;
  row_weights_.values = std::move(packed.values);
  row_weights_.group_offsets = std::move(packed.group_offsets);
  row_weights_.input_indices.assign(packed.input_indices.begin(), packed.input_indices.end());
}

OrtStatusPtr SparseGemmKernel::ComputeV2(OrtKernelContext* context) const {
  try {
    Ort::KernelContext kernel_context{context};
    Compute(kernel_context);
    return nullptr;
  } catch (const Ort::Exception& e) {
    return Ort::GetApi().CreateStatus(e.GetOrtErrorCode(), e.what());
  } catch (const std::exception& e) {
    return Ort::GetApi().CreateStatus(ORT_FAIL, e.what());
  } catch (...) {
    return Ort::GetApi().CreateStatus(ORT_FAIL, "SparseGemm: unknown error");
  }
}

void SparseGemmKernel::Compute(Ort::KernelContext& context) const {
  const Ort::ConstValue x = context.GetInput(0);
  const std::vector<int64_t> x_shape = x.GetTensorTypeAndShapeInfo().GetShape();
  if (x_shape.size() < 2) {
    Fail("X must have rank >= 2, got shape " + ShapeString(x_shape));
  }
  if (x_shape.back() != k_) {
    Fail("X's last dimension is " + std::to_string(x_shape.back()) + " but attribute K is " +
         std::to_string(k_));
  }
  std::vector<int64_t> y_shape = x_shape;
  y_shape.back() = n_;
  size_t rows = 1;
  for (size_t i = 0; i + 1 < x_shape.size(); ++i) rows *= static_cast<size_t>(x_shape[i]);

  const float* bias = has_constant_bias_ ? constant_bias_.data() : nullptr;
  if (!has_constant_bias_ && context.GetInputCount() > 4) {
    const Ort::ConstValue bias_input = context.GetInput(4);
    if (bias_input != nullptr) {
      const std::vector<int64_t> shape = bias_input.GetTensorTypeAndShapeInfo().GetShape();
      if (shape.size() != 1 || shape[0] != n_) {
        Fail("bias has shape " + ShapeString(shape) + ", expected [" + std::to_string(n_) + "]");
      }
      bias = bias_input.GetTensorData<float>();
    }
  }

  const float* residual = nullptr;
  if (context.GetInputCount() > 5) {
    const Ort::ConstValue residual_input = context.GetInput(5);
    if (residual_input != nullptr) {
      const std::vector<int64_t> shape = residual_input.GetTensorTypeAndShapeInfo().GetShape();
      if (shape != y_shape) {
        Fail("residual has shape " + ShapeString(shape) + " but Y has shape " +
             ShapeString(y_shape));
      }
      residual = residual_input.GetTensorData<float>();
    }
  }

  Ort::UnownedValue y = context.GetOutput(0, y_shape);
  if (rows == 0) return;

  Job job{};
  job.microkernels = microkernels_;
  job.tile_kernels = tile_kernels_;
  job.accumulating_tile_kernels = accumulating_tile_kernels_;
  job.row_kernel = row_kernel_;
  job.weights = row_weights_.View();
  job.tile_weights = &tile_weights_;
  job.segments = tile_weights_.View();
  job.epilogue = epilogue_;
  job.block_size = block_size_;
  job.x = x.GetTensorData<float>();
  job.bias = bias;
  job.residual = residual;
  job.y = y.GetTensorMutableData<float>();
  job.rows = rows;
  job.k = static_cast<size_t>(k_);
  job.n = static_cast<size_t>(n_);

  if (rows <= microkernels_->row_kernel_max_rows && !row_weights_.group_offsets.empty()) {
    job.channel_chunks = CeilDiv(job.n, kRowTaskChannels);
    context.ParallelFor(RowTask, rows * job.channel_chunks, 0, &job);
    return;
  }

  const size_t panel_rows = microkernels_->panel_rows;
  job.tiles = CeilDiv(rows, panel_rows);
  job.pack_chunks = CeilDiv(job.k, kPackTaskColumns);
  const ScratchBuffer panels(context, job.tiles * job.k * panel_rows);
  job.panels = panels.data();
  const std::unique_ptr<PanelProgress[]> panel_progress(new PanelProgress[job.tiles]);
  job.panel_progress = panel_progress.get();
  context.ParallelFor(TileTask, job.tiles * tile_weights_.chunks, 0, &job);
}

OrtStatusPtr SparseGemmOp::CreateKernelV2(const OrtApi& api, const OrtKernelInfo* info,
                                          void** kernel) const {
  try {
    *kernel = new SparseGemmKernel(api, info);
    return nullptr;
  } catch (const Ort::Exception& e) {
    return api.CreateStatus(e.GetOrtErrorCode(), e.what());
  } catch (const std::exception& e) {
    return api.CreateStatus(ORT_FAIL, e.what());
  } catch (...) {
    return api.CreateStatus(ORT_FAIL, "SparseGemm: unknown error while creating the kernel");
  }
}

ONNXTensorElementDataType SparseGemmOp::GetInputType(size_t index) const {
  const bool is_index = index == 2 || index == 3;
  return is_index ? ONNX_TENSOR_ELEMENT_DATA_TYPE_INT32 : ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT;
}

OrtCustomOpInputOutputCharacteristic SparseGemmOp::GetInputCharacteristic(size_t index) const {
  return index >= 4 ? OrtCustomOpInputOutputCharacteristic::INPUT_OUTPUT_OPTIONAL
                    : OrtCustomOpInputOutputCharacteristic::INPUT_OUTPUT_REQUIRED;
}

}  // namespace ortsparse
