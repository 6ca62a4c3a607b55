// INT8 sparse-times-dense microkernels: acc = X' · W with X' unsigned 8-bit, W signed 8-bit,
// sparse and constant, accumulated exactly in int32.
//
// W is stored in quads: four consecutive input features k = 4q .. 4q + 3 of one output channel,
// the unit one VNNI instruction (vpdpbusd) multiplies and adds into a 32-bit lane. A group (one
// output channel) lists the quads q that hold a nonzero weight, with their four weights packed
// in an int32 (byte j is W[4q + j], little-endian).
//
// The tile kernels read a panel: a tile of rows of X' in quads, laid out by the ISA family's own
// packer so that one vector load brings one quad of consecutive rows. They write
// acc[c * panel_rows + r] for each channel c of the groups they are given. Zero points, bias and
// requantization are the operator's business: the kernels only multiply.
#pragma once

#include <cstddef>
#include <cstdint>

namespace ortsparse::kernels {

struct QuadWeights {
  const int32_t* values;         // four int8 weights per stored quad
  const int32_t* group_offsets;  // num_groups + 1 offsets into quad_indices
  const int32_t* quad_indices;   // q of each stored quad, increasing within a group
};

// Packs rows [0, rows) of row-major x (row stride x_stride bytes, K bytes per row) into the
// family's panel of ceil(K / 4) quads, zero-filling the features past K and the rows past `rows`.
// flip_sign XORs every byte with 0x80: it turns int8 activations into the uint8 the kernels
// multiply (x + 128), which the operator's zero point then accounts for.
using PackQuadPanelFn = void (*)(const uint8_t* x, size_t x_stride, size_t rows, size_t k,
                                 bool flip_sign, uint8_t* panel);

// For groups [group_begin, group_end): acc[(g - group_begin) * panel_rows + r] = sum over the
// group's quads of X'[r, 4q + j] * W[4q + j, g].
using QuadTileFn = void (*)(const uint8_t* panel, const QuadWeights& weights, size_t group_begin,
                            size_t group_end, int32_t* acc);

// Tile kernels come for panels of 1 to 4 vectors of rows, like the FP32 ones: a tile of `rows`
// rows uses the one with ceil(rows / vector_rows) vectors.
inline constexpr size_t kMaxQuadTileVectors = 4;

// AVX-512 VNNI: vpdpbusd on 16 rows x one quad per vector; panel [quad][64 rows][4 bytes].
inline constexpr size_t kVnniPanelRows = 64;
void PackQuadPanelAvx512Vnni(const uint8_t* x, size_t x_stride, size_t rows, size_t k,
                             bool flip_sign, uint8_t* panel);
template <size_t kVectors>
void QuadTileAvx512Vnni(const uint8_t* panel, const QuadWeights& weights, size_t group_begin,
                        size_t group_end, int32_t* acc);

// AVX2 without VNNI: vpmaddubsw would saturate its 16-bit pair sums (255 * 127 * 2 > 32767), so
// the panel holds the activations widened to int16 and vpmaddwd, which is exact, multiplies
// pairs of features: panel [quad][pair][32 rows][2 x int16].
inline constexpr size_t kAvx2QuadPanelRows = 32;
void PackQuadPanelAvx2(const uint8_t* x, size_t x_stride, size_t rows, size_t k, bool flip_sign,
                       uint8_t* panel);
template <size_t kVectors>
void QuadTileAvx2(const uint8_t* panel, const QuadWeights& weights, size_t group_begin,
                  size_t group_end, int32_t* acc);

// Portable reference: panel [quad][8 rows][4 bytes], one tile variant.
inline constexpr size_t kScalarQuadPanelRows = 8;
void PackQuadPanelScalar(const uint8_t* x, size_t x_stride, size_t rows, size_t k,
                         bool flip_sign, uint8_t* panel);
void QuadTileScalar(const uint8_t* panel, const QuadWeights& weights, size_t group_begin,
                    size_t group_end, int32_t* acc);

}  // namespace ortsparse::kernels
