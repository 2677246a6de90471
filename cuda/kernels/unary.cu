// Elementwise unary ops: y = f(x). The engine composes their backwards from other ops
// (relu's and clamp's masks are the `relu_grad` / `clamp_grad` kernels of binary.cu).
#include "common.cuh"

#define DEFINE_UNARY(T, SUF)                                                                   \
    extern "C" __global__ void neg_fwd_##SUF(const T* x, T* y, unsigned int n) {              \
        FOR_EACH_INDEX(i, n) y[i] = -x[i];                                                     \
    }                                                                                          \
    extern "C" __global__ void exp_fwd_##SUF(const T* x, T* y, unsigned int n) {              \
        FOR_EACH_INDEX(i, n) y[i] = exp_of(x[i]);                                              \
    }                                                                                          \
    extern "C" __global__ void log_fwd_##SUF(const T* x, T* y, unsigned int n) {              \
        FOR_EACH_INDEX(i, n) y[i] = log_of(x[i]);                                              \
    }                                                                                          \
    extern "C" __global__ void sqrt_fwd_##SUF(const T* x, T* y, unsigned int n) {             \
        FOR_EACH_INDEX(i, n) y[i] = sqrt_of(x[i]);                                             \
    }                                                                                          \
    extern "C" __global__ void relu_fwd_##SUF(const T* x, T* y, unsigned int n) {             \
        FOR_EACH_INDEX(i, n) y[i] = x[i] > T(0) ? x[i] : T(0);                                 \
    }                                                                                          \
    /* Comparisons rather than fmin/fmax so that a NaN input stays NaN. */                     \
    extern "C" __global__ void clamp_fwd_##SUF(const T* x, T* y, unsigned int n, T lo, T hi) { \
        FOR_EACH_INDEX(i, n) { const T v = x[i]; y[i] = v < lo ? lo : (v > hi ? hi : v); }     \
    }                                                                                          \
    extern "C" __global__ void powf_fwd_##SUF(const T* x, T* y, unsigned int n, T p) {        \
        FOR_EACH_INDEX(i, n) y[i] = pow_of(x[i], p);                                           \
    }                                                                                          \
    /* y = a*x + b: scalar multiply / add, e.g. the 1/N of a mean's backward. */               \
    extern "C" __global__ void affine_fwd_##SUF(const T* x, T* y, unsigned int n, T a, T b) {  \
        FOR_EACH_INDEX(i, n) y[i] = a * x[i] + b;                                              \
    }

DEFINE_UNARY(float, f32)
DEFINE_UNARY(double, f64)
