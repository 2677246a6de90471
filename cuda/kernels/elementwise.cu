// Elementwise ops, one kernel per op and dtype.
//
// Unary: y = f(x). The engine composes their backwards from other ops (relu's and clamp's
// masks are the `relu_grad` / `clamp_grad` kernels below).
//
// Binary, with NumPy broadcasting: out[i] = a[offset_a(i)] op b[offset_b(i)].
// The host right-aligns the shapes to rank 6 and gives each input its element strides,
// with stride 0 along broadcast dimensions; `shape` is the output's shape.
// Besides arithmetic, three helpers the engine's backward rules use: `eq` (1 where equal,
// the max backward's mask), `relu_grad` (b where a > 0) and `clamp_grad` (b where
// lo <= a <= hi), with a the forward input and b the upstream gradient.
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

#define DEFINE_BINARY(NAME, EXPR, T, SUF)                                                      \
    extern "C" __global__ void NAME##_##SUF(const T* a, Dims6 a_strides, const T* b,           \
                                            Dims6 b_strides, T* out, Dims6 shape,              \
                                            unsigned int n) {                                  \
        FOR_EACH_INDEX(i, n) {                                                                 \
            unsigned int ia, ib;                                                               \
            strided_offset2(i, shape, a_strides, b_strides, ia, ib);                           \
            const T x = a[ia];                                                                 \
            const T y = b[ib];                                                                 \
            out[i] = EXPR;                                                                     \
        }                                                                                      \
    }

#define DEFINE_BINARY_ALL(T, SUF)                                                              \
    DEFINE_BINARY(add, x + y, T, SUF)                                                          \
    DEFINE_BINARY(sub, x - y, T, SUF)                                                          \
    DEFINE_BINARY(mul, x * y, T, SUF)                                                          \
    DEFINE_BINARY(div, x / y, T, SUF)                                                          \
    DEFINE_BINARY(eq, x == y ? T(1) : T(0), T, SUF)                                            \
    DEFINE_BINARY(relu_grad, x > T(0) ? y : T(0), T, SUF)                                      \
    extern "C" __global__ void clamp_grad_##SUF(const T* a, Dims6 a_strides, const T* b,       \
                                                Dims6 b_strides, T* out, Dims6 shape,          \
                                                unsigned int n, T lo, T hi) {                  \
        FOR_EACH_INDEX(i, n) {                                                                 \
            unsigned int ia, ib;                                                               \
            strided_offset2(i, shape, a_strides, b_strides, ia, ib);                           \
            const T x = a[ia];                                                                 \
            out[i] = (x >= lo && x <= hi) ? b[ib] : T(0);                                      \
        }                                                                                      \
    }

DEFINE_BINARY_ALL(float, f32)
DEFINE_BINARY_ALL(double, f64)
