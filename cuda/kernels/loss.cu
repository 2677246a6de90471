// Fused classification losses: one kernel computes each row's loss and writes dL/dz once.
// See shared/spec/arb-loss.md for ARB-Loss. Every loss here is built the same way:
//
//   a_j      adjusted logits (policy: ARB clamps and adds log n_j, LDAM subtracts margins..)
//   lse      logsumexp_j a_j, over classes with a_j > -inf
//   p_j      exp(a_j - lse)
//   b_k      (1-eps)(lse - a_{y_k}) + eps (lse - mean_j a_j)    cross-entropy for target k
//   L        scale * sum_k lam_k w_{y_k} phi(b_k)               phi = identity but for focal
//   dL/dz_j  scale * sum_k lam_k w_{y_k} phi'(b_k) (p_j - (1-eps)[j = y_k] - eps/C) da_j/dz_j
//
// with targets k = a (hard label, lam_a = 1) or k = a, b (mixup: lam_a = lam,
// lam_b = 1 - lam), class weights w (1 when absent; class-balanced / DRW weights
// otherwise) and `scale` carrying the reduction (1/B for mean, 1 for sum and none).
//
// Logits are f32, f16 or bf16; arithmetic is f32; the gradient is written in the
// logits' type, the per-row loss in f32. A row with a non-finite logit gets a NaN loss
// and NaN gradient (the clamp would otherwise hide it); a row with an out-of-range label
// gets a NaN loss and zero gradient. Neither reads or writes outside the buffers.
//
// `_warp` kernels give each row one warp (C <= 1024), `_block` kernels one block.
#include "common.cuh"
#include "dtype.cuh"

#define NAN_F32 __int_as_float(0x7fc00000)

// phi(b) = b: the cross-entropy family.
struct Linear {
    __device__ float phi(float b) const { return b; }
    __device__ float dphi(float) const { return 1.f; }
};

// ARB-Loss and Balanced Softmax: a_j = clamp(z_j, -c, c) + tau * log n_j; a class with
// n_j = 0 drops out (a_j = -inf). ARB: c = 30, tau = 1. BSM: no clamp (c = inf).
struct LogitAdjust : Linear {
    static constexpr bool kLabelDependent = false;
    static constexpr bool kSmoothing = false;
    const float* counts;
    float tau, clamp;
    __device__ float adjust(float z, unsigned int j, int) const {
        const float n = counts[j];
        if (!(n > 0.f)) return -inf_of(0.f);
        return fminf(fmaxf(z, -clamp), clamp) + tau * logf(n);
    }
    // The clamp passes gradient inside [-c, c] only.
    __device__ float dadz(float z) const { return (z >= -clamp && z <= clamp) ? 1.f : 0.f; }
};

// Cross-entropy with label smoothing eps; with class weights it is the class-balanced loss.
struct CrossEntropy : Linear {
    static constexpr bool kLabelDependent = false;
    static constexpr bool kSmoothing = true;
    __device__ float adjust(float z, unsigned int, int) const { return z; }
    __device__ float dadz(float) const { return 1.f; }
};

// Focal loss: phi(b) = (1 - e^-b)^gamma b, i.e. -(1 - p_y)^gamma log p_y.
struct Focal {
    static constexpr bool kLabelDependent = false;
    static constexpr bool kSmoothing = false;
    float gamma;
    __device__ float adjust(float z, unsigned int, int) const { return z; }
    __device__ float dadz(float) const { return 1.f; }
    __device__ float phi(float b) const {
        b = fmaxf(b, 0.f);  // b >= 0 in exact arithmetic; rounding may dip below
        return b == 0.f ? 0.f : powf(-expm1f(-b), gamma) * b;
    }
    // phi'(b) = gamma (1-q)^(gamma-1) q b + (1-q)^gamma with q = e^-b; the limit at b = 0
    // is 0 for gamma > 0 (and 1 for gamma = 0, plain cross-entropy).
    __device__ float dphi(float b) const {
        b = fmaxf(b, 0.f);
        if (b == 0.f) return gamma == 0.f ? 1.f : 0.f;
        const float one_minus_q = -expm1f(-b);
        return gamma * powf(one_minus_q, gamma - 1.f) * expf(-b) * b + powf(one_minus_q, gamma);
    }
};

