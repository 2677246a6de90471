// Elementwise binary ops with NumPy broadcasting: out[i] = a[offset_a(i)] op b[offset_b(i)].
// The host right-aligns the shapes to rank 6 and gives each input its element strides,
// with stride 0 along broadcast dimensions; `shape` is the output's shape.
#include "common.cuh"

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
    DEFINE_BINARY(div, x / y, T, SUF)

DEFINE_BINARY_ALL(float, f32)
DEFINE_BINARY_ALL(double, f64)
