// ORT glue shared by the operators: optional attributes, shape messages, scratch memory and the
// translation of exceptions into ORT statuses.
#pragma once

#include <onnxruntime_cxx_api.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

namespace ortsparse {

// The inputs every ortsparse op starts with (docs/ops.md): X, then its packed weights; each op
// numbers its further inputs from kWeightInputsEnd.
enum OpInput : size_t {
  kInputX = 0,
  kInputWeightValues = 1,
  kInputWeightGroupOffsets = 2,
  kInputWeightInputIndices = 3,
  kWeightInputsEnd = 4,
};

constexpr size_t CeilDiv(size_t a, size_t b) { return (a + b - 1) / b; }
constexpr size_t RoundUp(size_t a, size_t b) { return CeilDiv(a, b) * b; }

std::string ShapeString(const std::vector<int64_t>& shape);

// The environment variable `name` as a switch: `fallback` when unset or empty, false for 0, true
// for 1; throws std::invalid_argument for anything else.
bool FlagVariable(const char* name, bool fallback);

// Y's shape and the number of rows (product of the leading dims) of X [..., K] · W [K, N];
// throws std::invalid_argument when X's rank is below 2 or its last dim is not K.
struct ProductShape {
  std::vector<int64_t> y_shape;
  size_t rows;
};
ProductShape MatrixProductShape(const std::vector<int64_t>& x_shape, int64_t k, int64_t n);

// Optional attributes: ORT reports a missing one as an error status, which here means "absent".
std::optional<int64_t> IntAttribute(const OrtKernelInfo* info, const char* name);
std::optional<std::vector<int64_t>> IntsAttribute(const OrtKernelInfo* info, const char* name);
std::optional<float> FloatAttribute(const OrtKernelInfo* info, const char* name);
std::optional<std::vector<float>> FloatsAttribute(const OrtKernelInfo* info, const char* name);
std::optional<std::string> StringAttribute(const OrtKernelInfo* info, const char* name);

// A constant 1-D input of element type T, copied out of ORT's initializer; throws
// std::invalid_argument unless the node gives one.
template <typename T>
std::vector<T> ConstantVectorInput(const Ort::ConstKernelInfo& info, size_t index,
                                   const char* name) {
  int is_constant = 0;
  Ort::ConstValue value{nullptr};
  if (index < info.GetInputCount()) value = info.GetTensorConstantInput(index, &is_constant);
  if (!is_constant || value == nullptr) {
    throw std::invalid_argument(std::string(name) + " (input " + std::to_string(index) +
                                ") must be a constant initializer");
  }
  const Ort::TensorTypeAndShapeInfo type_and_shape = value.GetTensorTypeAndShapeInfo();
  if (type_and_shape.GetElementType() != Ort::TypeToTensorType<T>::type) {
    throw std::invalid_argument(std::string(name) + " (input " + std::to_string(index) +
                                ") has the wrong element type");
  }
  const std::vector<int64_t> shape = type_and_shape.GetShape();
  if (shape.size() != 1) {
    throw std::invalid_argument(std::string(name) + " must be 1-D, got shape " +
                                ShapeString(shape));
  }
  const T* data = value.GetTensorData<T>();
  return std::vector<T>(data, data + shape[0]);
}

// The tensor attribute `name` of element type T, or nothing when the node has none; throws
// std::invalid_argument for another element type, or a shape other than `shape` (any 1-D shape
// where that is empty).
template <typename T>
std::optional<std::vector<T>> TensorAttribute(const Ort::ConstKernelInfo& info, const char* name,
                                              const std::vector<int64_t>& shape = {}) {
  Ort::AllocatorWithDefaultOptions allocator;
  Ort::Value value{nullptr};
  try {
    value = info.GetTensorAttribute(name, allocator);
  } catch (const Ort::Exception&) {
    return std::nullopt;  // ORT reports a missing attribute as an error
  }
  const Ort::TensorTypeAndShapeInfo type_and_shape = value.GetTensorTypeAndShapeInfo();
  const std::vector<int64_t> actual = type_and_shape.GetShape();
  const bool shape_matches = shape.empty() ? actual.size() == 1 : actual == shape;
  if (type_and_shape.GetElementType() != Ort::TypeToTensorType<T>::type || !shape_matches) {
    throw std::invalid_argument("attribute " + std::string(name) + " must be " +
                                (std::is_same_v<T, float> ? "a float" : "an int32") +
                                " tensor of shape " +
                                (shape.empty() ? std::string("[n]") : ShapeString(shape)) +
                                ", got shape " + ShapeString(actual));
  }
  const T* data = value.GetTensorData<T>();
  return std::vector<T>(data, data + type_and_shape.GetElementCount());
}

// At least `floats` floats on a cache line, in a buffer this thread keeps for its life at the
// largest size asked for; buffers in use at once take different Tag types.
template <typename Tag>
float* ThreadLocalFloats(size_t floats) {
  constexpr size_t kCacheLineBytes = 64;
  constexpr size_t kCacheLineFloats = kCacheLineBytes / sizeof(float);
  thread_local std::vector<float> buffer;
  if (buffer.size() < floats + kCacheLineFloats) buffer.resize(floats + kCacheLineFloats);
  const uintptr_t address = reinterpret_cast<uintptr_t>(buffer.data());
  return buffer.data() + (RoundUp(address, kCacheLineBytes) - address) / sizeof(float);
}

// Where a node runs its tasks (attribute `single_thread`, 0 when absent): spread over ORT's
// intra-op pool, or all on the calling thread, which the rewriter picks for a node measured
// faster without the pool's hand-offs. Throws std::invalid_argument for a value other than 0 or 1.
enum class Threading { kIntraOpPool, kCallingThread };
Threading ReadThreading(const OrtKernelInfo* info);

// Runs task(data, i) for every i below `count` as `threading` says. On the calling thread the
// tasks run in order, as ORT's pool runs them with one thread.
void RunTasks(Ort::KernelContext& context, Threading threading, void (*task)(void*, size_t),
              size_t count, void* data);

// An optional input as the run sees it: null when the node leaves it out.
Ort::ConstValue OptionalInput(const Ort::KernelContext& context, size_t index);

// Whether the node gives optional input `index`: neither leaves it out nor names it "".
bool NodeHasInput(const Ort::ConstKernelInfo& info, size_t index);

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

// "SparseConv node 'name'": how error messages name the node.
std::string NodeLabel(const char* op_name, const Ort::ConstKernelInfo& info);

// What every ortsparse kernel is to ORT (CRTP): Kernel is constructed from the node's
// Ort::ConstKernelInfo and defines `void Compute(Ort::KernelContext&) const`; both throw for a
// malformed node or bad input (std::invalid_argument). ORT's V2 callbacks get those exceptions as
// statuses naming the node.
template <typename Kernel>
class NodeKernel {
 public:
  // Never throws: errors become the returned status.
  OrtStatusPtr ComputeV2(OrtKernelContext* context) const {
    return RunReportingErrors(node_label_, [&] {
      Ort::KernelContext kernel_context{context};
      static_cast<const Kernel*>(this)->Compute(kernel_context);
    });
  }

