// Fused residual add + RMSNorm (Gemma 4's sandwich norms), one block per row of cols f32 values: the row
// function residual_rms_norm_row in common.cuh says exactly what is computed. Outputs may be nullptr; s is
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
