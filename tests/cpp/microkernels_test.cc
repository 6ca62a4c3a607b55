// The f32 and INT8 microkernels of every family this CPU has against the contracts in
// kernels/f32-spmm/spmm.h, kernels/u8s8-spmm/spmm.h, kernels/f32-dwconv/dwconv.h and
// kernels/activations/epilogue.h, computed
// here in plain loops (INT8 exactly, in int64), and the output stages (f32 and INT8, whose
// arithmetic each family must reproduce bit for bit) against the scalar family's. Run by ctest
// (tools/test_sanitizers.sh builds and runs it with ASan and UBSan); exits 1 on any mismatch.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <new>
#include <random>
#include <string>
#include <vector>

#include "isa/cpu_features.h"
#include "kernels/activations/epilogue.h"
#include "kernels/f32-dwconv/dwconv.h"
#include "kernels/f32-spconv/spconv.h"
#include "kernels/f32-spmm/spmm.h"
#include "kernels/u8s8-spconv/planes.h"
#include "kernels/u8s8-spmm/requantize.h"
#include "kernels/u8s8-spmm/spmm.h"

namespace ortsparse::kernels {
namespace {

int failures = 0;

void Check(bool ok, const std::string& what) {
  if (!ok) {
    ++failures;
    std::fprintf(stderr, "FAILED: %s\n", what.c_str());
  }
}

bool Close(float actual, float expected, float scale) {
  return std::fabs(actual - expected) <= 1e-5f * std::max(1.0f, scale);
}

std::mt19937 rng(1234);

// Cache-line aligned, as the operators' scratch buffers are: the kernels use aligned loads and
// stores on panels and accumulators.
template <typename T>
struct CacheLineAllocator {
  using value_type = T;
  CacheLineAllocator() = default;
  template <typename U>
  CacheLineAllocator(const CacheLineAllocator<U>&) {}
  T* allocate(size_t count) {
    return static_cast<T*>(::operator new(count * sizeof(T), std::align_val_t{64}));
  }
  void deallocate(T* p, size_t) { ::operator delete(p, std::align_val_t{64}); }
  bool operator==(const CacheLineAllocator&) const { return true; }
};
using Floats = std::vector<float, CacheLineAllocator<float>>;

Floats RandomFloats(size_t count) {
  std::normal_distribution<float> normal;
  Floats values(count);
  for (float& v : values) v = normal(rng);
  return values;
}

template <typename T>
std::vector<T> RandomIntegers(size_t count, int64_t low, int64_t high) {
  std::uniform_int_distribution<int64_t> uniform(low, high);
  std::vector<T> values(count);
  for (T& v : values) v = static_cast<T>(uniform(rng));
  return values;
}

// A random sparse weight in groups of block_size channels: per group, strictly increasing input
// indices below `k` (each kept with probability `density`), block_size values each.
struct Groups {
  std::vector<float> values;
  std::vector<int32_t> offsets{0};
  std::vector<int32_t> indices;
};

Groups RandomGroups(size_t groups, size_t k, size_t block_size, double density) {
  std::bernoulli_distribution keep(density);
  Groups g;
  for (size_t group = 0; group < groups; ++group) {
    for (size_t index = 0; index < k; ++index) {
      if (!keep(rng)) continue;
      g.indices.push_back(static_cast<int32_t>(index));
      for (float v : RandomFloats(block_size)) g.values.push_back(v);
    }
    g.offsets.push_back(static_cast<int32_t>(g.indices.size()));
  }
  return g;
}

// --- panels -----------------------------------------------------------------------------------

void TestPackPanel(const char* family, PackPanelFn pack, size_t panel_rows, size_t vector_rows) {
  const size_t k = 37, stride = 41;
  const Floats x = RandomFloats(panel_rows * stride);
  for (size_t rows : {size_t{1}, vector_rows - 1, vector_rows + 1, panel_rows}) {
    if (rows == 0 || rows > panel_rows) continue;
    Floats panel(k * panel_rows, -99.0f);
    const size_t k_begin = 3, k_end = 29;
    pack(x.data(), stride, rows, k_begin, k_end, panel.data());
    const size_t filled = (rows + vector_rows - 1) / vector_rows * vector_rows;
    bool ok = true;
    for (size_t kk = k_begin; kk < k_end; ++kk) {
      for (size_t r = 0; r < filled; ++r) {
        const float expected = r < rows ? x[r * stride + kk] : 0.0f;
        ok = ok && panel[kk * panel_rows + r] == expected;
      }
    }
    Check(ok, std::string(family) + " PackPanel, " + std::to_string(rows) + " rows");
  }
}

// --- tile kernels -----------------------------------------------------------------------------

// acc[c * panel_rows + r] (+)= sum over the segment's stored blocks of value * base[index *
// panel_rows + r], for r < rows: TileFn's contract with panels (scale = panel_rows).
template <typename Kernel>
void TestTiles(const char* name, Kernel kernel, size_t panel_rows, size_t rows, size_t block_size,
               bool accumulate) {
  const size_t groups = 9, k = 50;
  const Groups g = RandomGroups(groups, k, block_size, 0.3);
  std::vector<uint16_t> indices(g.indices.begin(), g.indices.end());
  std::vector<int32_t> channels;
  for (size_t group = 0; group < groups; ++group) {
    channels.push_back(static_cast<int32_t>(group * block_size));
  }
  const TileSegments<uint16_t> segments{g.values.data(), indices.data(), g.offsets.data(),
                                        channels.data()};
  const Floats base = RandomFloats(k * panel_rows);
  Floats acc = RandomFloats(groups * block_size * panel_rows);
  Floats expected = acc;
  for (size_t group = 0; group < groups; ++group) {
    for (size_t j = 0; j < block_size; ++j) {
      const size_t c = group * block_size + j;
      for (size_t r = 0; r < rows; ++r) {
        float sum = accumulate ? expected[c * panel_rows + r] : 0.0f;
        for (int32_t i = g.offsets[group]; i < g.offsets[group + 1]; ++i) {
          sum += g.values[i * block_size + j] * base[g.indices[i] * panel_rows + r];
        }
        expected[c * panel_rows + r] = sum;
      }
    }
  }
  kernel(base.data(), segments, 0, groups, acc.data());
  bool ok = true;
  for (size_t c = 0; c < groups * block_size; ++c) {
    for (size_t r = 0; r < rows; ++r) {
      const float want = expected[c * panel_rows + r];
      ok = ok && Close(acc[c * panel_rows + r], want, std::fabs(want));
    }
  }
  Check(ok, std::string(name) + ", " + std::to_string(rows) + " rows" +
                (accumulate ? ", accumulating" : ""));
}

// --- row kernels ------------------------------------------------------------------------------

// out[c - first channel of group_begin] = sum of value * x[index]: SpmvRowFn's contract.
void TestRows(const char* name, SpmvRowFn kernel, size_t block_size) {
  const size_t groups = 13, k = 300;
  const Groups g = RandomGroups(groups, k, block_size, 0.2);
  std::vector<uint16_t> indices(g.indices.begin(), g.indices.end());
  const SparseWeights weights{g.values.data(), g.offsets.data(), indices.data()};
  const Floats x = RandomFloats(k);
  for (size_t begin : {size_t{0}, size_t{4}}) {
    const size_t end = groups;
    Floats out((end - begin) * block_size, -99.0f);
    kernel(x.data(), weights, begin, end, out.data());
    bool ok = true;
    for (size_t group = begin; group < end; ++group) {
      for (size_t j = 0; j < block_size; ++j) {
        float sum = 0.0f;
        for (int32_t i = g.offsets[group]; i < g.offsets[group + 1]; ++i) {
          sum += g.values[i * block_size + j] * x[g.indices[i]];
        }
        ok = ok && Close(out[(group - begin) * block_size + j], sum, std::fabs(sum));
      }
    }
    Check(ok, std::string(name) + " from group " + std::to_string(begin));
  }
}

// --- output stages ----------------------------------------------------------------------------

void TestStoreRow(const char* family, StoreRowFn store) {
  const size_t channels = 37;
  const Floats acc = RandomFloats(channels), bias = RandomFloats(channels);
  const Floats residual = RandomFloats(channels);
  for (Activation activation :
       {Activation::kNone, Activation::kRelu, Activation::kClip, Activation::kGelu,
        Activation::kGeluTanh, Activation::kSigmoid, Activation::kSilu, Activation::kLeakyRelu,
        Activation::kHardSwish}) {
    for (bool before : {false, true}) {
      Epilogue epilogue;
      epilogue.activation = activation;
      epilogue.clip_min = -0.5f;
      epilogue.clip_max = 0.75f;
      epilogue.alpha = 0.2f;
      epilogue.residual_before_activation = before;
      Floats y(channels), reference(channels);
      store(acc.data(), channels, {y.data(), residual.data(), bias.data(), 0}, epilogue);
      StoreRowScalar(acc.data(), channels, {reference.data(), residual.data(), bias.data(), 0},
                     epilogue);
      bool ok = true;
      for (size_t c = 0; c < channels; ++c) {
        ok = ok && Close(y[c], reference[c], std::fabs(reference[c]));
      }
      Check(ok, std::string(family) + " StoreRow, activation " +
                    std::to_string(static_cast<int>(activation)) +
                    (before ? ", residual first" : ""));
    }
  }
}

// --- INT8: quad panels and tiles ---------------------------------------------------------------

using Bytes = std::vector<uint8_t, CacheLineAllocator<uint8_t>>;
using Int32s = std::vector<int32_t, CacheLineAllocator<int32_t>>;

Bytes RandomBytes(size_t count) {
  std::uniform_int_distribution<int> byte(0, 255);
  Bytes values(count);
  for (uint8_t& v : values) v = static_cast<uint8_t>(byte(rng));
  return values;
}

// panel[quad][row][j] = x[row][4 quad + j] (XOR 0x80 with flip_sign) for the rows up to the next
// whole vector, zero past K and past `rows`: PackQuadPanelFn's contract.
void TestPackQuadPanel(const char* family, PackQuadPanelFn pack, size_t panel_rows,
                       size_t vector_rows) {
  const size_t k = 37, stride = 45, quads = (k + 3) / 4;
  const Bytes x = RandomBytes(panel_rows * stride);
  for (size_t rows : {size_t{1}, vector_rows + 1, panel_rows}) {
    if (rows > panel_rows) continue;
    for (bool flip : {false, true}) {
      Bytes panel(quads * panel_rows * 4, 0x5a);
      pack(x.data(), stride, rows, k, flip, panel.data());
      const size_t filled = (rows + vector_rows - 1) / vector_rows * vector_rows;
      bool ok = true;
      for (size_t q = 0; q < quads; ++q) {
        for (size_t r = 0; r < filled; ++r) {
          for (size_t j = 0; j < 4; ++j) {
            const size_t feature = 4 * q + j;
            const uint8_t expected =
                r < rows && feature < k ? x[r * stride + feature] ^ (flip ? 0x80 : 0) : 0;
            ok = ok && panel[(q * panel_rows + r) * 4 + j] == expected;
          }
        }
      }
      Check(ok, std::string(family) + " PackQuadPanel, " + std::to_string(rows) + " rows" +
                    (flip ? ", sign flipped" : ""));
    }
  }
}

// acc[g * panel_rows + r] = sum over the group's stored quads of the dot product of the weight
// quad with the panel's dword for row r, exactly: QuadTileFn's contract on a panel.
void TestQuadTile(const char* name, QuadTileFn tile, size_t panel_rows, size_t rows) {
  const size_t groups = 7, quads = 40;
  std::bernoulli_distribution keep(0.3);
  std::uniform_int_distribution<int> weight(-128, 127);
  std::vector<int32_t> values, offsets{0}, input_offsets, quad_of;
  for (size_t g = 0; g < groups; ++g) {
    for (size_t q = 0; q < quads; ++q) {
      if (!keep(rng)) continue;
      uint32_t packed = 0;
      for (size_t j = 0; j < 4; ++j) {
        packed |= static_cast<uint32_t>(static_cast<uint8_t>(weight(rng))) << (8 * j);
      }
      values.push_back(static_cast<int32_t>(packed));
      input_offsets.push_back(static_cast<int32_t>(q * panel_rows * 4));
      quad_of.push_back(static_cast<int32_t>(q));
    }
    offsets.push_back(static_cast<int32_t>(values.size()));
  }
  const QuadWeights weights{values.data(), offsets.data(), input_offsets.data()};
  const Bytes panel = RandomBytes(quads * panel_rows * 4);
  Int32s acc(groups * panel_rows);
  tile(panel.data(), weights, 0, groups, acc.data());
  bool ok = true;
  for (size_t g = 0; g < groups; ++g) {
    for (size_t r = 0; r < rows; ++r) {
      int64_t sum = 0;
      for (int32_t i = offsets[g]; i < offsets[g + 1]; ++i) {
        for (size_t j = 0; j < 4; ++j) {
          const int8_t w = static_cast<int8_t>(static_cast<uint32_t>(values[i]) >> (8 * j));
          sum += int64_t{w} * panel[(quad_of[i] * panel_rows + r) * 4 + j];
        }
      }
      ok = ok && acc[g * panel_rows + r] == sum;
    }
  }
  Check(ok, std::string(name) + ", " + std::to_string(rows) + " rows");
}

// --- input planes ------------------------------------------------------------------------------

// A direct convolution's planes layout (kernels/input-planes.h) with every stride phase, for an
// image of `channels` units, `height` x `width`, padded by `pad` on each side.
struct PlanesLayout {
  std::vector<size_t> phases;
  InputPlanes planes{};