 protected:
  std::string node_label_;

 private:
  template <typename Op, typename OpKernel>
  friend struct NodeOp;
};

// What every ortsparse op is to ORT (CRTP on Op, which names the op in GetName and declares its
// inputs' and outputs' types): it creates a Kernel for each node, and returns the error of its
// construction as the status of the creation. Every op's inputs from Op::kFirstOptionalInput on
// may be left out; it has one output unless Op says otherwise.
template <typename Op, typename Kernel>
struct NodeOp : Ort::CustomOpBase<Op, Kernel, /*WithStatus=*/true> {
  OrtCustomOpInputOutputCharacteristic GetInputCharacteristic(size_t index) const {
    return index >= Op::kFirstOptionalInput
               ? OrtCustomOpInputOutputCharacteristic::INPUT_OUTPUT_OPTIONAL
               : OrtCustomOpInputOutputCharacteristic::INPUT_OUTPUT_REQUIRED;
  }
  size_t GetOutputTypeCount() const { return 1; }

  OrtStatusPtr CreateKernelV2(const OrtApi& /*api*/, const OrtKernelInfo* info,
                              void** kernel) const {
    const Ort::ConstKernelInfo kernel_info{info};
    std::string node_label = NodeLabel(static_cast<const Op*>(this)->GetName(), kernel_info);
    return RunReportingErrors(node_label, [&] {
      auto created = std::make_unique<Kernel>(kernel_info);
      created->node_label_ = std::move(node_label);
      *kernel = created.release();
    });
  }
};

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
