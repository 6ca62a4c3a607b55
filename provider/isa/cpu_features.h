// CPU feature detection shared by the provider's kernel dispatch and the Python `ortsparse isa`
// report, so that what the report says is what the kernels do.
#pragma once

#include <cstdint>
#include <string>

namespace ortsparse::isa {

struct CpuFeatures {
  std::string vendor;  // "GenuineIntel", "AuthenticAMD", ...
  std::string model;   // brand string
  // CPUID's display family and model (base fields extended as Intel and AMD define them) and
  // stepping: they name a microarchitecture where the brand string may not (hypervisors often
  // report a generic one, e.g. "AMD EPYC" for Zen 3 and Zen 5 alike).
  int family = 0;
  int model_number = 0;
  int stepping = 0;
  int logical_cores = 0;

  // Each flag is true only when both the CPU and the OS (XSAVE state enabled) support it.
  bool avx2 = false;
  bool fma = false;
  bool avx512f = false;
  bool avx512bw = false;
  bool avx512vl = false;
  bool avx512dq = false;
  bool avx512_vnni = false;
  bool avx512_bf16 = false;
  bool avx_vnni = false;
  bool amx_tile = false;
  bool amx_int8 = false;
  bool amx_bf16 = false;

  // Per-core data cache sizes and the shared last-level size, in bytes (0 when unknown).
  uint64_t l1d_bytes = 0;
  uint64_t l2_bytes = 0;
  uint64_t l3_bytes = 0;
};

// Detected once, on first use.
const CpuFeatures& DetectCpuFeatures();

// Ordered from least to most capable. Each family implies the ones below it except avxvnni
// (AVX2 with the 256-bit VEX vpdpbusd of Alder Lake and later), which not every AVX-512 CPU has
// (Skylake-SP, Ice Lake): Supports says whether the CPU has a family's features.
enum class KernelFamily { kScalar = 0, kAvx2 = 1, kAvxVnni = 2, kAvx512 = 3, kAvx512Vnni = 4 };

bool Supports(const CpuFeatures& features, KernelFamily family);

KernelFamily BestSupportedKernelFamily(const CpuFeatures& features);

// The family the kernels use: the best the CPU supports, lowered (never raised) by the environment
// variable ORTSPARSE_ISA=scalar|avx2|avxvnni|avx512|avx512vnni, which lets tests exercise every
// microkernel on one machine; a lower family the CPU lacks (avxvnni on an AVX-512 CPU without
// AVX-VNNI) gives the best one below it. Read on every call, so a new session sees a changed
// variable. Throws std::invalid_argument for a name it does not know, rather than silently
// ignoring it.
KernelFamily SelectKernelFamily();

const char* KernelFamilyName(KernelFamily family);

// Parses a name accepted by ORTSPARSE_ISA; returns false for an unknown name.
bool ParseKernelFamily(const std::string& name, KernelFamily* family);

}  // namespace ortsparse::isa
