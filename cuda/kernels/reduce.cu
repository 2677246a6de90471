// Reductions over one axis. The tensor is viewed as [outer, reduce, inner] and the output
// as [outer, inner]. Two layouts, chosen by the host:
// - `_contig_warp` / `_contig_block` (inner == 1): the reduced axis is contiguous, so a
//   warp (reduce <= 1024) or a block (longer) cooperates on each output, reading
//   coalesced;
// - `_strided` (inner > 1): one thread per output walks the axis; neighbouring threads
//   read neighbouring `inner` elements, which is the coalesced direction there.
// max also writes the argmax (index along the axis; the first one on ties, NaN wins).
// The engine composes the backwards from other ops (sum: a broadcast; max: an `eq` mask
// shared among ties; logsumexp: exp(x - y)), so there are no backward kernels here.
#include "common.cuh"

// Whether (a, ia) should replace (b, ib) as the running maximum.
template <typename T> __device__ __forceinline__ bool max_beats(T a, int ia, T b, int ib) {
    if (a != a) return b == b || ia < ib;  // NaN propagates, like torch.max
    return a > b || (a == b && ia < ib);
}

template <typename T> __device__ __forceinline__ void warp_argmax(T& v, int& idx) {
#pragma unroll
    for (int offset = 16; offset > 0; offset >>= 1) {
        const T ov = __shfl_xor_sync(0xffffffffu, v, offset);
        const int oi = __shfl_xor_sync(0xffffffffu, idx, offset);
        if (max_beats(ov, oi, v, idx)) { v = ov; idx = oi; }
    }
}

template <bool kBlock, typename T>
__device__ __forceinline__ void group_argmax(T& v, int& idx, T* scratch_v, int* scratch_i) {
    warp_argmax(v, idx);
    if (!kBlock) return;
    const unsigned int lane = threadIdx.x & 31u, warp = threadIdx.x >> 5;
    if (lane == 0) { scratch_v[warp] = v; scratch_i[warp] = idx; }
    __syncthreads();
    if (warp == 0) {
        v = lane < (blockDim.x >> 5) ? scratch_v[lane] : -inf_of(T(0));
        idx = lane < (blockDim.x >> 5) ? scratch_i[lane] : 0x7fffffff;
        warp_argmax(v, idx);
        if (lane == 0) { scratch_v[0] = v; scratch_i[0] = idx; }
    }
    __syncthreads();
    v = scratch_v[0];
    idx = scratch_i[0];
}

template <bool kBlock, typename T>
__device__ void sum_contig(const T* x, T* y, unsigned int outer, unsigned int reduce) {
    __shared__ T scratch[32];
    const RowGroup<kBlock> g;
    const unsigned int row = g.row();
    if (row >= outer) return;
    const T* xr = x + (size_t)row * reduce;
    T acc = T(0);
    for (unsigned int r = g.lane(); r < reduce; r += g.width()) acc += xr[r];
    acc = g.sum(acc, scratch);
    if (g.lane() == 0) y[row] = acc;
}

template <bool kBlock, typename T>
__device__ void max_contig(const T* x, T* y, int* argmax, unsigned int outer, unsigned int reduce) {
    __shared__ T scratch_v[32];
    __shared__ int scratch_i[32];
    const RowGroup<kBlock> g;
    const unsigned int row = g.row();
    if (row >= outer) return;
    const T* xr = x + (size_t)row * reduce;
    T best = -inf_of(T(0));
    int best_idx = 0x7fffffff;
    for (unsigned int r = g.lane(); r < reduce; r += g.width())
        if (max_beats(xr[r], (int)r, best, best_idx)) { best = xr[r]; best_idx = (int)r; }
    group_argmax<kBlock>(best, best_idx, scratch_v, scratch_i);
    if (g.lane() == 0) { y[row] = best; argmax[row] = best_idx; }
}

template <bool kBlock, typename T>
__device__ void logsumexp_contig(const T* x, T* y, unsigned int outer, unsigned int reduce) {
    __shared__ T scratch[32];
    const RowGroup<kBlock> g;
    const unsigned int row = g.row();
    if (row >= outer) return;
    const T* xr = x + (size_t)row * reduce;
    OnlineLse<T> lse;
    for (unsigned int r = g.lane(); r < reduce; r += g.width()) lse.add(xr[r]);
    const T result = lse.finish(g, scratch);
    if (g.lane() == 0) y[row] = result;
}

