// Casts between f32 and bf16 (round to nearest even; NaN stays NaN). n elements, grid-stride.
extern "C" __global__ void cast_f32_to_bf16(const float* __restrict__ x, bf16_t* __restrict__ out, long long n) {
    PDL_ENTRY();
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x)
        out[i] = f32_to_bf16(x[i]);
}

extern "C" __global__ void cast_bf16_to_f32(const bf16_t* __restrict__ x, float* __restrict__ out, long long n) {
    PDL_ENTRY();
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x)
        out[i] = bf16_to_f32(x[i]);
}
