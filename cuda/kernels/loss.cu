// The engine's fused classification loss (`fused_loss` in engine/src/backend.rs): one
// kernel covers ARB-Loss and every baseline, because the engine describes a loss by its
// per-class and per-row terms rather than by name. It mirrors the engine's CPU kernel,
// engine/src/cpu/loss/, term for term. For row i:
//
//   u_j   = scale * clamp(z_j) + offset_j                 offset_j = -inf drops class j
//   hard targets, components k = (class c_k, coef_k), one or two per row (mixup):
//     lse_k = logsumexp_j (u_j - scale * margin_{c_k} [j = c_k])
//     L_k   = (1 - p_k)^gamma (-log p_k),  log p_k = u_{c_k} - scale * margin_{c_k} - lse_k
//     l     = sum_k coef_k ((1 - eps) L_k + eps (logsumexp_j u_j - mean_j u_j))
//   dense targets t (labels null):  l = sum_j w_j t_j (logsumexp u - u_j)
//
// and writes l and grad_scale * dl/dz (zero where the clamp cut the logit off). The
// logsumexp of the non-target classes is kept apart from the (at most two) target terms,
// so a dominant target does not cancel the rest (the CPU kernel does the same).
// A non-finite logit lowers `first_bad` (atomicMin) to its flat index; the host reports it.
//
// `_warp` kernels give each row one warp (cols <= 1024), `_block` kernels one block.
#include "common.cuh"

__device__ __forceinline__ float expm1_of(float x) { return expm1f(x); }
__device__ __forceinline__ double expm1_of(double x) { return expm1(x); }

// Focal loss and its slope for log p: (L, G) with L = (1-p)^gamma (-log p) and
// dL/du_j = G (p_j - [j = c]), G = (1-p)^gamma + gamma p (1-p)^(gamma-1) (-log p).
template <typename T> __device__ void focal(T logp, T gamma, T& loss, T& slope) {
    if (gamma == T(0)) { loss = -logp; slope = T(1); return; }
    const T q = -expm1_of(logp);  // 1 - p without cancellation near p = 1
    if (q <= T(0)) { loss = T(0); slope = T(0); return; }
    const T p = exp_of(logp), qg = pow_of(q, gamma);
    loss = qg * -logp;
    slope = qg + gamma * p * pow_of(q, gamma - T(1)) * -logp;
}

template <typename T> struct RowLossArgs {
    const T* z;           // [rows, cols] logits
    const T* target;      // [rows, cols] dense targets, or null
    const int* labels;    // [rows, per_row] target classes (hard targets), or null
    const T* coefs;       // [rows, per_row] component coefficients
    const T* offsets;     // [cols] or null (0)
    const T* margins;     // [cols] or null (0)
    const T* weights;     // [cols] dense-target class weights, or null (1)
    T* grad;              // [rows, cols] out: grad_scale * dl/dz
    T* row_loss;          // [rows] out: l
    unsigned int* first_bad;  // [1] lowered to the flat index of a non-finite logit
    unsigned int rows, cols, per_row;
    T scale, clamp, gamma, smoothing, grad_scale;

    // Comparisons rather than fmin/fmax: no conversions, and `clamp` may be +inf (no clamp).
    __device__ T logit(T zj, unsigned int j) const {
        const T c = zj < -clamp ? -clamp : (zj > clamp ? clamp : zj);
        return scale * c + (offsets ? offsets[j] : T(0));
    }
    __device__ bool passes(T zj) const { return zj >= -clamp && zj <= clamp; }
};

// Combines the group's running (max, sum of exp(x - max)) into the row's (max, sum).
template <bool kBlock, typename T>
__device__ void finish_parts(const OnlineLse<T>& acc, RowGroup<kBlock> g, T* scratch, T& m, T& s) {
    m = g.max(acc.m, scratch);
    const T scaled = (acc.m == -inf_of(T(0))) ? T(0) : acc.s * exp_of(acc.m - m);
    s = g.sum(scaled, scratch);
}

