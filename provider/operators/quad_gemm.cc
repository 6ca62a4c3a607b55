#include "operators/quad_gemm.h"

#include <limits>
#include <stdexcept>
#include <string>

namespace ortsparse {

QuadGemmWeights::QuadGemmWeights(const Ort::ConstKernelInfo& info) {
  const std::optional<int64_t> k = IntAttribute(info, "K");
  const std::optional<int64_t> n = IntAttribute(info, "N");
  if (!k || !n) throw std::invalid_argument("integer attributes K and N are required");
  if (*k < 1 || *k > kMaxQuadGemmK || *n < 1 || *n > std::numeric_limits<int32_t>::max()) {
    throw std::invalid_argument("K must be in [1, " + std::to_string(kMaxQuadGemmK) +
                                "] (int32 sums stay exact) and N in [1, 2^31), got K=" +
                                std::to_string(*k) + ", N=" + std::to_string(*n));
  }
  k_ = *k;
  n_ = *n;
  const std::optional<std::string> format = StringAttribute(info, "format");
  if (format != "quad4") {
    throw std::invalid_argument("attribute format must be 'quad4', got '" +
                                format.value_or("(missing)") + "'");
  }
  const int64_t quads = (k_ + 3) / 4;
  packed_ = ReadQuadPackedWeights(info, kInputWeightValues, quads,
                                  "ceil(K / 4) = " + std::to_string(quads), n_,
                                  [k = k_](int64_t feature) { return feature < k; });
  microkernels_ = &SelectQuadMicrokernels();
  panel_offsets_.reserve(packed_.quad_indices.size());
  for (const int32_t q : packed_.quad_indices) {
    panel_offsets_.push_back(q * static_cast<int32_t>(microkernels_->panel_bytes_per_quad));
  }
}

}  // namespace ortsparse