  PlanesLayout(size_t channels, size_t height, size_t width, size_t stride, size_t pad) {
    for (size_t phase = 0; phase < stride; ++phase) phases.push_back(phase);
    planes.channels = channels;
    planes.in_height = height;
    planes.in_width = width;
    planes.stride_height = planes.stride_width = stride;
    planes.pad_top = planes.pad_left = pad;
    planes.row_phases = planes.column_phases = phases.data();
    planes.row_phase_count = planes.column_phase_count = stride;
    planes.plane_height = (height + 2 * pad + stride - 1) / stride;
    planes.plane_width = (width + 2 * pad + stride - 1) / stride;
    planes.plane_stride = (planes.plane_height * planes.plane_width + 15) / 16 * 16;
    planes.total_elements = channels * planes.ChannelElements() + 40;
  }
};

// Each family's plane packers (f32 and channel quads) against the scalar family's on every
// geometry the direct convolutions take apart: strides 1, 2 (the split even/odd columns) and 3,
// padding or none, widths around the vector widths. Whole buffers are compared, padding and trail
// included.
void TestPlanes(const char* family, PackInputPlanesFn pack_floats, PackQuadPlanesFn pack_quads) {
  for (size_t stride : {1, 2, 3}) {
    for (size_t pad : {0, 1, 2}) {
      for (size_t width : {5, 16, 37}) {
        const size_t channels = 6;
        const size_t height = 7;
        const std::string where = std::string(family) + ", stride " + std::to_string(stride) +
                                  ", pad " + std::to_string(pad) + ", width " +
                                  std::to_string(width);
        const PlanesLayout floats_layout(channels, height, width, stride, pad);
        const Floats image = RandomFloats(channels * height * width);
        Floats expected(floats_layout.planes.total_elements, -3.0f);
        Floats actual = expected;
        PackInputPlanesScalar(image.data(), floats_layout.planes, 0, 0, channels, expected.data());
        pack_floats(image.data(), floats_layout.planes, 0, 0, channels, actual.data());
        Check(expected == actual, where + ": PackInputPlanes");

        const size_t quads = (channels + 3) / 4;
        const PlanesLayout quads_layout(quads, height, width, stride, pad);
        const std::vector<uint8_t> bytes =
            RandomIntegers<uint8_t>(channels * height * width, 0, 255);
        const QuadPlanesSource source = {bytes.data(), channels, 0x80, 0x85};
        std::vector<uint32_t> expected_quads(quads_layout.planes.total_elements, 0xDEADBEEF);
        std::vector<uint32_t> actual_quads = expected_quads;
        PackQuadPlanesScalar(source, quads_layout.planes, 0, quads, expected_quads.data());
        pack_quads(source, quads_layout.planes, 0, quads, actual_quads.data());
        Check(expected_quads == actual_quads, where + ": PackQuadPlanes");
      }
    }
  }
}

// --- INT8 output stages -----------------------------------------------------------------------

// One family's INT8 output stage; the scalar family's is the reference.
struct Int8OutputStage {
  const char* family;
  RequantizeTileFn requantize_tile;
  RequantizeChannelsFn requantize_channels;
  RequantizeAddChannelsFn requantize_add_channels;
  StoreSumsTileFn store_sums_tile;
  StoreSumsChannelsFn store_sums_channels;
};

constexpr Int8OutputStage kScalarInt8OutputStage = {"scalar",
                                                    RequantizeTileScalar,
                                                    RequantizeChannelsScalar,
                                                    RequantizeAddChannelsScalar,
                                                    StoreSumsTileScalar,
                                                    StoreSumsChannelsScalar};

// Runs `stage` and the scalar stage on the same tile of sums and compares their whole output
// buffers, padding included (each starts filled with the same sentinel): the values must be equal
// to the bit and neither may write outside its outputs.
void TestInt8OutputStage(const Int8OutputStage& stage) {
  for (size_t rows : {1, 7, 8, 15, 16, 33, 64, 70}) {
    for (size_t channels : {1, 3, 16, 19}) {
      for (bool is_signed : {false, true}) {
        const size_t acc_stride = (rows + 15) / 16 * 16;  // the AVX-512 row-major stage's need
        const std::vector<int32_t> acc =
            RandomIntegers<int32_t>(channels * acc_stride, -40000, 40000);
        const std::vector<int32_t> offsets = RandomIntegers<int32_t>(channels, -20000, 20000);
        std::vector<float> scales(channels);
        std::uniform_real_distribution<float> scale(1e-3f, 1e-2f);
        for (float& s : scales) s = scale(rng);
        const int32_t low = is_signed ? -128 : 0;
        const int32_t zero_point = is_signed ? 3 : 131;
        const Requantization rq = {offsets.data(), scales.data(), zero_point,
                                   static_cast<float>(low - zero_point),
                                   static_cast<float>(low + 255 - zero_point)};
        const QuantizedAddition addition =
            MakeQuantizedAddition(0.05f, zero_point, 0.04f, is_signed ? -7 : 120, 0.06f,
                                  is_signed ? 5 : 128, /*residual_first=*/channels % 2 == 1);
        const size_t y_stride = channels + 5;      // row-major: a row's channels, then gap
        const size_t y_channel_stride = rows + 3;  // channel-major: a channel's rows, then gap
        const size_t y_size = std::max(rows * y_stride, channels * y_channel_stride);
        const std::vector<uint8_t> residual = RandomIntegers<uint8_t>(y_size, 0, 255);
        const std::string where = std::string(stage.family) + ", " + std::to_string(rows) +
                                  " rows x " + std::to_string(channels) + " channels" +
                                  (is_signed ? ", int8" : ", uint8");
        auto bytes_equal = [&](const char* what, auto&& run) {
          std::vector<uint8_t> expected(y_size, 0xA5), actual(y_size, 0xA5);
          run(kScalarInt8OutputStage, expected.data());
          run(stage, actual.data());
          Check(expected == actual, where + ": " + what);
        };
        auto sums_equal = [&](const char* what, auto&& run) {
          std::vector<int32_t> expected(y_size, -7), actual(y_size, -7);
          run(kScalarInt8OutputStage, expected.data());
          run(stage, actual.data());
          Check(expected == actual, where + ": " + what);
        };
        bytes_equal("RequantizeTile", [&](const Int8OutputStage& s, uint8_t* y) {
          s.requantize_tile(acc.data(), acc_stride, rows, channels, rq, y, y_stride);
        });
        bytes_equal("RequantizeChannels", [&](const Int8OutputStage& s, uint8_t* y) {
          s.requantize_channels(acc.data(), acc_stride, rows, channels, rq, y, y_channel_stride);
        });
        bytes_equal("RequantizeAddChannels", [&](const Int8OutputStage& s, uint8_t* y) {
          s.requantize_add_channels(acc.data(), acc_stride, rows, channels, rq, addition, is_signed,
                                    residual.data(), y, y_channel_stride);
        });
        if (is_signed) continue;  // the sums do not depend on X's type
        sums_equal("StoreSumsTile", [&](const Int8OutputStage& s, int32_t* y) {
          s.store_sums_tile(acc.data(), acc_stride, rows, channels, offsets.data(), y, y_stride);
        });
        sums_equal("StoreSumsChannels", [&](const Int8OutputStage& s, int32_t* y) {
          s.store_sums_channels(acc.data(), acc_stride, rows, channels, offsets.data(), y,
                                y_channel_stride);
        });
      }
    }
  }
}

void TestQuadFamilies(const isa::CpuFeatures& cpu) {
  TestPackQuadPanel("scalar", PackQuadPanelScalar, kScalarQuadPanelRows, kScalarQuadPanelRows);
  TestQuadTile("scalar quad tile", QuadTileScalar, kScalarQuadPanelRows, kScalarQuadPanelRows);
  if (isa::Supports(cpu, isa::KernelFamily::kAvx2)) {
    TestInt8OutputStage({"avx2", RequantizeTileAvx2, RequantizeChannelsAvx2,
                         RequantizeAddChannelsAvx2, StoreSumsTileAvx2, StoreSumsChannelsAvx2});
    TestPackQuadPanel("avx2", PackQuadPanelAvx2, kAvx2QuadPanelRows, 8);
    TestQuadTile("avx2 32x1c4 tile", Spmm32x1c4Avx2<1>, kAvx2QuadPanelRows, 8);
    TestQuadTile("avx2 32x1c4 tile", Spmm32x1c4Avx2<4>, kAvx2QuadPanelRows, 32);
  }
  if (isa::Supports(cpu, isa::KernelFamily::kAvxVnni)) {
    TestQuadTile("avxvnni 32x1c4 tile", Spmm32x1c4AvxVnni<2>, kAvx2QuadPanelRows, 16);
    TestQuadTile("avxvnni 32x1c4 tile", Spmm32x1c4AvxVnni<4>, kAvx2QuadPanelRows, 32);
  }
  if (isa::Supports(cpu, isa::KernelFamily::kAvx512Vnni)) {
    TestInt8OutputStage({"avx512", RequantizeTileAvx512, RequantizeChannelsAvx512,
                         RequantizeAddChannelsAvx512, StoreSumsTileAvx512,
                         StoreSumsChannelsAvx512});
    TestPackQuadPanel("avx512vnni", PackQuadPanelAvx512Vnni, kVnniPanelRows, 16);
    TestQuadTile("avx512vnni 64x1c4 tile", Spmm64x1c4Avx512Vnni<1>, kVnniPanelRows, 16);
    TestQuadTile("avx512vnni 64x1c4 tile", Spmm64x1c4Avx512Vnni<3>, kVnniPanelRows, 48);
  }
}

// --- depthwise rows ----------------------------------------------------------------------------

// Whether `row` (out_stride floats, filled with -7 before the kernel ran) holds the scalar output
// stage's finishing of `sums` (bias, epilogue) and nothing past them.
bool FinishedRowMatches(const float* row, size_t out_stride, const std::vector<float>& sums,
                        float bias, const Epilogue& epilogue) {
  const size_t width = sums.size();
  std::vector<float> expected(width);
  StoreChannelRowsScalar(sums.data(), 0, width, 1, {expected.data(), nullptr, &bias, 0}, epilogue);
  bool ok = true;
  for (size_t j = 0; j < width; ++j) {
    ok = ok && Close(row[j], expected[j], std::fabs(expected[j]) + 1.0f);
  }
  for (size_t j = width; j < out_stride; ++j) ok = ok && row[j] == -7.0f;
  return ok;
}

// Widths from 1 to past five vectors, rows in groups of 4, 2 and 1, each row's partial last
// vector; taps of a 5x5 window on planes 4 wider than the rows, finished with hard-swish,
// against the scalar family's output stage.
void TestDepthwiseRows(const char* family, DepthwiseRowsFn rows_kernel) {
  constexpr size_t kRows = 7, kReach = 4;  // 7: groups of 4, 2 and 1 rows
  Epilogue epilogue;
  epilogue.activation = Activation::kHardSwish;
  for (size_t width = 1; width <= 5 * 16 + 3; ++width) {
    const size_t plane_width = width + kReach;
    std::vector<int32_t> offsets;
    for (size_t i = 0; i <= kReach; ++i) {
      for (size_t j = 0; j <= kReach; ++j)
        offsets.push_back(static_cast<int32_t>(i * plane_width + j));
    }
    const Floats weights = RandomFloats(offsets.size());
    // Exactly as far as the last row's last tap reads: anything further is a sanitizer finding.
    const Floats planes = RandomFloats((kRows - 1) * plane_width + width + offsets.back());
    const size_t out_stride = width + 5;
    Floats out(kRows * out_stride, -7.0f);
    const float bias = 0.25f;
    rows_kernel({planes.data(), plane_width, offsets.data(), weights.data(), offsets.size(), kRows,
                 width, bias, out.data(), out_stride},
                epilogue);
    bool ok = true;
    for (size_t r = 0; r < kRows; ++r) {
      std::vector<float> sums(width);
      for (size_t j = 0; j < width; ++j) {
        for (size_t t = 0; t < offsets.size(); ++t) {
          sums[j] += weights[t] * planes[r * plane_width + j + offsets[t]];
        }
      }
      ok = ok && FinishedRowMatches(out.data() + r * out_stride, out_stride, sums, bias, epilogue);
    }
    Check(ok, std::string(family) + " DepthwiseRows, width " + std::to_string(width));
  }
}

// One kernel shape of TestDepthwiseRowsOfX, strides 1 and 2, every output width.
void TestDepthwiseRowsOfX(const char* family, DepthwiseRowsOfXFn rows_kernel, size_t rows,
                          size_t kernel_height, size_t kernel_width, size_t dilation,
                          size_t pad_left, const Epilogue& epilogue) {
  const Floats weights = RandomFloats(kernel_height * kernel_width);
  for (size_t stride : {1, 2}) {
    for (size_t width = 1; width <= 5 * 16 + 3; ++width) {
      const size_t in_width = width * stride + 1;
      const size_t input_row_count = (rows - 1) * stride + kernel_height;
      const Floats x = RandomFloats(input_row_count * in_width);
      const Floats zeros(in_width, 0.0f);
      std::vector<const float*> input_rows;
      for (size_t k = 0; k < input_row_count; ++k) {
        input_rows.push_back(k == 0 ? zeros.data() : x.data() + k * in_width);
      }
      const size_t out_stride = width + 5;
      Floats out(rows * out_stride, -7.0f);
      const float bias = -0.5f;
      rows_kernel({input_rows.data(), in_width, kernel_height, kernel_width, stride, stride, 1,
                   dilation, pad_left, weights.data(), rows, width, bias, out.data(), out_stride},
                  epilogue);
      bool ok = true;
      for (size_t r = 0; r < rows; ++r) {
        std::vector<float> sums(width);
        for (size_t j = 0; j < width; ++j) {
          for (size_t i = 0; i < kernel_height; ++i) {
            for (size_t t = 0; t < kernel_width; ++t) {
              const int64_t column =
                  static_cast<int64_t>(j * stride + t * dilation) - static_cast<int64_t>(pad_left);
              if (column < 0 || column >= static_cast<int64_t>(in_width)) continue;
              sums[j] += weights[i * kernel_width + t] * input_rows[r * stride + i][column];
            }
          }
        }
        ok =
            ok && FinishedRowMatches(out.data() + r * out_stride, out_stride, sums, bias, epilogue);
      }
      Check(ok, std::string(family) + " DepthwiseRowsOfX, " + std::to_string(kernel_height) +
                    " kernel rows, stride " + std::to_string(stride) + ", width " +
                    std::to_string(width));
    }
  }
}

// Strides 1 and 2 from X's rows, padded on every side (kernels of 3, 4 and 5 rows, 5 columns,
// dilation 2 across): output widths from 1 to past five vectors, rows in groups of 8, 4, 2 and 1,
// the top kernel row reading a row of zeros, the left and right taps reaching past X's columns.
// Heights 3 and 5 take the kernels that reuse each input row, 4 the general one.
void TestDepthwiseRowsOfX(const char* family, DepthwiseRowsOfXFn rows_kernel) {
  Epilogue epilogue;
  epilogue.activation = Activation::kHardSwish;
  for (size_t kernel_height : {3, 4, 5}) {
    TestDepthwiseRowsOfX(family, rows_kernel, /*rows=*/15, kernel_height, /*kernel_width=*/5,
                         /*dilation=*/2, /*pad_left=*/4, epilogue);
  }
}

void TestAvx512() {
  using Panel = PanelRows<kAvx512PanelRows>;
  TestPackPanel("avx512", PackPanelAvx512, kAvx512PanelRows, 16);
  for (bool accumulate : {false, true}) {
    TestTiles("avx512 csr tile",
              accumulate ? Spmm64x1Avx512<Panel, 16, true> : Spmm64x1Avx512<Panel, 16, false>,
              kAvx512PanelRows, 16, 1, accumulate);
    TestTiles("avx512 csr tile",
              accumulate ? Spmm64x1Avx512<Panel, 48, true> : Spmm64x1Avx512<Panel, 48, false>,
              kAvx512PanelRows, 48, 1, accumulate);
    TestTiles("avx512 block4 tile",
              accumulate ? Spmm64x4Avx512<Panel, 32, true> : Spmm64x4Avx512<Panel, 32, false>,
              kAvx512PanelRows, 32, 4, accumulate);
    TestTiles("avx512 block4 tile",
              accumulate ? Spmm64x4Avx512<Panel, 64, true> : Spmm64x4Avx512<Panel, 64, false>,
              kAvx512PanelRows, 64, 4, accumulate);
  }
  TestRows("avx512 csr row", SpmvCsrAvx512, 1);
  TestRows("avx512 block4 row", SpmvBlock4Avx512, 4);
  TestStoreRow("avx512", StoreRowAvx512);
  TestPlanes("avx512", PackInputPlanesAvx512, PackQuadPlanesAvx512);
  TestDepthwiseRows("avx512", DepthwiseRowsAvx512);
  TestDepthwiseRowsOfX("avx512", DepthwiseRowsOfXAvx512);
}

void TestAvx2() {
  using Panel = PanelRows<kAvx2PanelRows>;
  TestPackPanel("avx2", PackPanelAvx2, kAvx2PanelRows, 8);
  for (bool accumulate : {false, true}) {
    TestTiles("avx2 csr tile",
              accumulate ? Spmm32x1Avx2<Panel, 8, true> : Spmm32x1Avx2<Panel, 8, false>,
              kAvx2PanelRows, 8, 1, accumulate);
    TestTiles("avx2 csr tile",
              accumulate ? Spmm32x1Avx2<Panel, 24, true> : Spmm32x1Avx2<Panel, 24, false>,
              kAvx2PanelRows, 24, 1, accumulate);
    TestTiles("avx2 block4 tile",
              accumulate ? Spmm32x4Avx2<Panel, 16, true> : Spmm32x4Avx2<Panel, 16, false>,
              kAvx2PanelRows, 16, 4, accumulate);
    TestTiles("avx2 block4 tile",
              accumulate ? Spmm32x4Avx2<Panel, 32, true> : Spmm32x4Avx2<Panel, 32, false>,
              kAvx2PanelRows, 32, 4, accumulate);
  }
  TestRows("avx2 csr row", SpmvCsrAvx2, 1);
  TestRows("avx2 block4 row", SpmvBlock4Avx2, 4);
  TestStoreRow("avx2", StoreRowAvx2);
  TestPlanes("avx2", PackInputPlanesAvx2, PackQuadPlanesAvx2);
  TestDepthwiseRows("avx2", DepthwiseRowsAvx2);
  TestDepthwiseRowsOfX("avx2", DepthwiseRowsOfXAvx2);
}

void TestScalar() {
  using Panel = PanelRows<kScalarPanelRows>;
  TestPackPanel("scalar", PackPanelScalar, kScalarPanelRows, kScalarPanelRows);
  for (bool accumulate : {false, true}) {
    TestTiles("scalar csr tile",
              accumulate ? SpmmCsrScalar<Panel, true> : SpmmCsrScalar<Panel, false>,
              kScalarPanelRows, kScalarPanelRows, 1, accumulate);
    TestTiles("scalar block4 tile",
              accumulate ? SpmmBlock4Scalar<Panel, true> : SpmmBlock4Scalar<Panel, false>,
              kScalarPanelRows, kScalarPanelRows, 4, accumulate);
  }
  TestRows("scalar csr row", SpmvCsrScalar, 1);
  TestRows("scalar block4 row", SpmvBlock4Scalar, 4);
  TestDepthwiseRows("scalar", DepthwiseRowsScalar);
  TestDepthwiseRowsOfX("scalar", DepthwiseRowsOfXScalar);
}

}  // namespace
}  // namespace ortsparse::kernels

int main() {
  using ortsparse::isa::KernelFamily;
  namespace kernels = ortsparse::kernels;
  const KernelFamily best =
      ortsparse::isa::BestSupportedKernelFamily(ortsparse::isa::DetectCpuFeatures());
  const bool avx512 = best == KernelFamily::kAvx512 || best == KernelFamily::kAvx512Vnni;
  const bool avx2 = avx512 || best == KernelFamily::kAvx2 || best == KernelFamily::kAvxVnni;
  kernels::TestScalar();
  if (avx2) kernels::TestAvx2();
  if (avx512) kernels::TestAvx512();
  kernels::TestQuadFamilies(ortsparse::isa::DetectCpuFeatures());
  std::printf("microkernels: f32 scalar%s%s, INT8 of every family this CPU has, %d failure(s)\n",
              avx2 ? ", avx2" : "", avx512 ? ", avx512" : "", kernels::failures);
  return kernels::failures == 0 ? 0 : 1;
}