// LDAM: a_j = s (z_j - m_j [j = y]). The margin depends on the target, so under mixup
// each target has its own logsumexp.
struct Ldam : Linear {
    static constexpr bool kLabelDependent = true;
    static constexpr bool kSmoothing = false;
    const float* margins;
    float s;
    __device__ float adjust(float z, unsigned int j, int label) const {
        return s * ((int)j == label ? z - margins[j] : z);
    }
    __device__ float dadz(float) const { return s; }
};

// What every fused loss kernel receives besides its policy's parameters.
template <typename T> struct LossArgs {
    const T* logits;       // [rows, classes]
    T* grad;               // [rows, classes]
    float* loss;           // [rows], scaled by `scale`
    const int* label_a;    // [rows]
    const int* label_b;    // [rows] for mixup, null for hard labels
    float lam;             // weight of label_a under mixup
    const float* weights;  // [classes] class weights, or null
    float scale;           // reduction factor applied to loss and gradient
    float smoothing;       // label smoothing eps (cross-entropy only)
    unsigned int rows, classes;
};

template <bool kBlock, typename T, typename Loss>
__device__ void fused_loss(const LossArgs<T>& args, const Loss& policy) {
    static_assert(!(Loss::kLabelDependent && Loss::kSmoothing), "smoothing assumes one set of logits");
    __shared__ float scratch[32];
    const RowGroup<kBlock> g;
    const unsigned int row = g.row();
    if (row >= args.rows) return;
    const unsigned int classes = args.classes;
    const T* z = args.logits + (size_t)row * classes;
    T* dz = args.grad + (size_t)row * classes;

    // Everything below branching on labels is uniform across the group (same row), so
    // whole groups take the same path and the barriers inside reductions stay matched.
    const bool mixup = args.label_b != nullptr;
    const int ya = args.label_a[row];
    const int yb = mixup ? args.label_b[row] : ya;
    if (ya < 0 || (unsigned int)ya >= classes || yb < 0 || (unsigned int)yb >= classes) {
        for (unsigned int j = g.lane(); j < classes; j += g.width()) dz[j] = Convert<T>::from(0.f);
        if (g.lane() == 0) args.loss[row] = NAN_F32;
        return;
    }
    const float lam_a = mixup ? args.lam : 1.f, lam_b = mixup ? 1.f - args.lam : 0.f;
    const float eps = Loss::kSmoothing ? args.smoothing : 0.f;

    // Pass 1: logsumexp of the adjusted logits (per target if they differ), their sum for
    // smoothing, and a non-finite check.
    OnlineLse<float> acc_a, acc_b;
    float sum_adjusted = 0.f, non_finite = 0.f;
    for (unsigned int j = g.lane(); j < classes; j += g.width()) {
        const float zj = Convert<float>::from(z[j]);
        if (!isfinite(zj)) non_finite = 1.f;
        const float aj = policy.adjust(zj, j, ya);
        acc_a.add(aj);
        if (Loss::kSmoothing) sum_adjusted += aj;
        if (Loss::kLabelDependent && mixup) acc_b.add(policy.adjust(zj, j, yb));
    }
    const bool all_finite = g.max(non_finite, scratch) == 0.f;
    const float lse_a = acc_a.finish(g, scratch);
    const float lse_b = (Loss::kLabelDependent && mixup) ? acc_b.finish(g, scratch) : lse_a;
    const float mean_adjusted = Loss::kSmoothing ? g.sum(sum_adjusted, scratch) / (float)classes : 0.f;

    // Per-target cross-entropies b_k and the gradient coefficients lam_k w_k phi'(b_k).
    const float ce_a = lse_a - policy.adjust(Convert<float>::from(z[ya]), ya, ya);
    const float ce_b = lse_b - policy.adjust(Convert<float>::from(z[yb]), yb, yb);
    const float b_a = (1.f - eps) * ce_a + eps * (lse_a - mean_adjusted);
    const float b_b = (1.f - eps) * ce_b + eps * (lse_b - mean_adjusted);
    const float w_a = args.weights ? args.weights[ya] : 1.f;
    const float w_b = args.weights ? args.weights[yb] : 1.f;
    const float coef_a = lam_a * w_a * policy.dphi(b_a);
    const float coef_b = mixup ? lam_b * w_b * policy.dphi(b_b) : 0.f;
    if (g.lane() == 0) {
        const float row_loss = lam_a * w_a * policy.phi(b_a) + (mixup ? lam_b * w_b * policy.phi(b_b) : 0.f);
        args.loss[row] = all_finite ? args.scale * row_loss : NAN_F32;
    }

    // Pass 2: the gradient, written once.
    const float uniform = eps / (float)classes;
    for (unsigned int j = g.lane(); j < classes; j += g.width()) {
        const float zj = Convert<float>::from(z[j]);
        const float p_a = expf(policy.adjust(zj, j, ya) - lse_a);
        const float p_b = Loss::kLabelDependent && mixup ? expf(policy.adjust(zj, j, yb) - lse_b) : p_a;
        const float t_a = ((int)j == ya ? 1.f - eps : 0.f) + uniform;
        const float t_b = ((int)j == yb ? 1.f - eps : 0.f) + uniform;
        const float d = coef_a * (p_a - t_a) + coef_b * (p_b - t_b);
        dz[j] = Convert<T>::from(all_finite ? args.scale * d * policy.dadz(zj) : NAN_F32);
    }
}

