// softmax / log_softmax over the last axis of a [rows, cols] tensor, and their backward.
// A warp per row when cols <= 1024 (`_warp`), a block per row beyond (`_block`).
//   softmax:      y = exp(x - lse)           dx = y * (dy - sum(dy * y))
//   log_softmax:  y = x - lse                dx = dy - exp(y) * sum(dy)
#include "common.cuh"

template <bool kBlock, bool kLog, typename T>
__device__ void softmax_fwd(const T* x, T* y, unsigned int rows, unsigned int cols) {
    __shared__ T scratch[32];
    const RowGroup<kBlock> g;
    const unsigned int row = g.row();
    if (row >= rows) return;
    const T* xr = x + (size_t)row * cols;
    T* yr = y + (size_t)row * cols;
    OnlineLse<T> acc;
    for (unsigned int j = g.lane(); j < cols; j += g.width()) acc.add(xr[j]);
    const T lse = acc.finish(g, scratch);
    for (unsigned int j = g.lane(); j < cols; j += g.width())
        yr[j] = kLog ? xr[j] - lse : exp_of(xr[j] - lse);
}

template <bool kBlock, bool kLog, typename T>
__device__ void softmax_bwd(const T* y, const T* dy, T* dx, unsigned int rows, unsigned int cols) {
    __shared__ T scratch[32];
    const RowGroup<kBlock> g;
    const unsigned int row = g.row();
    if (row >= rows) return;
    const size_t base = (size_t)row * cols;
    T partial = T(0);
    for (unsigned int j = g.lane(); j < cols; j += g.width())
        partial += kLog ? dy[base + j] : dy[base + j] * y[base + j];
    const T total = g.sum(partial, scratch);
    for (unsigned int j = g.lane(); j < cols; j += g.width()) {
        const T yj = y[base + j], dyj = dy[base + j];
        dx[base + j] = kLog ? dyj - exp_of(yj) * total : yj * (dyj - total);
    }
}

#define DEFINE_SOFTMAX_VARIANT(NAME, LOG, BLOCK, VARIANT, T, SUF)                              \
    extern "C" __global__ void NAME##_fwd_##VARIANT##_##SUF(const T* x, T* y, unsigned int rows,\
                                                            unsigned int cols) {               \
        softmax_fwd<BLOCK, LOG>(x, y, rows, cols);                                             \
    }                                                                                          \
    extern "C" __global__ void NAME##_bwd_##VARIANT##_##SUF(const T* y, const T* dy, T* dx,    \
                                                            unsigned int rows,                 \
                                                            unsigned int cols) {               \
        softmax_bwd<BLOCK, LOG>(y, dy, dx, rows, cols);                                        \
    }

#define DEFINE_SOFTMAX(T, SUF)                                                                 \
    DEFINE_SOFTMAX_VARIANT(softmax, false, false, warp, T, SUF)                                \
    DEFINE_SOFTMAX_VARIANT(softmax, false, true, block, T, SUF)                                \
    DEFINE_SOFTMAX_VARIANT(log_softmax, true, false, warp, T, SUF)                             \
    DEFINE_SOFTMAX_VARIANT(log_softmax, true, true, block, T, SUF)

DEFINE_SOFTMAX(float, f32)
DEFINE_SOFTMAX(double, f64)
