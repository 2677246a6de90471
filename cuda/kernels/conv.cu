// im2col / col2im: conv2d as a GEMM. For input x [N, C, H, W] the column buffer is
// col [N, C*KH*KW, OH*OW] with col[n, (c*KH + ky)*KW + kx, oy*OW + ox] =
// x[n, c, oy*SH - PH + ky, ox*SW - PW + kx] (0 in the padding). Then per image
// out[n] = weight [OC, C*KH*KW] x col[n], a strided-batched GEMM.
// col2im is im2col's adjoint: dx gathers every col entry that copied it. One thread per
// dx element sums its contributions, so the result is deterministic and needs no atomics.
#include "common.cuh"

template <typename T> __device__ void im2col(const T* x, T* col, Window2d g) {
    const unsigned int total = (unsigned int)g.n * g.c * g.kh * g.kw * g.out_h * g.out_w;
    FOR_EACH_INDEX(i, total) {
        unsigned int t = i;
        const int ox = t % g.out_w; t /= g.out_w;
        const int oy = t % g.out_h; t /= g.out_h;
        const int kx = t % g.kw; t /= g.kw;
        const int ky = t % g.kh; t /= g.kh;
        const int c = t % g.c;
        const int n = t / g.c;
        const int iy = oy * g.stride_h - g.pad_h + ky;
        const int ix = ox * g.stride_w - g.pad_w + kx;
        const bool inside = iy >= 0 && iy < g.h && ix >= 0 && ix < g.w;
        col[i] = inside ? x[(((size_t)n * g.c + c) * g.h + iy) * g.w + ix] : T(0);
    }
}

template <typename T> __device__ void col2im(const T* col, T* dx, Window2d g) {
    const unsigned int total = (unsigned int)g.n * g.c * g.h * g.w;
    const unsigned int col_cols = (unsigned int)g.out_h * g.out_w;
    FOR_EACH_INDEX(i, total) {
        const int ix = i % g.w;
        const int iy = (i / g.w) % g.h;
        const unsigned int nc = i / ((unsigned int)g.w * g.h);  // n * C + c
        int oy0, oy1, ox0, ox1;
        covering_outputs(iy, g.kh, g.stride_h, g.pad_h, g.out_h, oy0, oy1);
        covering_outputs(ix, g.kw, g.stride_w, g.pad_w, g.out_w, ox0, ox1);
        T acc = T(0);
        for (int oy = oy0; oy <= oy1; ++oy) {
            const int ky = iy + g.pad_h - oy * g.stride_h;
            for (int ox = ox0; ox <= ox1; ++ox) {
                const int kx = ix + g.pad_w - ox * g.stride_w;
                const size_t col_row = (size_t)nc * g.kh * g.kw + ky * g.kw + kx;
                acc += col[col_row * col_cols + oy * g.out_w + ox];
            }
        }
        dx[i] = acc;
    }
}

#define DEFINE_CONV(T, SUF)                                                                    \
    extern "C" __global__ void im2col_##SUF(const T* x, T* col, Window2d g) { im2col(x, col, g); } \
    extern "C" __global__ void col2im_##SUF(const T* col, T* dx, Window2d g) { col2im(col, dx, g); }

DEFINE_CONV(float, f32)
DEFINE_CONV(double, f64)
