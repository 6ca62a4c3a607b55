// Python view of the provider's CPU detection (provider/isa), so `ortsparse isa` reports exactly
// what the kernels will dispatch on.
#include <nanobind/nanobind.h>
#include <nanobind/stl/string.h>

#include "isa/cpu_features.h"
#include "kernels/f32-spconv/compiled-limits.h"

namespace nb = nanobind;
using ortsparse::isa::CpuFeatures;

namespace {

nb::dict CpuFeaturesDict() {
  const CpuFeatures& f = ortsparse::isa::DetectCpuFeatures();
  nb::dict d;
  d["vendor"] = f.vendor;
  d["model"] = f.model;
  d["family"] = f.family;
  d["model_number"] = f.model_number;
  d["stepping"] = f.stepping;
  d["logical_cores"] = f.logical_cores;
  d["avx2"] = f.avx2;
  d["fma"] = f.fma;
  d["avx512f"] = f.avx512f;
  d["avx512bw"] = f.avx512bw;
  d["avx512vl"] = f.avx512vl;
  d["avx512dq"] = f.avx512dq;
  d["avx512_vnni"] = f.avx512_vnni;
  d["avx512_bf16"] = f.avx512_bf16;
  d["avx_vnni"] = f.avx_vnni;
  d["amx_tile"] = f.amx_tile;
  d["amx_int8"] = f.amx_int8;
  d["amx_bf16"] = f.amx_bf16;
  d["l1d_bytes"] = f.l1d_bytes;
  d["l2_bytes"] = f.l2_bytes;
  d["l3_bytes"] = f.l3_bytes;
  d["best_kernel_family"] =
      ortsparse::isa::KernelFamilyName(ortsparse::isa::BestSupportedKernelFamily(f));
  return d;
}

nb::dict CompiledConvLimits() {
  namespace limits = ortsparse::kernels::compiled_limits;
  nb::dict d;
  d["max_block_channels"] = limits::kMaxBlockChannels;
  d["max_compiled_weights"] = limits::kMaxCompiledWeights;
  d["min_compiled_tiles"] = limits::kMinCompiledTiles;
  d["min_finishing_reuse"] = limits::kMinFinishingReuse;
  return d;
}

std::string SelectedKernelFamilyName() {
  try {
    return ortsparse::isa::KernelFamilyName(ortsparse::isa::SelectKernelFamily());
  } catch (const std::invalid_argument& e) {
    throw nb::value_error(e.what());
  }
}

}  // namespace

NB_MODULE(_isa, m) {
  m.doc() = "CPU features as ortsparse's kernel dispatch sees them.";
  m.def("cpu_features", &CpuFeaturesDict,
        "Vendor, brand string, CPUID family, model number and stepping, core count, ISA extensions (each true only if the OS enables it too) and "
        "cache sizes in bytes.");
  m.def("compiled_conv_limits", &CompiledConvLimits,
        "Where SparseConv runs compiled code and how it blocks channels "
        "(provider/kernels/f32-spconv/compiled-limits.h).");
  m.def("selected_kernel_family", &SelectedKernelFamilyName,
        "The kernel family the provider will pick now: the best one the CPU supports, lowered by "
        "the ORTSPARSE_ISA environment variable. Raises ValueError for an unknown ORTSPARSE_ISA.");
}
