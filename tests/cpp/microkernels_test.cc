// The f32 microkernels of every family this CPU has against the contracts in
// kernels/f32-spmm/spmm.h and kernels/activations/epilogue.h, computed here in plain loops, and
// the output stages against the scalar family's (the activations' reference). Run by ctest
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
  std::printf("microkernels: scalar%s%s, %d failure(s)\n", avx2 ? ", avx2" : "",
              avx512 ? ", avx512" : "", kernels::failures);
  return kernels::failures == 0 ? 0 : 1;
}
