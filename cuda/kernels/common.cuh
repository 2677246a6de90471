// Helpers shared by every kernel file. `compile.rs` splices this text in place of
// `#include "common.cuh"`, because NVRTC compiles one source string per program and our
// headers live inside the Rust binary, not on disk.
//
// Conventions for all kernels in this directory:
// - buffers are contiguous, row-major; sizes arrive as `unsigned int` (the host rejects
//   tensors with 2^31 or more elements, so `i + stride` below never wraps);
// - `_f32` / `_f64` suffixes name the element type, `extern "C"` keeps names unmangled.

// NVRTC has no math.h, hence no INFINITY: infinities are built from IEEE-754 bit patterns.
__device__ __forceinline__ float inf_of(float) { return __int_as_float(0x7f800000); }
__device__ __forceinline__ double inf_of(double) { return __longlong_as_double(0x7ff0000000000000LL); }

// Overloads so templates can say `exp_of(x)` and get expf for float and exp for double.
__device__ __forceinline__ float exp_of(float x) { return expf(x); }
__device__ __forceinline__ double exp_of(double x) { return exp(x); }
__device__ __forceinline__ float log_of(float x) { return logf(x); }
__device__ __forceinline__ double log_of(double x) { return log(x); }
__device__ __forceinline__ float sqrt_of(float x) { return sqrtf(x); }
__device__ __forceinline__ double sqrt_of(double x) { return sqrt(x); }
__device__ __forceinline__ float rsqrt_of(float x) { return rsqrtf(x); }
__device__ __forceinline__ double rsqrt_of(double x) { return rsqrt(x); }
__device__ __forceinline__ float pow_of(float x, float p) { return powf(x, p); }
__device__ __forceinline__ double pow_of(double x, double p) { return pow(x, p); }
__device__ __forceinline__ float max_of(float a, float b) { return fmaxf(a, b); }
__device__ __forceinline__ double max_of(double a, double b) { return fmax(a, b); }

// Grid-stride loop over `n` elements; the host caps the grid size, so the loop (not the
// grid) is what covers large tensors.
#define FOR_EACH_INDEX(i, n)                                                   \
    for (unsigned int i = blockIdx.x * blockDim.x + threadIdx.x; i < (n);      \
         i += blockDim.x * gridDim.x)

// Sum / max across the 32 lanes of a warp; every lane receives the result.
template <typename T> __device__ __forceinline__ T warp_sum(T v) {
#pragma unroll
    for (int offset = 16; offset > 0; offset >>= 1) v += __shfl_xor_sync(0xffffffffu, v, offset);
    return v;
}
template <typename T> __device__ __forceinline__ T warp_max(T v) {
#pragma unroll
    for (int offset = 16; offset > 0; offset >>= 1) v = max_of(v, __shfl_xor_sync(0xffffffffu, v, offset));
    return v;
}

// Block-wide reductions (blockDim.x a multiple of 32, at most 1024). `scratch` is 32
// elements of shared memory; every thread receives the result. The leading barrier lets
// the same scratch serve several reductions in a row.
template <typename T, typename WarpOp>
__device__ __forceinline__ T block_reduce(T v, T* scratch, T identity, WarpOp warp_op) {
    const unsigned int lane = threadIdx.x & 31u, warp = threadIdx.x >> 5;
    v = warp_op(v);
    __syncthreads();
    if (lane == 0) scratch[warp] = v;
    __syncthreads();
    if (warp == 0) {
        v = lane < (blockDim.x >> 5) ? scratch[lane] : identity;
        v = warp_op(v);
        if (lane == 0) scratch[0] = v;
    }
    __syncthreads();
    return scratch[0];
}
struct WarpSum { template <typename T> __device__ T operator()(T v) const { return warp_sum(v); } };
struct WarpMax { template <typename T> __device__ T operator()(T v) const { return warp_max(v); } };
template <typename T> __device__ __forceinline__ T block_sum(T v, T* scratch) {
    return block_reduce(v, scratch, T(0), WarpSum());
}
template <typename T> __device__ __forceinline__ T block_max(T v, T* scratch) {
    return block_reduce(v, scratch, -inf_of(T(0)), WarpMax());
}

