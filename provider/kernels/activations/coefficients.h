// Polynomial coefficients shared by the vectorized activations. Each set was fitted here by
// weighted least squares in float64 on Chebyshev nodes, minimizing relative error.
#pragma once

namespace ortsparse::kernels::coefficients {

// Range reduction for e^x = 2^n * e^r: ln 2 split so that n * kLn2Hi is exact for |n| < 2^12.
inline constexpr float kLog2E = 1.44269504088896341f;
inline constexpr float kLn2Hi = 0.693145751953125f;
inline constexpr float kLn2Lo = 1.42860682030941723e-6f;
// Inputs are clamped so that 2^n stays a normal float: n in [-126, 127].
inline constexpr float kExpMinInput = -87.33f;
inline constexpr float kExpMaxInput = 88.37f;

// e^r = sum kExp[i] r^i for |r| <= ln2 / 2; relative error 2.6e-9.
inline constexpr float kExp[7] = {1.0f,
                                  1.0f,
                                  0.49999991059303284f,
                                  0.1666642129421234f,
                                  0.0416683591902256f,
                                  0.0083747748285532f,
                                  0.001382942427881062f};

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
