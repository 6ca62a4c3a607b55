// The f32 and INT8 microkernels of every family this CPU has against the contracts in
// kernels/f32-spmm/spmm.h, kernels/u8s8-spmm/spmm.h and kernels/activations/epilogue.h, computed
// here in plain loops (INT8 exactly, in int64), and the output stages against the scalar
// family's (the activations' reference). Run by ctest
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
#include "kernels/f32-spmm/spmm.h"
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

void TestQuadFamilies(const isa::CpuFeatures& cpu) {
  TestPackQuadPanel("scalar", PackQuadPanelScalar, kScalarQuadPanelRows, kScalarQuadPanelRows);
  TestQuadTile("scalar quad tile", QuadTileScalar, kScalarQuadPanelRows, kScalarQuadPanelRows);
  if (isa::Supports(cpu, isa::KernelFamily::kAvx2)) {
    TestPackQuadPanel("avx2", PackQuadPanelAvx2, kAvx2QuadPanelRows, 8);
    TestQuadTile("avx2 32x1c4 tile", Spmm32x1c4Avx2<1>, kAvx2QuadPanelRows, 8);
    TestQuadTile("avx2 32x1c4 tile", Spmm32x1c4Avx2<4>, kAvx2QuadPanelRows, 32);
  }
  if (isa::Supports(cpu, isa::KernelFamily::kAvxVnni)) {
    TestQuadTile("avxvnni 32x1c4 tile", Spmm32x1c4AvxVnni<2>, kAvx2QuadPanelRows, 16);
    TestQuadTile("avxvnni 32x1c4 tile", Spmm32x1c4AvxVnni<4>, kAvx2QuadPanelRows, 32);
  }
  if (isa::Supports(cpu, isa::KernelFamily::kAvx512Vnni)) {
    TestPackQuadPanel("avx512vnni", PackQuadPanelAvx512Vnni, kVnniPanelRows, 16);
    TestQuadTile("avx512vnni 64x1c4 tile", Spmm64x1c4Avx512Vnni<1>, kVnniPanelRows, 16);
    TestQuadTile("avx512vnni 64x1c4 tile", Spmm64x1c4Avx512Vnni<3>, kVnniPanelRows, 48);
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
