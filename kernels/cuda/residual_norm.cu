// Fused residual add + RMSNorm (Gemma 4's sandwich norms), one block per row of cols f32 values:
//   x_new = (x + rmsnorm(o) * w_post) * s        (o == nullptr: x_new = x * s)
//   x = x_new                                    (the residual stream, f32, in place)
//   out_norm = bf16(rmsnorm(x_new) * w_next)     (the next projection's input; w_next == nullptr: scale-free)
//   out_x    = bf16(x_new)                       (a projection of the plain residual, e.g. the PLE gate)
// Either output may be nullptr. s is Gemma's per-layer scalar at a layer's end, 1 elsewhere.
// rmsnorm(v) = v * rsqrt(mean(v^2) + eps), f32 accumulation; the products are ordered as in rms_norm.cu
// so the result equals the unfused norm + add + scale sequence up to the reduction order.
// Each thread touches the same indices in every pass, so the in-place update needs no barrier.
extern "C" __global__ void residual_rms_norm(float* __restrict__ x, const float* __restrict__ o,
                                             const bf16_t* __restrict__ w_post, float s,
                                             const bf16_t* __restrict__ w_next, bf16_t* __restrict__ out_norm,
                                             bf16_t* __restrict__ out_x, int cols, float eps) {
    PDL_ENTRY();
    const size_t base = (size_t)blockIdx.x * cols;
    float* xr = x + base;
    if (o != nullptr) {
        const float* orow = o + base;
        float ss = 0.0f;
        for (int i = threadIdx.x; i < cols; i += blockDim.x) {
            const float v = orow[i];
            ss += v * v;
        }
        ss = block_sum(ss);
        const float inv = 1.0f / sqrtf(ss / (float)cols + eps);
        for (int i = threadIdx.x; i < cols; i += blockDim.x) {
            const float w = w_post != nullptr ? bf16_to_f32(w_post[i]) : 1.0f;
            xr[i] = (xr[i] + orow[i] * inv * w) * s;
        }
    } else if (s != 1.0f) {
        for (int i = threadIdx.x; i < cols; i += blockDim.x) xr[i] = xr[i] * s;
    }
    if (out_x != nullptr) {
        bf16_t* ob = out_x + base;
        for (int i = threadIdx.x; i < cols; i += blockDim.x) ob[i] = f32_to_bf16(xr[i]);
    }
    if (out_norm != nullptr) {
        float ss = 0.0f;
        for (int i = threadIdx.x; i < cols; i += blockDim.x) {
            const float v = xr[i];
            ss += v * v;
        }
        ss = block_sum(ss);
        const float inv = 1.0f / sqrtf(ss / (float)cols + eps);
        bf16_t* on = out_norm + base;
        for (int i = threadIdx.x; i < cols; i += blockDim.x) {
            const float v = w_next != nullptr ? xr[i] * inv * bf16_to_f32(w_next[i]) : xr[i] * inv;
            on[i] = f32_to_bf16(v);
        }
    }
}
