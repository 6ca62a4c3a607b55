// Compiled direct convolution: a SparseConv's stored weights turned into straight-line machine
// code for one layout of the input planes (kernels/input-planes.h).
//
// The tile kernels (f32-spmm) load each stored weight's whole input run and so make one input
// load per FMA, half of them split across cache lines. Compiled code instead keeps the sums of a
// block of output channels for 16 grid positions in registers: it loads each input vector that
// the block reads once, then multiplies it by every weight of the block's channels that reads
// it, a broadcast float operand of the FMA itself. At 80% sparsity a block of 28 channels has
// about 5.6 weights per input vector, so loads per FMA fall from about 1.5 to about 1.2, and
// none of the weight loads splits a line. Which accumulator a weight adds into is a register
// number, fixed when the code is written: that is what needs code generated per layer.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "kernels/f32-spconv/compiled-limits.h"
#include "kernels/jit/executable-code.h"

namespace ortsparse::kernels {

// The stored weights to compile, in the SparseGemm contract's csr groups (docs/ops.md): one group
// per output channel. (block4 weights stay on their tile kernels, which already share each input
// load among a group's four channels.)
struct ConvWeightsToCompile {
  const float* values;           // one float per stored weight
  const int32_t* group_offsets;  // channels + 1 offsets into input_indices
  const int32_t* input_indices;
  size_t channels;               // N
  // Per input feature k: the offset, in floats, of its input run from a tile's first position in
  // the run's base input_bases[k] (null: base 0 for every feature). Several bases let a 1x1
  // convolution read a Concat's inputs in place, each where it lies.
  const int64_t* input_offsets;
  const uint8_t* input_bases;
  // Floats between two channels' rows of the accumulators.
  size_t acc_stride;
};

// Bases an input feature's offset may count from.
inline constexpr size_t kMaxInputBases = 4;

// A run of grid positions that compiled code multiplies: `vectors` vectors of 16 positions from
// each of `bases` (in the planes, or in each part of X read in place; all of them valid
// pointers), whose sums go to acc (channel-major, the block's first channel's row).
struct CompiledRun {
  const float* bases[kMaxInputBases];
  size_t vectors;
  float* acc;
};

class CompiledConv {
 public:
  // Null when the weights cannot be compiled (an input offset past the 32-bit displacements, more
  // stored weights than kMaxCompiledWeights, or no executable memory), and then *why_not says
  // which.
  static std::unique_ptr<CompiledConv> CompileAvx512(const ConvWeightsToCompile& weights,
                                                     std::string* why_not);

  // The output channels of each block, whose sums compiled code keeps in registers at once.
  struct BlockChannels {
    size_t begin, count;
  };
  size_t BlockCount() const { return blocks_.size() - 1; }
  BlockChannels Block(size_t block) const { return blocks_[block].channels; }

  // Multiplies each of `runs` by block `block`'s output channels: acc[c * acc_stride + position]
  // gets the sum of the block's channel c. Each piece of code runs over all the runs before the
  // next, so that the runs share its fetch.
  void MultiplyBlock(size_t block, const CompiledRun* runs, size_t run_count) const;

  static constexpr size_t kMaxBlockChannels = compiled_limits::kMaxBlockChannels;

  size_t PieceCount() const { return pieces_.size() - 1; }
  size_t CodeBytes() const { return pieces_.back().code_offset; }

  static constexpr size_t kMaxCompiledWeights = compiled_limits::kMaxCompiledWeights;

 private:
  // One generated function: the weights of one block of channels for a range of input features,
  // adding into (or, the first, overwriting) the block's accumulators.
  struct Piece {
    size_t code_offset;
    size_t weight_offset;  // of the weights its FMAs read, in weights_
  };
  struct BlockPieces {
    BlockChannels channels;
    size_t first_piece;  // its pieces run to the next block's first
  };

  CompiledConv() = default;
  // Fetches `piece`'s code and weights (up to where `next` starts) into L2.
  void PrefetchToL2(const Piece& piece, const Piece& next) const;

  std::vector<float> weights_;
  std::vector<Piece> pieces_;  // and a last one where the code and the weights end
  std::vector<BlockPieces> blocks_;  // and a last one, with no channels, where pieces_ end
  std::unique_ptr<jit::ExecutableCode> code_;
};

using CompileConvFn = std::unique_ptr<CompiledConv> (*)(const ConvWeightsToCompile& weights,
                                                        std::string* why_not);

}  // namespace ortsparse::kernels
