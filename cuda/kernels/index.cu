// Indexing, the kernels of the engine's ops/index.rs. x is viewed as [outer, dim, inner].
// - index_select: y[o, k, i] = x[o, idx[k], i]            (idx: [count], shared by all o)
// - gather:       y[o, k, i] = x[o, idx[o, k, i], i]      (idx: [outer, count, inner],
//                 e.g. picking each row's target logit)
// Backward of both is a scatter-add into dx: an index may repeat, so the kernels add with
// atomics and the caller zero-fills dx first (or passes a gradient to accumulate into).
// Indices are validated on the host before upload; an out-of-range index here yields 0
// in the forward and is skipped in the backward, so it can never touch foreign memory.
// - channel_pad_subsample: ResNet's option-A shortcut. x [N, Cin, H, W] ->
//   y [N, Cout, OH, OW], OH = ceil(H / s): keep every s-th row and column, and place the
//   Cin channels at [pad, pad + Cin) among Cout zero channels.
// - concat: one input's part of a concatenation along an axis. x [outer, dim_x, inner]
//   goes to y [outer, dim_y, inner] at `offset` along the axis; concatenating k tensors
//   is k launches.
// The last two's backwards take a slice of dy, which the engine does with a strided copy
// (memory.cu), so they have no backward kernels.
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

// Mirrors `PadSubsample` in src/ops/index.rs.
struct PadSubsample {
    int n, c_in, h, w;
    int c_out, pad, stride;
    int out_h, out_w;
};

template <typename T> __device__ void pad_subsample_fwd(const T* x, T* y, PadSubsample g) {
    FOR_EACH_INDEX(i, (unsigned int)g.n * g.c_out * g.out_h * g.out_w) {
        const int ox = i % g.out_w, oy = (i / g.out_w) % g.out_h;
        const int c = (i / ((unsigned int)g.out_w * g.out_h)) % g.c_out;
        const int n = i / ((unsigned int)g.out_w * g.out_h * g.c_out);
        const int ci = c - g.pad;
        y[i] = (ci >= 0 && ci < g.c_in)
                   ? x[(((size_t)n * g.c_in + ci) * g.h + oy * g.stride) * g.w + ox * g.stride]
                   : T(0);
    }
}

#define DEFINE_PAD_CONCAT(T, SUF)                                                                   \
    extern "C" __global__ void channel_pad_subsample_fwd_##SUF(const T* x, T* y, PadSubsample g) { \
        pad_subsample_fwd(x, y, g);                                                            \
    }                                                                                          \
    extern "C" __global__ void concat_fwd_##SUF(const T* x, T* y, unsigned int outer,          \
                                                unsigned int dim_x, unsigned int inner,        \
                                                unsigned int dim_y, unsigned int offset) {     \
        FOR_EACH_INDEX(i, outer * dim_x * inner) {                                             \
            const unsigned int in = i % inner, d = (i / inner) % dim_x, o = i / (inner * dim_x);\
            y[((size_t)o * dim_y + offset + d) * inner + in] = x[i];                           \
        }                                                                                      \
    }

DEFINE_PAD_CONCAT(float, f32)
DEFINE_PAD_CONCAT(double, f64)