// Kernel parameter lists shared by all losses; each loss appends its own parameters.
#define LOSS_PARAMS(T)                                                                         \
    const T *logits, T *grad, float *loss, const int *label_a, const int *label_b, float lam,  \
        const float *weights, float scale, unsigned int rows, unsigned int classes
#define LOSS_ARGS(smoothing) {logits, grad, loss, label_a, label_b, lam, weights, scale, smoothing, rows, classes}

#define DEFINE_LOSS_VARIANTS(T, SUF, BLOCK, VARIANT)                                           \
    extern "C" __global__ void arb_loss_##VARIANT##_##SUF(LOSS_PARAMS(T), const float* counts) {\
        LogitAdjust policy;                                                                    \
        policy.counts = counts;                                                                \
        policy.tau = 1.f;                                                                      \
        policy.clamp = 30.f;                                                                   \
        fused_loss<BLOCK, T>(LossArgs<T> LOSS_ARGS(0.f), policy);                              \
    }                                                                                          \
    extern "C" __global__ void bsm_loss_##VARIANT##_##SUF(LOSS_PARAMS(T), const float* counts, \
                                                          float tau) {                         \
        LogitAdjust policy;                                                                    \
        policy.counts = counts;                                                                \
        policy.tau = tau;                                                                      \
        policy.clamp = inf_of(0.f);                                                            \
        fused_loss<BLOCK, T>(LossArgs<T> LOSS_ARGS(0.f), policy);                              \
    }                                                                                          \
    extern "C" __global__ void ce_loss_##VARIANT##_##SUF(LOSS_PARAMS(T), float smoothing) {    \
        fused_loss<BLOCK, T>(LossArgs<T> LOSS_ARGS(smoothing), CrossEntropy());                \
    }                                                                                          \
    extern "C" __global__ void focal_loss_##VARIANT##_##SUF(LOSS_PARAMS(T), float gamma) {     \
        Focal policy;                                                                          \
        policy.gamma = gamma;                                                                  \
        fused_loss<BLOCK, T>(LossArgs<T> LOSS_ARGS(0.f), policy);                              \
    }                                                                                          \
    extern "C" __global__ void ldam_loss_##VARIANT##_##SUF(LOSS_PARAMS(T), const float* margins,\
                                                           float s) {                          \
        Ldam policy;                                                                           \
        policy.margins = margins;                                                              \
        policy.s = s;                                                                          \
        fused_loss<BLOCK, T>(LossArgs<T> LOSS_ARGS(0.f), policy);                              \
    }

#define DEFINE_LOSSES(T, SUF)                                                                  \
    DEFINE_LOSS_VARIANTS(T, SUF, false, warp)                                                  \
    DEFINE_LOSS_VARIANTS(T, SUF, true, block)

DEFINE_LOSSES(float, f32)
DEFINE_LOSSES(__half, f16)
DEFINE_LOSSES(__nv_bfloat16, bf16)
