// Compiled direct convolution for AVX-512 (compiled.h): blocks of up to 28 output channels by one
// vector of 16 grid positions, the sums in zmm0-27 and the input vectors taking turns in
// zmm28-31. Only the generated code runs AVX-512; this file just writes it.
#include <xmmintrin.h>

#include <algorithm>
#include <limits>
#include <string>

#include "kernels/f32-spconv/compiled.h"
#include "kernels/jit/x86-assembler.h"

namespace ortsparse::kernels {
namespace {

using jit::Gpr;

// The generated functions' signature (System V): the input bases in rdi, rcx, r8 and r9, weights
// in rsi, acc in rdx.
using CompiledTileFn = void (*)(const float* input, const float* weights, float* acc,
                                const float* input1, const float* input2, const float* input3);
constexpr Gpr kInputBaseRegisters[kMaxInputBases] = {Gpr::kRdi, Gpr::kRcx, Gpr::kR8, Gpr::kR9};

constexpr size_t kBlockChannels = CompiledConv::kMaxBlockChannels;
constexpr int kFirstInputRegister = static_cast<int>(kBlockChannels);
constexpr int kInputRegisters = 4;
constexpr size_t kVectorFloats = 16;
// A piece ends after the input feature that takes it past this many FMAs: its code (7 bytes per
// FMA, 7 or 10 per input load) then stays within L1i while it runs over a task's vectors.
constexpr size_t kPieceFmas = 2048;
// A broadcast operand's 8-bit displacement reaches 256 floats around rsi; rsi moves on by that
// many whenever the next weight is past them.
constexpr size_t kWeightWindow = 256;
constexpr int32_t kFloatBytes = 4;
constexpr size_t kCodeAlignment = 64;
constexpr size_t kCacheLineBytes = 64;
constexpr size_t kCacheLineFloats = kCacheLineBytes / sizeof(float);
constexpr uint8_t kTrap = 0xCC;  // int3: pads between pieces, never reached

// One output channel's stored weights, walked in increasing input feature.
struct ChannelCursor {
  const float* values;
  const int32_t* input_indices;
  size_t next, end;

