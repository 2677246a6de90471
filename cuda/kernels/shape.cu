// Data movement between shapes.
// - channel_pad_subsample: ResNet's option-A shortcut. x [N, Cin, H, W] ->
//   y [N, Cout, OH, OW], OH = ceil(H / s): keep every s-th row and column, and place the
//   Cin channels at [pad, pad + Cin) among Cout zero channels.
// - concat: one input's part of a concatenation along an axis. x [outer, dim_x, inner]
//   goes to y [outer, dim_y, inner] at `offset` along the axis; concatenating k tensors
//   is k launches.
// Both backwards take a slice of dy, which the engine does with a strided copy
// (memory.cu), so there are no backward kernels here.
#include "common.cuh"

// Mirrors `PadSubsample` in src/ops/shape.rs.
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

#define DEFINE_SHAPE(T, SUF)                                                                   \
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

DEFINE_SHAPE(float, f32)
DEFINE_SHAPE(double, f64)
