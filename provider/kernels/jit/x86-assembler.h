// The few x86-64 AVX-512 instructions that compiled kernels are made of, encoded into bytes.
//
// Only what the generators need: full-width float vector loads and stores, zeroing, FMA with a
// broadcast float from memory, adding an immediate to a pointer register, and return. Memory
// operands are [base + displacement] with a base that needs no SIB byte.
#pragma once

#include <cstdint>
#include <vector>

namespace ortsparse::kernels::jit {

// The System V argument registers the generated functions read (first to sixth argument).
enum class Gpr : uint8_t { kRdi = 7, kRsi = 6, kRdx = 2, kRcx = 1, kR8 = 8, kR9 = 9 };

class Avx512Assembler {
 public:
  // vmovups zmm, [base + displacement]
  void LoadVector(int zmm, Gpr base, int32_t displacement);
  // vmovups [base + displacement], zmm
  void StoreVector(int zmm, Gpr base, int32_t displacement);
  // vpxord zmm, zmm, zmm
  void ZeroVector(int zmm);
  // vfmadd231ps sum, x, dword [base + displacement]{1to16}: sum += x * broadcast float.
  void FmaBroadcast(int sum, int x, Gpr base, int32_t displacement);
  // add base, value (base one of rdi, rsi, rdx, rcx)
  void AddImmediate(Gpr base, int32_t value);
  void Return();

  const std::vector<uint8_t>& code() const { return code_; }

 private:
  // The EVEX prefix of a 512-bit instruction: map (1 = 0F, 2 = 0F38), implied prefix (0 none,
  // 1 = 66), reg and vvvv vector registers (vvvv < 0: unused), and the ModRM.rm operand: a vector
  // register when rm_is_vector, else a general register.
  void Evex(int map, int prefix, int reg, int vvvv, int rm, bool rm_is_vector, bool broadcast);
  // ModRM (and displacement) for [base + displacement]; EVEX scales an 8-bit displacement by the
  // bytes the operand reads (`scale`), so that is tried first.
  void MemoryOperand(int reg, Gpr base, int32_t displacement, int scale);

  std::vector<uint8_t> code_;
};

}  // namespace ortsparse::kernels::jit
