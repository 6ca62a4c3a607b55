// Generated machine code, mapped executable: written while the pages are writable, then made
// read-only and executable, never both writable and executable.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

namespace ortsparse::kernels::jit {

class ExecutableCode {
 public:
  // Maps `code`; null where the system refuses executable memory (a hardened kernel's policy, or
  // no address space left), so that callers can keep to their ahead-of-time kernels.
  static std::unique_ptr<ExecutableCode> Map(const std::vector<uint8_t>& code);
  ~ExecutableCode();
  ExecutableCode(const ExecutableCode&) = delete;
  ExecutableCode& operator=(const ExecutableCode&) = delete;

  const uint8_t* At(size_t offset) const { return start_ + offset; }

 private:
  ExecutableCode(uint8_t* start, size_t bytes) : start_(start), bytes_(bytes) {}

  uint8_t* start_;
  size_t bytes_;
};

}  // namespace ortsparse::kernels::jit
