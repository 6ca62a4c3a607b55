#include "operators/op_support.h"

#include <cstdlib>
#include <exception>
#include <new>
#include <sstream>
#include <stdexcept>

namespace ortsparse {

bool FlagVariable(const char* name, bool fallback) {
  const char* value = std::getenv(name);
  if (value == nullptr || *value == '\0') return fallback;
  const std::string text = value;
  if (text == "0" || text == "1") return text == "1";
  throw std::invalid_argument(std::string(name) + "='" + text + "' is not 0 or 1");
}

std::string ShapeString(const std::vector<int64_t>& shape) {
  std::ostringstream s;
  s << '[';
  for (size_t i = 0; i < shape.size(); ++i) s << (i ? ", " : "") << shape[i];
  s << ']';
  return s.str();
}

ProductShape MatrixProductShape(const std::vector<int64_t>& x_shape, int64_t k, int64_t n) {
  if (x_shape.size() < 2) {
    throw std::invalid_argument("X must have rank >= 2, got shape " + ShapeString(x_shape));
  }
  if (x_shape.back() != k) {
    throw std::invalid_argument("X's last dimension is " + std::to_string(x_shape.back()) +
                                " but attribute K is " + std::to_string(k));
  }
  ProductShape shape{x_shape, 1};
  shape.y_shape.back() = n;
  for (size_t i = 0; i + 1 < x_shape.size(); ++i) shape.rows *= static_cast<size_t>(x_shape[i]);
  return shape;
}

Threading ReadThreading(const OrtKernelInfo* info) {
  const int64_t single_thread = IntAttribute(info, "single_thread").value_or(0);
  if (single_thread != 0 && single_thread != 1) {
    throw std::invalid_argument("attribute single_thread must be 0 or 1, got " +
                                std::to_string(single_thread));
  }
  return single_thread == 1 ? Threading::kCallingThread : Threading::kIntraOpPool;
}

void RunTasks(Ort::KernelContext& context, Threading threading, void (*task)(void*, size_t),
              size_t count, void* data) {
  if (threading == Threading::kIntraOpPool) {
    context.ParallelFor(task, count, 0, data);
    return;
  }
  for (size_t index = 0; index < count; ++index) task(data, index);
}

namespace {

template <typename T>
using GetAttribute = OrtStatus*(ORT_API_CALL*)(const OrtKernelInfo*, const char*, T*);

template <typename T>
std::optional<T> ScalarAttribute(const OrtKernelInfo* info, const char* name, GetAttribute<T> get) {
  T value{};
  Ort::Status status{get(info, name, &value)};
  if (!status.IsOK()) return std::nullopt;
  return value;
}

// An array attribute read with ORT's two-call protocol (the size, then the values) through
// `get_array`, one of KernelInfoGetAttributeArray_*.
template <typename T>
using GetAttributeArray = OrtStatus*(ORT_API_CALL*)(const OrtKernelInfo*, const char*, T*, size_t*);

template <typename T>
std::optional<std::vector<T>> ArrayAttribute(const OrtKernelInfo* info, const char* name,
                                             GetAttributeArray<T> get_array) {
  size_t size = 0;
  Ort::Status status{get_array(info, name, nullptr, &size)};
  if (!status.IsOK()) return std::nullopt;
  std::vector<T> values(size);
  status = Ort::Status{get_array(info, name, values.data(), &size)};
  if (!status.IsOK()) return std::nullopt;
  return values;
}

}  // namespace

std::optional<int64_t> IntAttribute(const OrtKernelInfo* info, const char* name) {
  return ScalarAttribute<int64_t>(info, name, Ort::GetApi().KernelInfoGetAttribute_int64);
}

std::optional<std::vector<int64_t>> IntsAttribute(const OrtKernelInfo* info, const char* name) {
  return ArrayAttribute<int64_t>(info, name, Ort::GetApi().KernelInfoGetAttributeArray_int64);
}

std::optional<float> FloatAttribute(const OrtKernelInfo* info, const char* name) {
  return ScalarAttribute<float>(info, name, Ort::GetApi().KernelInfoGetAttribute_float);
}

std::optional<std::vector<float>> FloatsAttribute(const OrtKernelInfo* info, const char* name) {
  return ArrayAttribute<float>(info, name, Ort::GetApi().KernelInfoGetAttributeArray_float);
}

std::optional<std::string> StringAttribute(const OrtKernelInfo* info, const char* name) {
  size_t size = 0;
  Ort::Status status{Ort::GetApi().KernelInfoGetAttribute_string(info, name, nullptr, &size)};
  if (!status.IsOK()) return std::nullopt;
  std::string value(size, '\0');
  status =
      Ort::Status{Ort::GetApi().KernelInfoGetAttribute_string(info, name, value.data(), &size)};
  if (!status.IsOK()) return std::nullopt;
  value.resize(size > 0 ? size - 1 : 0);  // drop the terminating '\0'
  return value;
}

Ort::ConstValue OptionalInput(const Ort::KernelContext& context, size_t index) {
  if (index >= context.GetInputCount()) return Ort::ConstValue{nullptr};
  return context.GetInput(index);
}

bool NodeHasInput(const Ort::ConstKernelInfo& info, size_t index) {
  return index < info.GetInputCount() && !info.GetInputName(index).empty();
}

OrtStatusPtr CurrentExceptionStatus(const std::string& node_label) {
  const OrtApi& api = Ort::GetApi();
  try {
    throw;
  } catch (const Ort::Exception& e) {
    return api.CreateStatus(e.GetOrtErrorCode(), (node_label + ": " + e.what()).c_str());
  } catch (const std::invalid_argument& e) {
    return api.CreateStatus(ORT_INVALID_ARGUMENT, (node_label + ": " + e.what()).c_str());
  } catch (const std::exception& e) {
    return api.CreateStatus(ORT_FAIL, (node_label + ": " + e.what()).c_str());
  } catch (...) {
    return api.CreateStatus(ORT_FAIL, (node_label + ": unknown error").c_str());
  }
}

ScratchBuffer::ScratchBuffer(const Ort::KernelContext& context, size_t floats) {
  const Ort::MemoryInfo cpu = Ort::MemoryInfo::CreateCpu(OrtArenaAllocator, OrtMemTypeDefault);
  allocator_ = context.GetAllocator(*cpu);
  raw_ = allocator_->Alloc(allocator_, floats * sizeof(float) + kAlignment);
  if (raw_ == nullptr) {
    Ort::GetApi().ReleaseAllocator(allocator_);
    throw std::bad_alloc();
  }
  const uintptr_t address = reinterpret_cast<uintptr_t>(raw_);
  data_ = reinterpret_cast<float*>((address + kAlignment - 1) & ~(kAlignment - 1));
}

ScratchBuffer::~ScratchBuffer() {
  allocator_->Free(allocator_, raw_);
  Ort::GetApi().ReleaseAllocator(allocator_);
}

std::string NodeLabel(const char* op_name, const Ort::ConstKernelInfo& info) {
  return std::string(op_name) + " node '" + info.GetNodeName() + "'";
}

}  // namespace ortsparse
