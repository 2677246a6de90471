// batch_norm2d over NCHW, per channel c, with M = N*H*W values per channel:
//   training:  mean, var (biased) from the batch; y = (x - mean) * invstd * gamma + beta,
//              invstd = 1/sqrt(var + eps); running stats move by `momentum` toward the
//              batch's mean and *unbiased* variance (PyTorch's convention).
//   eval:      the running stats replace the batch's.
// Both forwards save (mean, invstd) so one backward serves both:
//   dbeta = sum(dy), dgamma = sum(dy * xhat), xhat = (x - mean) * invstd,
//   training: dx = gamma * invstd * (dy - dbeta/M - xhat * dgamma/M)
//   eval:     dx = gamma * invstd * dy               (the stats are constants)
// Training kernels use one block per channel (grid = C); the reductions over a channel
// stay inside the block, so no atomics and a deterministic result.
#include "common.cuh"

// Flat index of the k-th element (0 <= k < N*HW) of channel c.
__device__ __forceinline__ size_t channel_element(unsigned int k, unsigned int c, unsigned int channels,
                                                  unsigned int hw) {
    return ((size_t)(k / hw) * channels + c) * hw + k % hw;
}

template <typename T>
__device__ void bn_train_fwd(const T* x, const T* gamma, const T* beta, T* y, T* save_mean, T* save_invstd,
                             T* running_mean, T* running_var, unsigned int n, unsigned int channels,
                             unsigned int hw, T momentum, T eps) {
    __shared__ T scratch[32];
    const unsigned int c = blockIdx.x, count = n * hw;
    T partial = T(0);
    for (unsigned int k = threadIdx.x; k < count; k += blockDim.x) partial += x[channel_element(k, c, channels, hw)];
    const T mean = block_sum(partial, scratch) / T(count);
    // Second pass for the variance: sum((x - mean)^2) does not cancel like E[x^2] - mean^2.
    partial = T(0);
    for (unsigned int k = threadIdx.x; k < count; k += blockDim.x) {
        const T d = x[channel_element(k, c, channels, hw)] - mean;
        partial += d * d;
    }
    const T var = block_sum(partial, scratch) / T(count);
    const T invstd = rsqrt_of(var + eps);
    const T scale = gamma[c] * invstd, shift = beta[c] - mean * scale;
    for (unsigned int k = threadIdx.x; k < count; k += blockDim.x) {
        const size_t i = channel_element(k, c, channels, hw);
        y[i] = x[i] * scale + shift;
    }
    if (threadIdx.x == 0) {
        save_mean[c] = mean;
        save_invstd[c] = invstd;
        const T unbiased = count > 1 ? var * T(count) / T(count - 1) : var;
        running_mean[c] = (T(1) - momentum) * running_mean[c] + momentum * mean;
        running_var[c] = (T(1) - momentum) * running_var[c] + momentum * unbiased;
    }
}

template <typename T>
__device__ void bn_eval_fwd(const T* x, const T* gamma, const T* beta, const T* running_mean,
                            const T* running_var, T* y, T* save_mean, T* save_invstd, unsigned int n,
                            unsigned int channels, unsigned int hw, T eps) {
    FOR_EACH_INDEX(i, n * channels * hw) {
        const unsigned int c = (i / hw) % channels;
        const T invstd = rsqrt_of(running_var[c] + eps);
        y[i] = (x[i] - running_mean[c]) * invstd * gamma[c] + beta[c];
        if (i < channels) {
            save_mean[i] = running_mean[i];
            save_invstd[i] = rsqrt_of(running_var[i] + eps);
        }
    }
}

template <typename T>
__device__ void bn_bwd(const T* x, const T* dy, const T* gamma, const T* save_mean, const T* save_invstd, T* dx,
                       T* dgamma, T* dbeta, unsigned int n, unsigned int channels, unsigned int hw,
                       int batch_stats) {
    __shared__ T scratch[32];
    const unsigned int c = blockIdx.x, count = n * hw;
    const T mean = save_mean[c], invstd = save_invstd[c];
    T sum_dy = T(0), sum_dy_xhat = T(0);
    for (unsigned int k = threadIdx.x; k < count; k += blockDim.x) {
        const size_t i = channel_element(k, c, channels, hw);
        sum_dy += dy[i];
        sum_dy_xhat += dy[i] * (x[i] - mean) * invstd;
    }
    sum_dy = block_sum(sum_dy, scratch);
    sum_dy_xhat = block_sum(sum_dy_xhat, scratch);
    const T g = gamma[c] * invstd;
    const T mean_dy = batch_stats ? sum_dy / T(count) : T(0);
    const T mean_dy_xhat = batch_stats ? sum_dy_xhat / T(count) : T(0);
    for (unsigned int k = threadIdx.x; k < count; k += blockDim.x) {
        const size_t i = channel_element(k, c, channels, hw);
        const T xhat = (x[i] - mean) * invstd;
        dx[i] = g * (dy[i] - mean_dy - xhat * mean_dy_xhat);
    }
    if (threadIdx.x == 0) {
        dgamma[c] = sum_dy_xhat;
        dbeta[c] = sum_dy;
    }
}

#define DEFINE_BATCH_NORM(T, SUF)                                                              \
    extern "C" __global__ void batch_norm2d_train_fwd_##SUF(                                   \
        const T* x, const T* gamma, const T* beta, T* y, T* save_mean, T* save_invstd,         \
        T* running_mean, T* running_var, unsigned int n, unsigned int channels,                \
        unsigned int hw, T momentum, T eps) {                                                  \
        bn_train_fwd(x, gamma, beta, y, save_mean, save_invstd, running_mean, running_var, n,  \
                     channels, hw, momentum, eps);                                             \
    }                                                                                          \
    extern "C" __global__ void batch_norm2d_eval_fwd_##SUF(                                    \
        const T* x, const T* gamma, const T* beta, const T* running_mean,                      \
        const T* running_var, T* y, T* save_mean, T* save_invstd, unsigned int n,              \
        unsigned int channels, unsigned int hw, T eps) {                                       \
        bn_eval_fwd(x, gamma, beta, running_mean, running_var, y, save_mean, save_invstd, n,   \
                    channels, hw, eps);                                                        \
    }                                                                                          \
    extern "C" __global__ void batch_norm2d_bwd_##SUF(                                         \
        const T* x, const T* dy, const T* gamma, const T* save_mean, const T* save_invstd,     \
        T* dx, T* dgamma, T* dbeta, unsigned int n, unsigned int channels, unsigned int hw,    \
        int batch_stats) {                                                                     \
        bn_bwd(x, dy, gamma, save_mean, save_invstd, dx, dgamma, dbeta, n, channels, hw,       \
               batch_stats);                                                                   \
    }

DEFINE_BATCH_NORM(float, f32)
DEFINE_BATCH_NORM(double, f64)
