// Residual add + RMSNorm of one row of `cols` f32 values, by the whole block (Gemma 4's sandwich norms):
//   x_new = (x + rmsnorm(o) * w_post) * s        (o == nullptr: x_new = x * s)
//   x = x_new                                    (the residual stream, f32, in place)
//   out_norm = bf16(rmsnorm(x_new) * w_next)     (the next projection's input; w_next == nullptr: scale-free)
//   out_x    = bf16(x_new)                       (a projection of the plain residual, e.g. the PLE gate)
// Either output may be nullptr; s is Gemma's per-layer scalar at a layer's end, 1 elsewhere. rmsnorm(v) =
// v * rsqrt(mean(v^2) + eps), f32 accumulation, products ordered as in rms_norm.cu. Each thread holds its
// elements (i = threadIdx.x + e * blockDim.x) in registers from one round of loads to the end, so the row costs
// one memory round trip and two block reductions; the caller guarantees cols <= blockDim.x * RESID_PER_THREAD.
// x and o are read through L2 (load_l2_f32, common.cuh).
#define RESID_PER_THREAD 12
// 1 / sqrt(mean(v^2) + eps) of a row the block holds in registers (RESID_PER_THREAD values a thread, zeros past
// cols); every thread gets it.
__device__ __forceinline__ float row_inv_rms(const float (&v)[RESID_PER_THREAD], int cols, float eps) {
    float ss = 0.0f;
#pragma unroll
    for (int e = 0; e < RESID_PER_THREAD; ++e) ss += v[e] * v[e];
    ss = block_sum(ss);
    return 1.0f / sqrtf(ss / (float)cols + eps);
}

__device__ __forceinline__ void residual_rms_norm_row(float* __restrict__ xr, const float* __restrict__ orow,
                                                      const bf16_t* __restrict__ w_post, float s,
                                                      const bf16_t* __restrict__ w_next,
                                                      bf16_t* __restrict__ on, bf16_t* __restrict__ ob,
                                                      int cols, float eps) {
    float xv[RESID_PER_THREAD], ov[RESID_PER_THREAD];
#pragma unroll
    for (int e = 0; e < RESID_PER_THREAD; ++e) {
        const int i = threadIdx.x + e * blockDim.x;
        xv[e] = i < cols ? load_l2_f32(xr + i) : 0.0f;
        ov[e] = (i < cols && orow != nullptr) ? load_l2_f32(orow + i) : 0.0f;
    }
    if (orow != nullptr) {
        const float inv = row_inv_rms(ov, cols, eps);
#pragma unroll
        for (int e = 0; e < RESID_PER_THREAD; ++e) {
            const int i = threadIdx.x + e * blockDim.x;
            const float w = (i < cols && w_post != nullptr) ? bf16_to_f32(w_post[i]) : 1.0f;
            xv[e] = (xv[e] + ov[e] * inv * w) * s;
        }
    } else if (s != 1.0f) {
#pragma unroll
        for (int e = 0; e < RESID_PER_THREAD; ++e) xv[e] = xv[e] * s;
    }
#pragma unroll
    for (int e = 0; e < RESID_PER_THREAD; ++e) {
        const int i = threadIdx.x + e * blockDim.x;
        if (i < cols) {
            if (orow != nullptr || s != 1.0f) xr[i] = xv[e];
            if (ob != nullptr) ob[i] = f32_to_bf16(xv[e]);
        }
    }
    if (on != nullptr) {
        const float inv = row_inv_rms(xv, cols, eps);
#pragma unroll
        for (int e = 0; e < RESID_PER_THREAD; ++e) {
            const int i = threadIdx.x + e * blockDim.x;
            if (i < cols) on[i] = f32_to_bf16(w_next != nullptr ? xv[e] * inv * bf16_to_f32(w_next[i]) : xv[e] * inv);
        }
    }
}

// Fused residual add + RMSNorm (Gemma 4's sandwich norms), one block per row of cols f32 values: the row
// function residual_rms_norm_row above says exactly what is computed. Outputs may be nullptr; s is
// Gemma's per-layer scalar at a layer's end, 1 elsewhere.
extern "C" __global__ void residual_rms_norm(float* __restrict__ x, const float* __restrict__ o,
                                             const bf16_t* __restrict__ w_post, float s,
                                             const bf16_t* __restrict__ w_next, bf16_t* __restrict__ out_norm,
                                             bf16_t* __restrict__ out_x, int cols, float eps) {
    PDL_ENTRY();
    const size_t base = (size_t)blockIdx.x * cols;
    residual_rms_norm_row(x + base, o != nullptr ? o + base : nullptr, w_post, s, w_next,
                          out_norm != nullptr ? out_norm + base : nullptr,
                          out_x != nullptr ? out_x + base : nullptr, cols, eps);
}
