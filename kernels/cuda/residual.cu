// Residual arithmetic on f32 vectors of length n: out = a + b, and out = x * s.
// out may alias an input (element-wise, same index). Grid-stride loops.
extern "C" __global__ void add_f32(const float* a, const float* b, float* out, long long n) {
    PDL_ENTRY();
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x)
        out[i] = a[i] + b[i];
}

extern "C" __global__ void scale_f32(const float* x, float* out, long long n, float s) {
    PDL_ENTRY();
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x)
        out[i] = x[i] * s;
}
