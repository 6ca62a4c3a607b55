#include "kernels/jit/executable-code.h"

#include <sys/mman.h>

#include <cstring>

namespace ortsparse::kernels::jit {

std::unique_ptr<ExecutableCode> ExecutableCode::Map(const std::vector<uint8_t>& code) {
  const size_t bytes = code.empty() ? 1 : code.size();
  void* start = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (start == MAP_FAILED) return nullptr;
  std::memcpy(start, code.data(), code.size());
  if (mprotect(start, bytes, PROT_READ | PROT_EXEC) != 0) {
    munmap(start, bytes);
    return nullptr;
  }
  return std::unique_ptr<ExecutableCode>(new ExecutableCode(static_cast<uint8_t*>(start), bytes));
}

ExecutableCode::~ExecutableCode() { munmap(start_, bytes_); }

}  // namespace ortsparse::kernels::jit