template <bool kBlock, typename T> __device__ void fused_loss_row(const RowLossArgs<T>& a) {
    __shared__ T scratch[32];
    const RowGroup<kBlock> g;
    const unsigned int row = g.row();
    if (row >= a.rows) return;
    const unsigned int cols = a.cols;
    const T* z = a.z + (size_t)row * cols;
    T* dz = a.grad + (size_t)row * cols;
    const bool dense = a.labels == nullptr;
    const T* t = dense ? a.target + (size_t)row * cols : nullptr;

    // The row's distinct target classes (hard targets): at most two.
    int c0 = -1, c1 = -1;
    if (!dense) {
        c0 = a.labels[(size_t)row * a.per_row];
        if (a.per_row > 1) c1 = a.labels[(size_t)row * a.per_row + 1];
        if (c1 == c0) c1 = -1;
    }

    // Pass 1: logsumexp state of the non-target u_j, sum of u_j, dense sums, finiteness.
    OnlineLse<T> rest;
    T sum_u = T(0), w_sum = T(0), wu_sum = T(0);
    for (unsigned int j = g.lane(); j < cols; j += g.width()) {
        const T zj = z[j];
        if (!isfinite(zj)) atomicMin(a.first_bad, row * cols + j);
        const T u = a.logit(zj, j);
        if ((int)j != c0 && (int)j != c1) rest.add(u);
        sum_u += u;
        if (dense) {
            const T wt = (a.weights ? a.weights[j] : T(1)) * t[j];
            w_sum += wt;
            // t_j = 0 wherever the offset is -inf (validated), and 0 * -inf would be NaN.
            if (wt != T(0)) wu_sum += wt * u;
        }
    }
    T m, s_rest;
    finish_parts(rest, g, scratch, m, s_rest);
    const T smooth_sum = a.smoothing > T(0) ? g.sum(sum_u, scratch) : T(0);

    // Per-row scalars (every lane computes them; the row is uniform across the group).
    T u_t[2] = {T(0), T(0)}, e_t[2] = {T(0), T(0)};
    const int targets[2] = {c0, c1};
    const int n_targets = dense ? 0 : (c1 >= 0 ? 2 : 1);
    for (int q = 0; q < n_targets; ++q) u_t[q] = a.logit(z[targets[q]], targets[q]);
    T m_all = m;
    for (int q = 0; q < n_targets; ++q) m_all = max_of(m_all, u_t[q]);
    const T s_rest_all = m == -inf_of(T(0)) ? T(0) : s_rest * exp_of(m - m_all);
    m = m_all;
    for (int q = 0; q < n_targets; ++q) e_t[q] = exp_of(u_t[q] - m);
    const T s_full = s_rest_all + e_t[0] + e_t[1];
    const T gs = a.scale * a.grad_scale;

    if (dense) {
        const T w = g.sum(w_sum, scratch), d = g.sum(wu_sum, scratch);
        if (g.lane() == 0) a.row_loss[row] = w * (m + log_of(s_full)) - d;
        const T at = gs * w / s_full;
        for (unsigned int j = g.lane(); j < cols; j += g.width()) {
            const T zj = z[j];
            const T wj = a.weights ? a.weights[j] : T(1);
            const T v = exp_of(a.logit(zj, j) - m) * at - gs * wj * t[j];
            dz[j] = a.passes(zj) ? v : T(0);
        }
        return;
    }

    // Hard targets: each component's normaliser, loss and gradient weight.
    const T eps = a.smoothing;
    T loss = T(0), coef_sum = T(0), slope_per_s = T(0);
    T comp_g[2] = {T(0), T(0)}, comp_lse[2] = {T(0), T(0)}, comp_shift[2] = {T(0), T(0)};
    int comp_class[2] = {-1, -1};
    for (unsigned int k = 0; k < a.per_row; ++k) {
        const int c = a.labels[(size_t)row * a.per_row + k];
        const T coef = a.coefs[(size_t)row * a.per_row + k];
        const T shift = a.margins ? a.scale * a.margins[c] : T(0);
        // s_k: the target's own term lowered by its margin, the other target's as is.
        T s_k = s_rest_all;
        T u_c = T(0);
        for (int q = 0; q < n_targets; ++q) {
            const bool mine = targets[q] == c;
            s_k += mine ? exp_of(u_t[q] - shift - m) : e_t[q];
            if (mine) u_c = u_t[q];
        }
        const T lse_k = m + log_of(s_k);
        T l_k, g_k;
        focal(u_c - shift - lse_k, a.gamma, l_k, g_k);
        const T c1k = coef * (T(1) - eps);
        loss += c1k * l_k;
        slope_per_s += c1k * g_k / s_k;
        comp_g[k] = c1k * g_k;
        comp_lse[k] = lse_k;
        comp_shift[k] = shift;
        comp_class[k] = c;
        coef_sum += coef;
    }
    const T smooth = eps * coef_sum;
    const T inv_c = T(1) / (T)cols;
    if (smooth != T(0)) {
        loss += smooth * (m + log_of(s_full) - smooth_sum * inv_c);
        slope_per_s += smooth / s_full;
    }
    if (g.lane() == 0) a.row_loss[row] = loss;

    // Pass 2: the gradient, written once.
    for (unsigned int j = g.lane(); j < cols; j += g.width()) {
        const T zj = z[j];
        const T u = a.logit(zj, j);
        T v;
        if ((int)j == c0 || (int)j == c1) {
            v = smooth * (exp_of(u - m) / s_full - inv_c);
            for (unsigned int k = 0; k < a.per_row; ++k) {
                const bool hit = comp_class[k] == (int)j;
                v += comp_g[k] * (exp_of(u - (hit ? comp_shift[k] : T(0)) - comp_lse[k]) - (hit ? T(1) : T(0)));
            }
        } else {
            v = slope_per_s * exp_of(u - m) - smooth * inv_c;
        }
        dz[j] = a.passes(zj) ? v * gs : T(0);
    }
}

#define FUSED_LOSS_PARAMS(T)                                                                   \
    const T *z, const T *target, const int *labels, const T *coefs, const T *offsets,          \
        const T *margins, const T *weights, T *grad, T *row_loss, unsigned int *first_bad,     \
        unsigned int rows, unsigned int cols, unsigned int per_row, T scale, T clamp, T gamma, \
        T smoothing, T grad_scale
#define FUSED_LOSS_ARGS                                                                        \
    {z, target, labels, coefs, offsets, margins, weights, grad, row_loss, first_bad, rows,    \
     cols, per_row, scale, clamp, gamma, smoothing, grad_scale}

#define DEFINE_FUSED_LOSS(T, SUF)                                                              \
    extern "C" __global__ void fused_loss_warp_##SUF(FUSED_LOSS_PARAMS(T)) {                   \
        fused_loss_row<false, T>(RowLossArgs<T> FUSED_LOSS_ARGS);                              \
    }                                                                                          \
    extern "C" __global__ void fused_loss_block_##SUF(FUSED_LOSS_PARAMS(T)) {                  \
        fused_loss_row<true, T>(RowLossArgs<T> FUSED_LOSS_ARGS);                               \
    }

DEFINE_FUSED_LOSS(float, f32)
DEFINE_FUSED_LOSS(double, f64)
