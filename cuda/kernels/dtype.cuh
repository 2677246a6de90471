// Half-precision element types (`__half`, `__nv_bfloat16`) and conversions between all
// four element types. Spliced in like common.cuh; only files that need 16-bit types
// include it, because the CUDA fp16/bf16 headers are large and slow NVRTC down.
#include <cuda_fp16.h>
#include <cuda_bf16.h>

// Convert<To>::from(v) converts any element type to `To`, rounding to nearest even.
// Half types widen through float, which is exact.
template <typename To> struct Convert;
template <> struct Convert<float> {
    __device__ static float from(float v) { return v; }
    __device__ static float from(double v) { return (float)v; }
    __device__ static float from(__half v) { return __half2float(v); }
    __device__ static float from(__nv_bfloat16 v) { return __bfloat162float(v); }
};
template <> struct Convert<double> {
    __device__ static double from(float v) { return v; }
    __device__ static double from(double v) { return v; }
    __device__ static double from(__half v) { return __half2float(v); }
    __device__ static double from(__nv_bfloat16 v) { return __bfloat162float(v); }
};
template <> struct Convert<__half> {
    __device__ static __half from(float v) { return __float2half_rn(v); }
    __device__ static __half from(double v) { return __double2half(v); }
    __device__ static __half from(__half v) { return v; }
    __device__ static __half from(__nv_bfloat16 v) { return __float2half_rn(__bfloat162float(v)); }
};
template <> struct Convert<__nv_bfloat16> {
    __device__ static __nv_bfloat16 from(float v) { return __float2bfloat16_rn(v); }
    __device__ static __nv_bfloat16 from(double v) { return __double2bfloat16(v); }
    __device__ static __nv_bfloat16 from(__half v) { return __float2bfloat16_rn(__half2float(v)); }
    __device__ static __nv_bfloat16 from(__nv_bfloat16 v) { return v; }
};