#define DEFINE_REDUCE(T, SUF)                                                                  \
    extern "C" __global__ void sum_contig_warp_##SUF(const T* x, T* y, unsigned int outer,     \
                                                     unsigned int reduce) {                    \
        sum_contig<false>(x, y, outer, reduce);                                                \
    }                                                                                          \
    extern "C" __global__ void sum_contig_block_##SUF(const T* x, T* y, unsigned int outer,    \
                                                      unsigned int reduce) {                   \
        sum_contig<true>(x, y, outer, reduce);                                                 \
    }                                                                                          \
    extern "C" __global__ void sum_strided_##SUF(const T* x, T* y, unsigned int outer,         \
                                                 unsigned int reduce, unsigned int inner) {    \
        FOR_EACH_INDEX(out, outer * inner) {                                                   \
            const T* xo = x + (size_t)(out / inner) * reduce * inner + out % inner;            \
            T acc = T(0);                                                                      \
            for (unsigned int r = 0; r < reduce; ++r) acc += xo[(size_t)r * inner];            \
            y[out] = acc;                                                                      \
        }                                                                                      \
    }                                                                                          \
    extern "C" __global__ void max_contig_warp_##SUF(const T* x, T* y, int* argmax,            \
                                                     unsigned int outer, unsigned int reduce) {\
        max_contig<false>(x, y, argmax, outer, reduce);                                        \
    }                                                                                          \
    extern "C" __global__ void max_contig_block_##SUF(const T* x, T* y, int* argmax,           \
                                                      unsigned int outer, unsigned int reduce) {\
        max_contig<true>(x, y, argmax, outer, reduce);                                         \
    }                                                                                          \
    extern "C" __global__ void max_strided_##SUF(const T* x, T* y, int* argmax,                \
                                                 unsigned int outer, unsigned int reduce,      \
                                                 unsigned int inner) {                         \
        FOR_EACH_INDEX(out, outer * inner) {                                                   \
            const T* xo = x + (size_t)(out / inner) * reduce * inner + out % inner;            \
            T best = -inf_of(T(0));                                                            \
            int best_idx = 0x7fffffff;                                                         \
            for (unsigned int r = 0; r < reduce; ++r) {                                        \
                const T v = xo[(size_t)r * inner];                                             \
                if (max_beats(v, (int)r, best, best_idx)) { best = v; best_idx = (int)r; }     \
            }                                                                                  \
            y[out] = best;                                                                     \
            argmax[out] = best_idx;                                                            \
        }                                                                                      \
    }                                                                                          \
    extern "C" __global__ void logsumexp_contig_warp_##SUF(const T* x, T* y,                   \
                                                           unsigned int outer,                 \
                                                           unsigned int reduce) {              \
        logsumexp_contig<false>(x, y, outer, reduce);                                          \
    }                                                                                          \
    extern "C" __global__ void logsumexp_contig_block_##SUF(const T* x, T* y,                  \
                                                            unsigned int outer,                \
                                                            unsigned int reduce) {             \
        logsumexp_contig<true>(x, y, outer, reduce);                                           \
    }                                                                                          \
    extern "C" __global__ void logsumexp_strided_##SUF(const T* x, T* y, unsigned int outer,   \
                                                       unsigned int reduce,                    \
                                                       unsigned int inner) {                   \
        FOR_EACH_INDEX(out, outer * inner) {                                                   \
            const T* xo = x + (size_t)(out / inner) * reduce * inner + out % inner;            \
            OnlineLse<T> lse;                                                                  \
            for (unsigned int r = 0; r < reduce; ++r) lse.add(xo[(size_t)r * inner]);         \
            y[out] = lse.m == -inf_of(T(0)) ? lse.m : lse.m + log_of(lse.s);                   \
        }                                                                                      \
    }

DEFINE_REDUCE(float, f32)
DEFINE_REDUCE(double, f64)
