// Logit soft-capping: out = tanh(x / cap) * cap, element-wise over n f32 values (Gemma's final
// logits use cap 30). out may alias x. Grid-stride loop.
extern "C" __global__ void softcap_f32(const float* x, float* out, long long n, float cap) {
    PDL_ENTRY();
    const float inv = 1.0f / cap;
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x)
        out[i] = tanhf(x[i] * inv) * cap;
}
