#include "kernels/jit/x86-assembler.h"

namespace ortsparse::kernels::jit {
namespace {

constexpr int kVectorBytes = 64;
constexpr int kFloatBytes = 4;

}  // namespace

void Avx512Assembler::Evex(int map, int prefix, int reg, int vvvv, int rm, bool rm_is_vector,
                           bool broadcast) {
  // The register-number bits are stored inverted.
  const int v = vvvv < 0 ? 0 : vvvv;
  uint8_t p0 = static_cast<uint8_t>(map);
  if ((reg & 8) == 0) p0 |= 0x80;                        // R
  if (!rm_is_vector || (rm & 16) == 0) p0 |= 0x40;       // X: rm's bit 4 for a vector register
  if ((rm & 8) == 0) p0 |= 0x20;                         // B
  if ((reg & 16) == 0) p0 |= 0x10;                       // R'
  const uint8_t p1 = static_cast<uint8_t>((~v & 15) << 3 | 0x04 | prefix);  // W0, vvvv, pp
  uint8_t p2 = 0x40;                                     // L'L = 512 bits, no masking
  if (broadcast) p2 |= 0x10;
  if ((v & 16) == 0) p2 |= 0x08;                         // V'
  code_.insert(code_.end(), {0x62, p0, p1, p2});
}

void Avx512Assembler::MemoryOperand(int reg, Gpr base, int32_t displacement, int scale) {
  // The base's bit 3 (r8, r9) is in the EVEX prefix.
  const int rm = static_cast<int>(base) & 7;
  const int reg_bits = (reg & 7) << 3;
  if (displacement % scale == 0 && displacement / scale >= -128 && displacement / scale <= 127) {
    code_.push_back(static_cast<uint8_t>(0x40 | reg_bits | rm));
    code_.push_back(static_cast<uint8_t>(static_cast<int8_t>(displacement / scale)));
    return;
  }
  code_.push_back(static_cast<uint8_t>(0x80 | reg_bits | rm));
  const uint32_t bits = static_cast<uint32_t>(displacement);
  for (int byte = 0; byte < 4; ++byte) code_.push_back(static_cast<uint8_t>(bits >> (8 * byte)));
}

void Avx512Assembler::LoadVector(int zmm, Gpr base, int32_t displacement) {
  Evex(1, 0, zmm, -1, static_cast<int>(base), false, false);
  code_.push_back(0x10);
  MemoryOperand(zmm, base, displacement, kVectorBytes);
}

void Avx512Assembler::StoreVector(int zmm, Gpr base, int32_t displacement) {
  Evex(1, 0, zmm, -1, static_cast<int>(base), false, false);
  code_.push_back(0x11);
  MemoryOperand(zmm, base, displacement, kVectorBytes);
}

void Avx512Assembler::ZeroVector(int zmm) {
  Evex(1, 1, zmm, zmm, zmm, true, false);
  code_.push_back(0xEF);
  code_.push_back(static_cast<uint8_t>(0xC0 | (zmm & 7) << 3 | (zmm & 7)));
}

void Avx512Assembler::FmaBroadcast(int sum, int x, Gpr base, int32_t displacement) {
  Evex(2, 1, sum, x, static_cast<int>(base), false, true);
  code_.push_back(0xB8);
  MemoryOperand(sum, base, displacement, kFloatBytes);
}

void Avx512Assembler::AddImmediate(Gpr base, int32_t value) {
  const uint32_t bits = static_cast<uint32_t>(value);
  code_.insert(code_.end(), {0x48, 0x81, static_cast<uint8_t>(0xC0 | static_cast<int>(base))});
  for (int byte = 0; byte < 4; ++byte) code_.push_back(static_cast<uint8_t>(bits >> (8 * byte)));
}

void Avx512Assembler::Return() { code_.push_back(0xC3); }

}  // namespace ortsparse::kernels::jit
