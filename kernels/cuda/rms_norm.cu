// RMSNorm over rows (Gemma 4 convention): out = x * rsqrt(mean(x^2) + eps) * weight, or without the
// weight (the scale-free variant, weight == nullptr). x, out: f32 [rows, cols]; weight: bf16 [cols].
// One block per row; f32 accumulation. out may alias x (each element is read before it is written
// by the same thread).
extern "C" __global__ void rms_norm_f32(const float* x, const bf16_t* __restrict__ weight, float* out,
                                        int cols, float eps) {
    PDL_ENTRY();
    const size_t base = (size_t)blockIdx.x * cols;
    const float* xr = x + base;
    float* orow = out + base;
    float ss = 0.0f;
    for (int i = threadIdx.x; i < cols; i += blockDim.x) {
        const float v = xr[i];
        ss += v * v;
    }
    ss = block_sum(ss);
    const float inv = 1.0f / sqrtf(ss / (float)cols + eps);
    if (weight != nullptr) {
        for (int i = threadIdx.x; i < cols; i += blockDim.x) orow[i] = xr[i] * inv * bf16_to_f32(weight[i]);
    } else {
        for (int i = threadIdx.x; i < cols; i += blockDim.x) orow[i] = xr[i] * inv;
    }
}
