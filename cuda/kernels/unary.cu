// Elementwise unary ops: y = f(x), and the backward kernels that cannot be composed from
// other ops cheaply (relu, clamp, powf need the forward input, not the output).
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
    /* dx = dy where x > 0 (the subgradient at 0 is taken as 0, as PyTorch does). */           \
    extern "C" __global__ void relu_bwd_##SUF(const T* x, const T* dy, T* dx, unsigned int n) {\
        FOR_EACH_INDEX(i, n) dx[i] = x[i] > T(0) ? dy[i] : T(0);                               \
    }                                                                                          \
    /* Comparisons rather than fmin/fmax so that a NaN input stays NaN. */                     \
    extern "C" __global__ void clamp_fwd_##SUF(const T* x, T* y, unsigned int n, T lo, T hi) { \
        FOR_EACH_INDEX(i, n) { const T v = x[i]; y[i] = v < lo ? lo : (v > hi ? hi : v); }     \
    }                                                                                          \
    /* The gradient passes inside [lo, hi], bounds included, as PyTorch's clamp backward. */  \
    extern "C" __global__ void clamp_bwd_##SUF(const T* x, const T* dy, T* dx, unsigned int n, \
                                               T lo, T hi) {                                   \
        FOR_EACH_INDEX(i, n) dx[i] = (x[i] >= lo && x[i] <= hi) ? dy[i] : T(0);                \
    }                                                                                          \
    extern "C" __global__ void powf_fwd_##SUF(const T* x, T* y, unsigned int n, T p) {        \
        FOR_EACH_INDEX(i, n) y[i] = pow_of(x[i], p);                                           \
    }                                                                                          \
    /* d/dx x^p = p x^(p-1) */                                                                 \
    extern "C" __global__ void powf_bwd_##SUF(const T* x, const T* dy, T* dx, unsigned int n, \
                                              T p) {                                           \
        FOR_EACH_INDEX(i, n) dx[i] = dy[i] * p * pow_of(x[i], p - T(1));                       \
    }                                                                                          \
    /* y = a*x + b: scalar multiply / add, e.g. the 1/N of a mean's backward. */               \
    extern "C" __global__ void affine_fwd_##SUF(const T* x, T* y, unsigned int n, T a, T b) {  \
        FOR_EACH_INDEX(i, n) y[i] = a * x[i] + b;                                              \
    }

DEFINE_UNARY(float, f32)
DEFINE_UNARY(double, f64)
