#include "isa/cpu_features.h"

#include <cpuid.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <thread>

namespace ortsparse::isa {
namespace {

struct CpuidRegisters {
  uint32_t eax = 0, ebx = 0, ecx = 0, edx = 0;
};

CpuidRegisters Cpuid(uint32_t leaf, uint32_t subleaf = 0) {
  CpuidRegisters r;
  __cpuid_count(leaf, subleaf, r.eax, r.ebx, r.ecx, r.edx);
  return r;
}

bool Bit(uint32_t value, int bit) { return (value >> bit) & 1u; }

uint64_t ReadXcr0() {
  uint32_t eax, edx;
  __asm__ volatile("xgetbv" : "=a"(eax), "=d"(edx) : "c"(0));
  return (static_cast<uint64_t>(edx) << 32) | eax;
}

std::string VendorString() {
  CpuidRegisters r = Cpuid(0);
  char vendor[13] = {};
  std::memcpy(vendor + 0, &r.ebx, 4);
  std::memcpy(vendor + 4, &r.edx, 4);
  std::memcpy(vendor + 8, &r.ecx, 4);
  return vendor;
}

std::string BrandString() {
  if (Cpuid(0x80000000).eax < 0x80000004) return "";
  char brand[49] = {};
  for (uint32_t i = 0; i < 3; ++i) {
    CpuidRegisters r = Cpuid(0x80000002 + i);
    std::memcpy(brand + 16 * i + 0, &r.eax, 4);
    std::memcpy(brand + 16 * i + 4, &r.ebx, 4);
    std::memcpy(brand + 16 * i + 8, &r.ecx, 4);
    std::memcpy(brand + 16 * i + 12, &r.edx, 4);
  }
  std::string s = brand;
  size_t first = s.find_first_not_of(' ');
  size_t last = s.find_last_not_of(' ');
  return first == std::string::npos ? "" : s.substr(first, last - first + 1);
}

// Deterministic cache parameters: Intel's leaf 4 and AMD's leaf 0x8000001D share one layout.
void ReadCacheSizes(const std::string& vendor, CpuFeatures* f) {
  uint32_t leaf = 0;
  if (vendor == "GenuineIntel" && Cpuid(0).eax >= 4) {
    leaf = 4;
  } else if (vendor == "AuthenticAMD" && Cpuid(0x80000000).eax >= 0x8000001D) {
    leaf = 0x8000001D;
  }
  if (leaf != 0) {
    for (uint32_t index = 0; index < 16; ++index) {
      CpuidRegisters r = Cpuid(leaf, index);
      uint32_t type = r.eax & 0x1F;  // 0: no more caches, 1: data, 2: instruction, 3: unified
      if (type == 0) break;
      if (type == 2) continue;
      uint32_t level = (r.eax >> 5) & 0x7;
      uint64_t ways = ((r.ebx >> 22) & 0x3FF) + 1;
      uint64_t partitions = ((r.ebx >> 12) & 0x3FF) + 1;
      uint64_t line = (r.ebx & 0xFFF) + 1;
      uint64_t sets = static_cast<uint64_t>(r.ecx) + 1;
      uint64_t bytes = ways * partitions * line * sets;
      if (level == 1) f->l1d_bytes = bytes;
      if (level == 2) f->l2_bytes = bytes;
      if (level == 3) f->l3_bytes = bytes;
    }
  }
  // Hypervisors sometimes hide the cache leaves; glibc's view is the next best source.
  auto sysconf_bytes = [](int name) -> uint64_t {
    long v = sysconf(name);
    return v > 0 ? static_cast<uint64_t>(v) : 0;
  };
  if (f->l1d_bytes == 0) f->l1d_bytes = sysconf_bytes(_SC_LEVEL1_DCACHE_SIZE);
  if (f->l2_bytes == 0) f->l2_bytes = sysconf_bytes(_SC_LEVEL2_CACHE_SIZE);
  if (f->l3_bytes == 0) f->l3_bytes = sysconf_bytes(_SC_LEVEL3_CACHE_SIZE);
}

CpuFeatures Detect() {
  CpuFeatures f;
  f.vendor = VendorString();
  f.model = BrandString();
  f.logical_cores = static_cast<int>(std::thread::hardware_concurrency());
  ReadCacheSizes(f.vendor, &f);

  uint32_t max_leaf = Cpuid(0).eax;
  if (max_leaf < 1) return f;
  CpuidRegisters leaf1 = Cpuid(1);
  const int base_family = static_cast<int>((leaf1.eax >> 8) & 0xF);
  const int base_model = static_cast<int>((leaf1.eax >> 4) & 0xF);
  f.family = base_family == 0xF ? base_family + static_cast<int>((leaf1.eax >> 20) & 0xFF)
                                : base_family;
  f.model_number = base_family == 0x6 || base_family == 0xF
                       ? base_model + (static_cast<int>((leaf1.eax >> 16) & 0xF) << 4)
                       : base_model;
  f.stepping = static_cast<int>(leaf1.eax & 0xF);
  bool osxsave = Bit(leaf1.ecx, 27);
  if (!osxsave) return f;

  // XCR0 says which register states the OS saves on context switch: a feature whose registers it
  // does not save cannot be used even if the CPU has it.
  uint64_t xcr0 = ReadXcr0();
  bool os_avx = (xcr0 & 0x6) == 0x6;                // SSE + YMM upper halves
  bool os_avx512 = os_avx && (xcr0 & 0xE0) == 0xE0;  // opmask + ZMM upper halves + ZMM16-31
  bool os_amx = (xcr0 & 0x60000) == 0x60000;        // XTILECFG + XTILEDATA

  bool avx = Bit(leaf1.ecx, 28) && os_avx;
  f.fma = avx && Bit(leaf1.ecx, 12);
  if (max_leaf < 7) return f;

  CpuidRegisters leaf7 = Cpuid(7, 0);
  f.avx2 = avx && Bit(leaf7.ebx, 5);
  f.avx512f = os_avx512 && Bit(leaf7.ebx, 16);
  f.avx512dq = f.avx512f && Bit(leaf7.ebx, 17);
  f.avx512bw = f.avx512f && Bit(leaf7.ebx, 30);
  f.avx512vl = f.avx512f && Bit(leaf7.ebx, 31);
  f.avx512_vnni = f.avx512f && Bit(leaf7.ecx, 11);
  f.amx_bf16 = os_amx && Bit(leaf7.edx, 22);
  f.amx_tile = os_amx && Bit(leaf7.edx, 24);
  f.amx_int8 = os_amx && Bit(leaf7.edx, 25);
  if (leaf7.eax >= 1) {
    CpuidRegisters leaf7_1 = Cpuid(7, 1);
    f.avx_vnni = f.avx2 && Bit(leaf7_1.eax, 4);
    f.avx512_bf16 = f.avx512f && Bit(leaf7_1.eax, 5);
  }
  return f;
}

// The most capable family at or below `ceiling` that the CPU supports (scalar at least).
KernelFamily HighestSupportedUpTo(const CpuFeatures& f, KernelFamily ceiling) {
  for (int family = static_cast<int>(ceiling); family > 0; --family) {
    if (Supports(f, static_cast<KernelFamily>(family))) return static_cast<KernelFamily>(family);
  }
  return KernelFamily::kScalar;
}

}  // namespace

const CpuFeatures& DetectCpuFeatures() {
  static const CpuFeatures features = Detect();
  return features;
}

bool Supports(const CpuFeatures& f, KernelFamily family) {
  const bool avx2 = f.avx2 && f.fma;
  const bool avx512 = f.avx512f && f.avx512bw && f.avx512vl && f.avx512dq && f.fma;
  switch (family) {
    case KernelFamily::kScalar:
      return true;
    case KernelFamily::kAvx2:
      return avx2;
    case KernelFamily::kAvxVnni:
      return avx2 && f.avx_vnni;
    case KernelFamily::kAvx512:
      return avx512;
    case KernelFamily::kAvx512Vnni:
      return avx512 && f.avx512_vnni;
  }
  return false;
}

KernelFamily BestSupportedKernelFamily(const CpuFeatures& f) {
  return HighestSupportedUpTo(f, KernelFamily::kAvx512Vnni);
}

KernelFamily SelectKernelFamily() {
  KernelFamily best = BestSupportedKernelFamily(DetectCpuFeatures());
  const char* requested_name = std::getenv("ORTSPARSE_ISA");
  if (requested_name == nullptr || *requested_name == '\0') return best;
  KernelFamily requested;
  if (!ParseKernelFamily(requested_name, &requested)) {
    throw std::invalid_argument(std::string("ORTSPARSE_ISA='") + requested_name +
                                "' is not one of scalar, avx2, avxvnni, avx512, avx512vnni");
  }
  return requested < best ? HighestSupportedUpTo(DetectCpuFeatures(), requested) : best;
}

const char* KernelFamilyName(KernelFamily family) {
  switch (family) {
    case KernelFamily::kScalar:
      return "scalar";
    case KernelFamily::kAvx2:
      return "avx2";
    case KernelFamily::kAvxVnni:
      return "avxvnni";
    case KernelFamily::kAvx512:
      return "avx512";
    case KernelFamily::kAvx512Vnni:
      return "avx512vnni";
  }
  return "scalar";
}

bool ParseKernelFamily(const std::string& name, KernelFamily* family) {
  for (KernelFamily candidate : {KernelFamily::kScalar, KernelFamily::kAvx2, KernelFamily::kAvxVnni,
                                 KernelFamily::kAvx512, KernelFamily::kAvx512Vnni}) {
    if (name == KernelFamilyName(candidate)) {
      *family = candidate;
      return true;
    }
  }
  return false;
}

}  // namespace ortsparse::isa
