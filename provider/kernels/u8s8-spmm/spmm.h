// INT8 sparse-times-dense microkernels: acc = X' · W with X' unsigned 8-bit, W signed 8-bit,
// sparse and constant, accumulated exactly in int32.
//
// W is stored in quads: four consecutive input features k = 4q .. 4q + 3 of one output channel,
// the unit one VNNI instruction (vpdpbusd) multiplies and adds into a 32-bit lane. A group (one
// output channel) lists the quads that hold a nonzero weight, with their four weights packed in an
// int32 (byte j is W[4q + j], little-endian).
//
// The tile kernels read X' as dwords: a quad of one row is the four bytes of one dword, and the
// rows of a tile are consecutive dwords. Where a stored quad's run of rows starts is the caller's
// choice, given as a byte offset per stored quad from the tile's base: a packed panel
// [quad][panel rows][4 bytes] (SparseQGemm), or the interleaved input planes of a direct
// convolution (SparseQConv), read in place. They write acc[c * acc_rows + r] for each channel c of
// the groups they are given. Zero points, bias and requantization are the operator's business,
// with one exception: the AVX-512 VNNI family's requantizing tile kernels, which apply the
// operator's Requantization (and residual Add) to their sums in registers and write Y's bytes.
#pragma once

#include <cstddef>
#include <cstdint>

#include "kernels/u8s8-spmm/requantize.h"

namespace ortsparse::kernels {

struct QuadWeights {
  const int32_t* values;         // four int8 weights per stored quad
  const int32_t* group_offsets;  // num_groups + 1 offsets into values and input_offsets
  const int32_t* input_offsets;  // byte offset of each stored quad's run of rows
};

// Packs rows [0, rows) of row-major x (row stride x_stride bytes, K bytes per row) into a panel
// [ceil(K / 4) quads][panel_rows][4 bytes], zero-filling the features past K and the rows past
// `rows` up to the next whole vector, which the tile kernel for `rows` reads; the panel's rows
// after that are left alone (a one-row tile packs 16 rows, not 64). flip_sign XORs every byte
// with 0x80: it turns int8 activations into the uint8 the kernels multiply (x + 128), which the
// operator's zero point then accounts for.
using PackQuadPanelKernel = void(const uint8_t* x, size_t x_stride, size_t rows, size_t k,
                                 bool flip_sign, uint8_t* panel);
using PackQuadPanelFn = PackQuadPanelKernel*;
PackQuadPanelKernel PackQuadPanelAvx512Vnni, PackQuadPanelAvx2, PackQuadPanelScalar;

// For groups [group_begin, group_end): acc[(g - group_begin) * acc_rows + r] = sum over the
// group's stored quads i of the dot product of W's quad with the dword at
// base + input_offsets[i] + 4 r. The family's variant v reads (v + 1) * vector_rows rows.
using QuadTileKernel = void(const uint8_t* base, const QuadWeights& weights, size_t group_begin,
                            size_t group_end, int32_t* acc);
using QuadTileFn = QuadTileKernel*;
QuadTileKernel QuadTileScalar;

// Tile kernels come for 1 to 4 vectors of rows, like the FP32 ones: a tile of `rows` rows uses
// the one with ceil(rows / vector_rows) vectors.
inline constexpr size_t kMaxQuadTileVectors = 4;

// AVX-512 VNNI: vpdpbusd on 16 rows x one quad per vector; 64-row tiles.
inline constexpr size_t kVnniPanelRows = 64;
template <size_t kVectors>
void Spmm64x1c4Avx512Vnni(const uint8_t* base, const QuadWeights& weights, size_t group_begin,
                          size_t group_end, int32_t* acc);

// Where a requantizing tile kernel writes, when the tile's rows are consecutive outputs of each
// channel (a convolution whose grid is its output): group g's rows r (r < rows) go to
// y[(g - group_begin) * channel_stride + r], requantized as RequantizeChannelsFn would (and, with
// a residual, added to residual[same place] as RequantizeAddChannelsFn would), the requantization
// read from the first group's channel on.
struct RequantizedChannels {
  uint8_t* y;
  const uint8_t* residual;  // or null
  size_t channel_stride;
  size_t rows;
  Requantization requantization;
  QuantizedAddition addition;  // with a residual
};
// The residual Add a requantizing tile kernel applies: none, or R of Y's type.
enum class QuadResidual { kNone, kUint8, kInt8 };
inline constexpr size_t kQuadResidualKinds = 3;
using QuadRequantizeTileFn = void (*)(const uint8_t* base, const QuadWeights& weights,
                                      size_t group_begin, size_t group_end,
                                      const RequantizedChannels& out);
// The VNNI tile kernel finishing Y itself: its sums go from registers to Y's bytes, with no
// int32 tile in between and no output stage.
template <size_t kVectors, QuadResidual kResidual>
void Spmm64x1c4RequantizeAvx512Vnni(const uint8_t* base, const QuadWeights& weights,
                                    size_t group_begin, size_t group_end,
                                    const RequantizedChannels& out);

// AVX2 without VNNI: vpmaddubsw would saturate its 16-bit pair sums (255 * 127 * 2 > 32767), so
// the kernels split each dword into its even and odd bytes as int16 and multiply them by the
// weights' even and odd pairs with vpmaddwd, which is exact; 32-row tiles.
inline constexpr size_t kAvx2QuadPanelRows = 32;
template <size_t kVectors>
void Spmm32x1c4Avx2(const uint8_t* base, const QuadWeights& weights, size_t group_begin,
                    size_t group_end, int32_t* acc);

// AVX-VNNI: the AVX2 family's panels and planes, multiplied by the 256-bit vpdpbusd.
template <size_t kVectors>
void Spmm32x1c4AvxVnni(const uint8_t* base, const QuadWeights& weights, size_t group_begin,
                       size_t group_end, int32_t* acc);

// Portable reference: 8-row tiles, one variant.
inline constexpr size_t kScalarQuadPanelRows = 8;

}  // namespace ortsparse::kernels
