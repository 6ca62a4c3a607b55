// Polynomial coefficients shared by the vectorized activations. Each set was fitted here by
// weighted least squares in float64 on Chebyshev nodes, minimizing relative error.
#pragma once

namespace ortsparse::kernels::coefficients {

// Range reduction for e^(-x) = 2^n * e^r, n = round(-x * kLog2E), r = -x - n * kLn2. One float
// for ln 2: its error times |n| <= 128 stays below 2.5e-7 relative, and the split hi/lo constant
// cost an op per vector in the output stage (YOLO's SiLU).
inline constexpr float kLog2E = 1.44269504088896341f;
inline constexpr float kLn2 = 0.693147180559945309f;
// Adding 1.5 * 2^23 leaves a float in [-2^22, 2^22] rounded to an integer in the low mantissa
// bits; subtracting it back gives that integer. An FMA and a subtraction instead of a multiply
// and roundscale, which takes twice an FMA's issue slots on this project's Xeon.
inline constexpr float kRoundingShift = 12582912.0f;
// Exponents are clamped to keep n in [-126, 128]. Below, 2^n stays a normal float; above, past
// ln(FLT_MAX) = 88.72, e^(-x) overflows to infinity as it should, so that sigmoid and SiLU give 0
// for x below -88.72 (and NaN at -infinity, as x * sigmoid(x) does), not x / FLT_MAX. n = 128 is
// where AVX2's exponent bits already spell infinity.
inline constexpr float kExpMinExponent = -87.33f;
inline constexpr float kExpMaxExponent = 89.0f;

// e^r = sum kExp[i] r^i for |r| <= ln2 / 2, kExp[0] = kExp[1] = 1 held; relative error 1.1e-7.
// Degree 6 (2.6e-9) bought accuracy beyond float's at an FMA per vector.
inline constexpr float kExp[6] = {1.0f,
                                  1.0f,
                                  0.499992311000824f,
                                  0.16667114198207855f,
                                  0.041890114545822144f,
                                  0.008312525227665901f};

// erfc(a) = e^(-a^2) * sum kErfc[i] t^i with t = 1 / (1 + kErfcScale * a), for 0 <= a <= 10: one
// formula for the whole range, accurate relative to erfc (5e-8 with these float coefficients),
// so that 1 + erf(z) keeps its relative accuracy in Gelu's negative tail.
inline constexpr float kErfcScale = 0.4f;
inline constexpr float kErfc[10] = {2.5701023332658224e-05f, 0.22509731352329254f,
                                    0.23122383654117584f,    0.17807041108608246f,
                                    0.26662901043891907f,    -0.06461648643016815f,
                                    0.27080246806144714f,    -0.05978266894817352f,
                                    -0.07647379487752914f,   0.029024261981248856f};
// Beyond this |z| erfc(|z|) < 1e-35: Gelu's output is exactly x or (as good as) zero.
inline constexpr float kErfcMaxInput = 9.0f;

inline constexpr float kSqrtHalf = 0.70710678118654752f;
inline constexpr float kSqrtTwoOverPi = 0.79788456080286536f;
inline constexpr float kGeluTanhCubic = 0.044715f;

// HardSwish's gate, clip(x * kHardSwishSlope + kHardSwishOffset, 0, 1): ONNX's alpha and beta.
inline constexpr float kHardSwishSlope = 1.0f / 6.0f;
inline constexpr float kHardSwishOffset = 0.5f;

}  // namespace ortsparse::kernels::coefficients
