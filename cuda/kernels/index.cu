// Indexing along one axis. x is viewed as [outer, dim, inner].
// - index_select: y[o, k, i] = x[o, idx[k], i]            (idx: [count], shared by all o)
// - gather:       y[o, k, i] = x[o, idx[o, k, i], i]      (idx: [outer, count, inner],
//                 e.g. picking each row's target logit)
// Backward of both is a scatter-add into dx: an index may repeat, so the kernels add with
// atomics and the caller zero-fills dx first (or passes a gradient to accumulate into).
// Indices are validated on the host before upload; an out-of-range index here yields 0
// in the forward and is skipped in the backward, so it can never touch foreign memory.
#include "common.cuh"

template <typename T>
__device__ void select_fwd(const T* x, const int* idx, T* y, unsigned int outer, unsigned int dim,
                           unsigned int count, unsigned int inner, bool per_element) {
    FOR_EACH_INDEX(i, outer * count * inner) {
        const unsigned int in = i % inner, k = (i / inner) % count, o = i / (inner * count);
        const int src = idx[per_element ? i : k];
        y[i] = (src >= 0 && (unsigned int)src < dim) ? x[((size_t)o * dim + src) * inner + in] : T(0);
    }
}

template <typename T>
__device__ void select_bwd(const T* dy, const int* idx, T* dx, unsigned int outer, unsigned int dim,
                           unsigned int count, unsigned int inner, bool per_element) {
    FOR_EACH_INDEX(i, outer * count * inner) {
        const unsigned int in = i % inner, k = (i / inner) % count, o = i / (inner * count);
        const int dst = idx[per_element ? i : k];
        if (dst >= 0 && (unsigned int)dst < dim) atomicAdd(&dx[((size_t)o * dim + dst) * inner + in], dy[i]);
    }
}

#define DEFINE_INDEX(T, SUF)                                                                   \
    extern "C" __global__ void index_select_fwd_##SUF(const T* x, const int* idx, T* y,        \
                                                      unsigned int outer, unsigned int dim,    \
                                                      unsigned int count, unsigned int inner) {\
        select_fwd(x, idx, y, outer, dim, count, inner, false);                                \
    }                                                                                          \
    extern "C" __global__ void index_select_bwd_##SUF(const T* dy, const int* idx, T* dx,      \
                                                      unsigned int outer, unsigned int dim,    \
                                                      unsigned int count, unsigned int inner) {\
        select_bwd(dy, idx, dx, outer, dim, count, inner, false);                              \
    }                                                                                          \
    extern "C" __global__ void gather_fwd_##SUF(const T* x, const int* idx, T* y,              \
                                                unsigned int outer, unsigned int dim,          \
                                                unsigned int count, unsigned int inner) {      \
        select_fwd(x, idx, y, outer, dim, count, inner, true);                                 \
    }                                                                                          \
    extern "C" __global__ void gather_bwd_##SUF(const T* dy, const int* idx, T* dx,            \
                                                unsigned int outer, unsigned int dim,          \
                                                unsigned int count, unsigned int inner) {      \
        select_bwd(dy, idx, dx, outer, dim, count, inner, true);                               \
    }

DEFINE_INDEX(float, f32)
DEFINE_INDEX(double, f64)
