// SGD with momentum and L2 weight decay, one fused pass over the parameters
// (PyTorch's torch.optim.SGD without dampening or Nesterov):
//   v = mu * v + (g + wd * p)
//   p = p - lr * v
#include "common.cuh"

#define DEFINE_SGD(T, SUF)                                                                     \
    extern "C" __global__ void sgd_momentum_##SUF(T* p, const T* g, T* v, unsigned int n,      \
                                                  T lr, T momentum, T weight_decay) {          \
        FOR_EACH_INDEX(i, n) {                                                                 \
            const T velocity = momentum * v[i] + (g[i] + weight_decay * p[i]);                 \
            v[i] = velocity;                                                                   \
            p[i] -= lr * velocity;                                                             \
        }                                                                                      \
    }

DEFINE_SGD(float, f32)
DEFINE_SGD(double, f64)