// Row-wise kernels (softmax, fused losses) give each row either one warp (short rows:
// 8 rows per 256-thread block, no barriers) or one whole block (long rows). `kBlock`
// selects the variant at compile time; the host picks it from the row length.
template <bool kBlock> struct RowGroup {
    __device__ __forceinline__ unsigned int row() const {
        return kBlock ? blockIdx.x : blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5);
    }
    __device__ __forceinline__ unsigned int lane() const { return kBlock ? threadIdx.x : (threadIdx.x & 31u); }
    __device__ __forceinline__ unsigned int width() const { return kBlock ? blockDim.x : 32u; }
    template <typename T> __device__ __forceinline__ T sum(T v, T* scratch) const {
        return kBlock ? block_sum(v, scratch) : warp_sum(v);
    }
    template <typename T> __device__ __forceinline__ T max(T v, T* scratch) const {
        return kBlock ? block_max(v, scratch) : warp_max(v);
    }
};

// Running log-sum-exp state (max `m`, sum of exp(x - m)) so one read of a row suffices.
// Terms equal to -inf are skipped: they contribute exp(-inf) = 0 (a class with zero count).
template <typename T> struct OnlineLse {
    T m, s;
    __device__ __forceinline__ OnlineLse() : m(-inf_of(T(0))), s(T(0)) {}
    __device__ __forceinline__ void add(T x) {
        if (x == -inf_of(T(0))) return;
        if (x > m) { s = s * exp_of(m - x) + T(1); m = x; }
        else s += exp_of(x - m);
    }
    // Combines the states of all threads in the group and returns log(sum(exp(x))).
    template <bool kBlock> __device__ __forceinline__ T finish(RowGroup<kBlock> g, T* scratch) const {
        const T row_max = g.max(m, scratch);
        const T scaled = (m == -inf_of(T(0))) ? T(0) : s * exp_of(m - row_max);
        const T total = g.sum(scaled, scratch);
        return row_max == -inf_of(T(0)) ? row_max : row_max + log_of(total);
    }
};

// Shapes and strides of up to 6 dimensions, right-aligned: unused leading dimensions have
// size 1 and stride 0. Passed by value (24 bytes of kernel parameters).
#define MAX_RANK 6
struct Dims6 { unsigned int d[MAX_RANK]; };

// Offset, under `strides`, of the element at flat index `i` of a row-major tensor of
// shape `shape`. Fully unrolled so the arrays stay in registers; size-1 dimensions
// (uniform across the grid) skip their division.
__device__ __forceinline__ unsigned int strided_offset(unsigned int i, const Dims6& shape, const Dims6& strides) {
    unsigned int offset = 0;
#pragma unroll
    for (int d = MAX_RANK - 1; d >= 0; --d) {
        if (shape.d[d] == 1) continue;
        offset += (i % shape.d[d]) * strides.d[d];
        i /= shape.d[d];
    }
    return offset;
}

// The same walk for two operands at once (binary ops), sharing the divisions.
__device__ __forceinline__ void strided_offset2(unsigned int i, const Dims6& shape, const Dims6& strides_a,
                                                const Dims6& strides_b, unsigned int& offset_a,
                                                unsigned int& offset_b) {
    offset_a = 0;
    offset_b = 0;
#pragma unroll
    for (int d = MAX_RANK - 1; d >= 0; --d) {
        if (shape.d[d] == 1) continue;
        const unsigned int coord = i % shape.d[d];
        offset_a += coord * strides_a.d[d];
        offset_b += coord * strides_b.d[d];
        i /= shape.d[d];
    }
}

// Geometry of a 2-D sliding window over an NCHW tensor (conv2d's im2col, pooling).
// Mirrors `Window2d` in src/ops/window.rs field for field.
struct Window2d {
    int n, c, h, w;            // input
    int kh, kw;                // window
    int stride_h, stride_w;
    int pad_h, pad_w;          // zero padding on each side
    int out_h, out_w;
};

// Range of output positions o (0 <= o < out) whose window covers input position i:
// o*stride - pad <= i <= o*stride - pad + k - 1.
__device__ __forceinline__ void covering_outputs(int i, int k, int stride, int pad, int out, int& first, int& last) {
    const int hi = i + pad;            // o*stride <= hi
    const int lo = hi - k + 1;         // o*stride >= lo
    first = lo <= 0 ? 0 : (lo + stride - 1) / stride;
    last = min(hi / stride, out - 1);
}
