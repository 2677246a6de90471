// Fused ops of a ResNet block, the kernels of the engine's ops/fused.rs.
// - add_relu: y[i] = max(a[i] + b[i], 0) for two tensors of one shape, the residual join:
//   one read of each input and one write, where add then relu write an intermediate and
//   read it back. Its backward is relu's (`relu_grad` in elementwise.cu, masked by y).
// batch_norm2d_relu has no kernel of its own: the engine (engine/src/cuda/fused.rs)
// follows batch_norm.cu's training forward with relu_fwd, and masks dy with relu_grad
// before batch_norm2d_bwd.
#include "common.cuh"

#define DEFINE_FUSED(T, SUF)                                                                   \
    extern "C" __global__ void add_relu_fwd_##SUF(const T* a, const T* b, T* y, unsigned int n) { \
        FOR_EACH_INDEX(i, n) {                                                                 \
            const T s = a[i] + b[i];                                                           \
            y[i] = s > T(0) ? s : T(0);                                                        \
        }                                                                                      \
    }

DEFINE_FUSED(float, f32)
DEFINE_FUSED(double, f64)