  bool Reads(int64_t k) const { return next < end && input_indices[next] == k; }
};

ChannelCursor CursorFor(const ConvWeightsToCompile& w, size_t channel) {
  return {w.values, w.input_indices, static_cast<size_t>(w.group_offsets[channel]),
          static_cast<size_t>(w.group_offsets[channel + 1])};
}

bool FitsDisplacement(int64_t offset_floats) {
  const int64_t bytes = offset_floats * kFloatBytes;
  return bytes >= std::numeric_limits<int32_t>::min() &&
         bytes <= std::numeric_limits<int32_t>::max() - 64;
}

constexpr int64_t kNoFeature = std::numeric_limits<int64_t>::max();

// The lowest input feature that some channel of the block still has a weight for.
int64_t NextFeature(const std::vector<ChannelCursor>& cursors) {
  int64_t k = kNoFeature;
  for (const ChannelCursor& cursor : cursors) {
    if (cursor.next < cursor.end) k = std::min<int64_t>(k, cursor.input_indices[cursor.next]);
  }
  return k;
}

// Writes the code of a block's next piece into `a`, and the weights its FMAs read onto `weights`:
// the features from where `cursors` stand until the piece passes kPieceFmas FMAs. The first
// piece of a block clears the sums, later ones load them from acc; each stores them back.
// Returns false, saying why, when an input offset does not fit a displacement.
bool WritePiece(const ConvWeightsToCompile& w, bool first_piece,
                std::vector<ChannelCursor>& cursors, std::vector<float>& weights,
                jit::Avx512Assembler& a, std::string* why_not) {
  const int32_t acc_row_bytes = static_cast<int32_t>(w.acc_stride) * kFloatBytes;
  const size_t channels = cursors.size();
  // rsi starts mid-window, so that 8-bit displacements reach its 256 floats.
  size_t window = weights.size();
  a.AddImmediate(Gpr::kRsi, static_cast<int32_t>(kWeightWindow / 2) * kFloatBytes);
  for (size_t r = 0; r < channels; ++r) {
    if (first_piece) {
      a.ZeroVector(static_cast<int>(r));
    } else {
      a.LoadVector(static_cast<int>(r), Gpr::kRdx, static_cast<int32_t>(r) * acc_row_bytes);
    }
  }
  int input_register = 0;
  for (size_t fmas = 0; fmas < kPieceFmas;) {
    const int64_t k = NextFeature(cursors);
    if (k == kNoFeature) break;
    const int64_t offset = w.input_offsets[k];
    if (!FitsDisplacement(offset)) {
      *why_not =
          "an input offset of " + std::to_string(offset) + " floats, past 32-bit displacements";
      return false;
    }
    const int x = kFirstInputRegister + input_register;
    input_register = (input_register + 1) % kInputRegisters;
    const Gpr base = kInputBaseRegisters[w.input_bases != nullptr ? w.input_bases[k] : 0];
    a.LoadVector(x, base, static_cast<int32_t>(offset * kFloatBytes));
    for (size_t r = 0; r < channels; ++r) {
      ChannelCursor& cursor = cursors[r];
      if (!cursor.Reads(k)) continue;
      if (weights.size() - window == kWeightWindow) {
        a.AddImmediate(Gpr::kRsi, static_cast<int32_t>(kWeightWindow) * kFloatBytes);
        window += kWeightWindow;
      }
      const int32_t from_rsi =
          static_cast<int32_t>(weights.size() - window) - static_cast<int32_t>(kWeightWindow / 2);
      a.FmaBroadcast(static_cast<int>(r), x, Gpr::kRsi, from_rsi * kFloatBytes);
      weights.push_back(cursor.values[cursor.next]);
      ++cursor.next;
      ++fmas;
    }
  }
  for (size_t r = 0; r < channels; ++r) {
    a.StoreVector(static_cast<int>(r), Gpr::kRdx, static_cast<int32_t>(r) * acc_row_bytes);
  }
  a.Return();
  return true;
}

}  // namespace

std::unique_ptr<CompiledConv> CompiledConv::CompileAvx512(const ConvWeightsToCompile& w,
                                                         std::string* why_not) {
  const size_t stored = static_cast<size_t>(w.group_offsets[w.channels]);
  if (stored > kMaxCompiledWeights) {
    *why_not = std::to_string(stored) + " stored weights, more than the " +
               std::to_string(kMaxCompiledWeights) + " compiled at most";
    return nullptr;
  }
  std::unique_ptr<CompiledConv> compiled(new CompiledConv());
  compiled->weights_.reserve(stored);
  std::vector<uint8_t> code;

  // Blocks of nearly equal size: each then keeps as many sums in registers as the others.
  const size_t blocks = (w.channels + kBlockChannels - 1) / kBlockChannels;
  size_t block_begin = 0;
  for (size_t block = 0; block < blocks; ++block) {
    const size_t block_count = w.channels / blocks + (block < w.channels % blocks ? 1 : 0);
    compiled->blocks_.push_back({{block_begin, block_count}, compiled->pieces_.size()});
    std::vector<ChannelCursor> cursors;
    for (size_t c = 0; c < block_count; ++c) cursors.push_back(CursorFor(w, block_begin + c));
    // Every block has a first piece, which clears its sums even when it has no weights.
    bool first_piece = true;
    while (first_piece || NextFeature(cursors) != kNoFeature) {
      jit::Avx512Assembler a;
      const size_t weight_offset = compiled->weights_.size();
      if (!WritePiece(w, first_piece, cursors, compiled->weights_, a, why_not)) return nullptr;
      compiled->pieces_.push_back({code.size(), weight_offset});
      code.insert(code.end(), a.code().begin(), a.code().end());
      code.resize((code.size() + kCodeAlignment - 1) / kCodeAlignment * kCodeAlignment, kTrap);
      first_piece = false;
    }
    block_begin += block_count;
  }
  compiled->blocks_.push_back({{w.channels, 0}, compiled->pieces_.size()});
  compiled->pieces_.push_back({code.size(), compiled->weights_.size()});
  compiled->code_ = jit::ExecutableCode::Map(code);
  if (compiled->code_ == nullptr) {
    *why_not = "the system refused executable memory";
    return nullptr;
  }
  return compiled;
}

void CompiledConv::PrefetchToL2(const Piece& piece, const Piece& next) const {
  for (size_t at = piece.code_offset; at < next.code_offset; at += kCacheLineBytes) {
    _mm_prefetch(reinterpret_cast<const char*>(code_->At(at)), _MM_HINT_T1);
  }
  for (size_t at = piece.weight_offset; at < next.weight_offset; at += kCacheLineFloats) {
    _mm_prefetch(reinterpret_cast<const char*>(weights_.data() + at), _MM_HINT_T1);
  }
}

void CompiledConv::MultiplyBlock(size_t block, const CompiledRun* runs,
                                 size_t run_count) const {
  for (size_t p = blocks_[block].first_piece; p < blocks_[block + 1].first_piece; ++p) {
    const Piece& piece = pieces_[p];
    // The next piece (of this block, or the next block's first, which this thread will likely
    // run next) is fetched into L2 meanwhile: code is otherwise fetched from L3 a line at a time,
    // with no prefetcher ahead of it (+4-5% on YOLOv5s-like at 80%, whose 20x20 layers run
    // megabytes of code over a few vectors).
    if (p + 2 < pieces_.size()) PrefetchToL2(pieces_[p + 1], pieces_[p + 2]);
    const auto function = reinterpret_cast<CompiledTileFn>(code_->At(piece.code_offset));
    const float* weights = weights_.data() + piece.weight_offset;
    for (size_t r = 0; r < run_count; ++r) {
      const CompiledRun& run = runs[r];
      for (size_t at = 0; at < run.vectors * kVectorFloats; at += kVectorFloats) {
        function(run.bases[0] + at, weights, run.acc + at, run.bases[1] + at, run.bases[2] + at,
                 run.bases[3] + at);
      }
    }
  }
}

}  // namespace ortsparse::kernels
