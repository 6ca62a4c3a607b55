// ORT glue shared by the operators: optional attributes, shape messages, scratch memory and the
// translation of exceptions into ORT statuses.
#pragma once

#include <onnxruntime_cxx_api.h>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace ortsparse {

inline size_t CeilDiv(size_t a, size_t b) { return (a + b - 1) / b; }
inline size_t RoundUp(size_t a, size_t b) { return CeilDiv(a, b) * b; }

std::string ShapeString(const std::vector<int64_t>& shape);

// Optional attributes: ORT reports a missing one as an error status, which here means "absent".
std::optional<int64_t> IntAttribute(const OrtKernelInfo* info, const char* name);
std::optional<std::vector<int64_t>> IntsAttribute(const OrtKernelInfo* info, const char* name);
std::optional<float> FloatAttribute(const OrtKernelInfo* info, const char* name);
std::optional<std::string> StringAttribute(const OrtKernelInfo* info, const char* name);

// An optional input as the run sees it: null when the node leaves it out.
Ort::ConstValue OptionalInput(const Ort::KernelContext& context, size_t index);

// Called inside a catch block: the exception in flight as an ORT status whose message starts with
// `node_label`. Invalid arguments (what the operators throw for a bad model or input) become
// ORT_INVALID_ARGUMENT, errors of ORT's API keep their code, anything else is ORT_FAIL.
OrtStatusPtr CurrentExceptionStatus(const std::string& node_label);

// Runs `work` and returns its exception, if any, as the status ORT expects from the V2 callbacks
// (whose callers do not catch).
template <typename Work>
OrtStatusPtr RunReportingErrors(const std::string& node_label, Work&& work) {
  try {
    work();
    return nullptr;
  } catch (...) {
    return CurrentExceptionStatus(node_label);
  }
}

// Scratch memory from the session's CPU allocator (its arena reuses blocks between runs), aligned
// for full-vector loads.
class ScratchBuffer {
 public:
  ScratchBuffer(const Ort::KernelContext& context, size_t floats);
  ~ScratchBuffer();
  ScratchBuffer(const ScratchBuffer&) = delete;
  ScratchBuffer& operator=(const ScratchBuffer&) = delete;

  float* data() const { return data_; }

 private:
  static constexpr uintptr_t kAlignment = 64;
  OrtAllocator* allocator_ = nullptr;
  void* raw_ = nullptr;
  float* data_ = nullptr;
};

}  // namespace ortsparse
