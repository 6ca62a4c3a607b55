// AVX2 quad plane packer: at stride 1, 32 columns of the four channel rows interleave by unpacks;
// at stride 2, 8 columns of each widen to dwords and merge by shifts. Only columns inside the row
// are loaded (the last chunk of a run overlaps the one before rather than reading past the row);
// the padding around them is filled without loads, and what no vector covers goes through the
// portable path.
#include <immintrin.h>

#include "kernels/u8s8-spconv/planes-impl.h"

namespace ortsparse::kernels {
namespace {

constexpr int64_t kStrideOneColumns = 32;
constexpr int64_t kStrideTwoColumns = 8;

__m256i Load32(const uint8_t* channel_row, int64_t column) {
  return channel_row == nullptr
             ? _mm256_setzero_si256()
             : _mm256_loadu_si256(reinterpret_cast<const __m256i*>(channel_row + column));
}

// out[0, 32) = the quads of columns column .. column + 31, all inside the row: byte and word
// unpacks interleave the four channels within each 128-bit lane, which leaves lane L of the m-th
// result holding columns 16 L + 4 m .. 16 L + 4 m + 3; lane swaps restore column order.
void Interleave32(const QuadRow& row, int64_t column, __m256i flip_bytes, uint32_t* out) {
  const __m256i c0 = Load32(row.channel_rows[0], column);
  const __m256i c1 = Load32(row.channel_rows[1], column);
  const __m256i c2 = Load32(row.channel_rows[2], column);
  const __m256i c3 = Load32(row.channel_rows[3], column);
  const __m256i pairs01_low = _mm256_unpacklo_epi8(c0, c1);
  const __m256i pairs01_high = _mm256_unpackhi_epi8(c0, c1);
  const __m256i pairs23_low = _mm256_unpacklo_epi8(c2, c3);
  const __m256i pairs23_high = _mm256_unpackhi_epi8(c2, c3);
  const __m256i q0 = _mm256_unpacklo_epi16(pairs01_low, pairs23_low);
  const __m256i q1 = _mm256_unpackhi_epi16(pairs01_low, pairs23_low);
  const __m256i q2 = _mm256_unpacklo_epi16(pairs01_high, pairs23_high);
  const __m256i q3 = _mm256_unpackhi_epi16(pairs01_high, pairs23_high);
  const __m256i columns[4] = {
      _mm256_permute2x128_si256(q0, q1, 0x20),
      _mm256_permute2x128_si256(q2, q3, 0x20),
      _mm256_permute2x128_si256(q0, q1, 0x31),
      _mm256_permute2x128_si256(q2, q3, 0x31),
  };
  for (size_t v = 0; v < 4; ++v) {
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + 8 * v),
                        _mm256_xor_si256(columns[v], flip_bytes));
  }
}

// The bytes of one channel row at columns column + 2 l (l < 8), zero-extended to dwords; the 16
// bytes from `column` on lie inside the row.
__m256i LoadEveryOtherColumn(const uint8_t* channel_row, int64_t column) {
  if (channel_row == nullptr) return _mm256_setzero_si256();
  const __m128i bytes = _mm_loadu_si128(reinterpret_cast<const __m128i*>(channel_row + column));
  return _mm256_cvtepu16_epi32(_mm_and_si128(bytes, _mm_set1_epi16(0x00ff)));
}

// out[0, 8) = the quads of columns column, column + 2, ..., column + 14 (column + 15 inside the
// row too).
void InterleaveEveryOther8(const QuadRow& row, int64_t column, __m256i flip_bytes,
                           uint32_t* out) {
  __m256i quads = LoadEveryOtherColumn(row.channel_rows[0], column);
  for (int j = 1; j < 4; ++j) {
    quads = _mm256_or_si256(quads,
                            _mm256_slli_epi32(LoadEveryOtherColumn(row.channel_rows[j], column),
                                              8 * j));
  }
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(out), _mm256_xor_si256(quads, flip_bytes));
}

int64_t CeilDivSigned(int64_t a, int64_t b) { return a >= 0 ? (a + b - 1) / b : -(-a / b); }

struct Avx2Interleave {
  static void Run(const QuadRow& row, int64_t first, size_t stride, size_t count, uint32_t flip,
                  uint32_t pad, uint32_t* out) {
    const int64_t step = static_cast<int64_t>(stride);
    const int64_t total = static_cast<int64_t>(count);
    // Outputs [inside_begin, inside_end) read columns inside the row.
    const int64_t inside_begin = std::clamp<int64_t>(CeilDivSigned(-first, step), 0, total);
    const int64_t inside_end =
        std::clamp<int64_t>(CeilDivSigned(row.width - first, step), inside_begin, total);
    std::fill_n(out, inside_begin, pad);
    std::fill_n(out + inside_end, total - inside_end, pad);
    const __m256i flip_bytes = _mm256_set1_epi32(static_cast<int>(flip));
    int64_t t = inside_begin;
    if (stride == 1 && inside_end - inside_begin >= kStrideOneColumns) {
      for (; t + kStrideOneColumns <= inside_end; t += kStrideOneColumns) {
        Interleave32(row, first + t, flip_bytes, out + t);
      }
      if (t < inside_end) {
        const int64_t last = inside_end - kStrideOneColumns;
        Interleave32(row, first + last, flip_bytes, out + last);
      }
      return;
    }
    if (stride == 2) {
      // A chunk's 16 bytes end at column first + 2 t + 15, which must lie inside the row.
      for (; t + kStrideTwoColumns <= inside_end && first + 2 * t + 16 <= row.width;
           t += kStrideTwoColumns) {
        InterleaveEveryOther8(row, first + 2 * t, flip_bytes, out + t);
      }
    }
    InterleaveRunScalar(row, first + t * step, stride, static_cast<size_t>(inside_end - t), flip,
                        pad, out + t);
  }
};

}  // namespace

void PackQuadPlanesAvx2(const QuadPlanesSource& source, const InputPlanes& layout,
                        size_t quad_begin, size_t quad_end, uint32_t* planes) {
  PackQuadPlanesWith<Avx2Interleave>(source, layout, quad_begin, quad_end, planes);
}

}  // namespace ortsparse::kernels
