// Filling, copying and converting buffers.
// - fill:  y[i] = value.
// - copy:  materialises a strided view: y (contiguous, shape `shape`) gets
//          x[offset(i)], offset from the view's element strides. Covers transpose,
//          permute, slicing with steps and broadcast-expand (stride 0).
// - copy_into: the reverse, y's strided view gets x (contiguous): the backward of a
//          stepped slice. The view must not address an element twice (checked on the host).
// - cast_<from>_<to>: element type conversion among f32, f64, f16, bf16.
#include "common.cuh"
#include "dtype.cuh"

#define DEFINE_FILL_COPY(T, SUF)                                                               \
    extern "C" __global__ void fill_##SUF(T* y, unsigned int n, T value) {                     \
        FOR_EACH_INDEX(i, n) y[i] = value;                                                     \
    }                                                                                          \
    extern "C" __global__ void copy_##SUF(const T* x, Dims6 x_strides, T* y, Dims6 shape,      \
                                          unsigned int n) {                                    \
        FOR_EACH_INDEX(i, n) y[i] = x[strided_offset(i, shape, x_strides)];                    \
    }                                                                                          \
    extern "C" __global__ void copy_into_##SUF(const T* x, T* y, Dims6 y_strides, Dims6 shape, \
                                               unsigned int n) {                               \
        FOR_EACH_INDEX(i, n) y[strided_offset(i, shape, y_strides)] = x[i];                    \
    }

DEFINE_FILL_COPY(float, f32)
DEFINE_FILL_COPY(double, f64)

#define DEFINE_CAST(FROM, FROM_SUF, TO, TO_SUF)                                                \
    extern "C" __global__ void cast_##FROM_SUF##_##TO_SUF(const FROM* x, TO* y, unsigned int n) { \
        FOR_EACH_INDEX(i, n) y[i] = Convert<TO>::from(x[i]);                                   \
    }

#define DEFINE_CASTS_FROM(FROM, FROM_SUF)                                                      \
    DEFINE_CAST(FROM, FROM_SUF, float, f32)                                                    \
    DEFINE_CAST(FROM, FROM_SUF, double, f64)                                                   \
    DEFINE_CAST(FROM, FROM_SUF, __half, f16)                                                   \
    DEFINE_CAST(FROM, FROM_SUF, __nv_bfloat16, bf16)

// Same-type pairs are included (a plain copy) so every (from, to) pair has a kernel.
DEFINE_CASTS_FROM(float, f32)
DEFINE_CASTS_FROM(double, f64)
DEFINE_CASTS_FROM(__half, f16)
DEFINE_CASTS_FROM(__nv_bfloat16, bf16)
