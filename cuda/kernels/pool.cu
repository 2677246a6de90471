// 2-D pooling over NCHW (geometry in `Window2d`, output [N, C, OH, OW]).
// - max_pool2d: padding counts as -inf; the forward saves, per output, the flat index
//   iy*W + ix of the chosen input within its (n, c) plane (-1 if the window lies wholly
//   in the padding), and the backward routes dy there.
// - avg_pool2d: divides by KH*KW, padding included (PyTorch's count_include_pad=True).
// Backward kernels run one thread per dx element and gather from the outputs whose
// window covers it (windows may overlap), so they need no atomics and overwrite dx.
#include "common.cuh"

template <typename T> __device__ void max_pool_fwd(const T* x, T* y, int* argmax, Window2d g) {
    FOR_EACH_INDEX(i, (unsigned int)g.n * g.c * g.out_h * g.out_w) {
        const int ox = i % g.out_w, oy = (i / g.out_w) % g.out_h;
        const unsigned int plane = i / ((unsigned int)g.out_w * g.out_h);
        const T* xp = x + (size_t)plane * g.h * g.w;
        T best = -inf_of(T(0));
        int best_idx = -1;
        for (int ky = 0; ky < g.kh; ++ky) {
            const int iy = oy * g.stride_h - g.pad_h + ky;
            if (iy < 0 || iy >= g.h) continue;
            for (int kx = 0; kx < g.kw; ++kx) {
                const int ix = ox * g.stride_w - g.pad_w + kx;
                if (ix < 0 || ix >= g.w) continue;
                const T v = xp[iy * g.w + ix];
                // First maximum wins ties; a NaN, once taken, is kept (as torch.max_pool2d).
                if (best_idx < 0 || v > best || (v != v && best == best)) {
                    best = v;
                    best_idx = iy * g.w + ix;
                }
            }
        }
        y[i] = best;
        argmax[i] = best_idx;
    }
}

template <typename T> __device__ void max_pool_bwd(const T* dy, const int* argmax, T* dx, Window2d g) {
    FOR_EACH_INDEX(i, (unsigned int)g.n * g.c * g.h * g.w) {
        const int ix = i % g.w, iy = (i / g.w) % g.h;
        const unsigned int plane = i / ((unsigned int)g.w * g.h);
        const size_t out_base = (size_t)plane * g.out_h * g.out_w;
        int oy0, oy1, ox0, ox1;
        covering_outputs(iy, g.kh, g.stride_h, g.pad_h, g.out_h, oy0, oy1);
        covering_outputs(ix, g.kw, g.stride_w, g.pad_w, g.out_w, ox0, ox1);
        const int me = iy * g.w + ix;
        T acc = T(0);
        for (int oy = oy0; oy <= oy1; ++oy)
            for (int ox = ox0; ox <= ox1; ++ox) {
                const size_t o = out_base + oy * g.out_w + ox;
                if (argmax[o] == me) acc += dy[o];
            }
        dx[i] = acc;
    }
}

template <typename T> __device__ void avg_pool_fwd(const T* x, T* y, Window2d g) {
    const T inv_area = T(1) / T(g.kh * g.kw);
    FOR_EACH_INDEX(i, (unsigned int)g.n * g.c * g.out_h * g.out_w) {
        const int ox = i % g.out_w, oy = (i / g.out_w) % g.out_h;
        const unsigned int plane = i / ((unsigned int)g.out_w * g.out_h);
        const T* xp = x + (size_t)plane * g.h * g.w;
        T acc = T(0);
        for (int ky = 0; ky < g.kh; ++ky) {
            const int iy = oy * g.stride_h - g.pad_h + ky;
            if (iy < 0 || iy >= g.h) continue;
            for (int kx = 0; kx < g.kw; ++kx) {
                const int ix = ox * g.stride_w - g.pad_w + kx;
                if (ix >= 0 && ix < g.w) acc += xp[iy * g.w + ix];
            }
        }
        y[i] = acc * inv_area;
    }
}

template <typename T> __device__ void avg_pool_bwd(const T* dy, T* dx, Window2d g) {
    const T inv_area = T(1) / T(g.kh * g.kw);
    FOR_EACH_INDEX(i, (unsigned int)g.n * g.c * g.h * g.w) {
        const int ix = i % g.w, iy = (i / g.w) % g.h;
        const unsigned int plane = i / ((unsigned int)g.w * g.h);
        const size_t out_base = (size_t)plane * g.out_h * g.out_w;
        int oy0, oy1, ox0, ox1;
        covering_outputs(iy, g.kh, g.stride_h, g.pad_h, g.out_h, oy0, oy1);
        covering_outputs(ix, g.kw, g.stride_w, g.pad_w, g.out_w, ox0, ox1);
        T acc = T(0);
        for (int oy = oy0; oy <= oy1; ++oy)
            for (int ox = ox0; ox <= ox1; ++ox) acc += dy[out_base + oy * g.out_w + ox];
        dx[i] = acc * inv_area;
    }
}

#define DEFINE_POOL(T, SUF)                                                                    \
    extern "C" __global__ void max_pool2d_fwd_##SUF(const T* x, T* y, int* argmax, Window2d g) { \
        max_pool_fwd(x, y, argmax, g);                                                         \
    }                                                                                          \
    extern "C" __global__ void max_pool2d_bwd_##SUF(const T* dy, const int* argmax, T* dx,     \
                                                    Window2d g) {                              \
        max_pool_bwd(dy, argmax, dx, g);                                                       \
    }                                                                                          \
    extern "C" __global__ void avg_pool2d_fwd_##SUF(const T* x, T* y, Window2d g) {            \
        avg_pool_fwd(x, y, g);                                                                 \
    }                                                                                          \
    extern "C" __global__ void avg_pool2d_bwd_##SUF(const T* dy, T* dx, Window2d g) {          \
        avg_pool_bwd(dy, dx, g);                                                               \
    }

DEFINE_POOL(float, f32)
DEFINE_POOL(double, f64)
