// Gemma 4 E-model per-layer inputs, after the model projection GEMM, in one pass:
//   out[r, l, :] = (rmsnorm(proj[r, l, :] * proj_scale) * norm_w + f32(table[ids[r], l, :]) * table_scale)
//                  * combine_scale
// proj, out: f32 [rows, layers * dim]; table: bf16 [vocab, layers * dim]; ids: u32 [rows]; norm_w: bf16
// [dim]. The arithmetic is ordered as the unfused scale -> rms_norm -> embed -> add -> scale sequence.
// An id >= vocab writes NaN (as embedding.cu does). Grid rows * layers blocks, one (token, layer) each.
extern "C" __global__ void ple_combine(const float* __restrict__ proj, const bf16_t* __restrict__ table,
                                       const unsigned* __restrict__ ids, const bf16_t* __restrict__ norm_w,
                                       float* __restrict__ out, int layers, int dim, unsigned vocab,
                                       float proj_scale, float table_scale, float combine_scale, float eps) {
    PDL_ENTRY();
    const int r = blockIdx.x / layers;
    const int l = blockIdx.x % layers;
    const size_t width = (size_t)layers * dim;
    const float* p = proj + (size_t)r * width + (size_t)l * dim;
    float* o = out + (size_t)r * width + (size_t)l * dim;
    const unsigned id = ids[r];
    float ss = 0.0f;
    for (int i = threadIdx.x; i < dim; i += blockDim.x) {
        const float v = p[i] * proj_scale;
        ss += v * v;
    }
    ss = block_sum(ss);
    if (id >= vocab) {
        for (int i = threadIdx.x; i < dim; i += blockDim.x) o[i] = __int_as_float(0x7fc00000);
        return;
    }
    const float inv = 1.0f / sqrtf(ss / (float)dim + eps);
    const bf16_t* trow = table + (size_t)id * width + (size_t)l * dim;
    for (int i = threadIdx.x; i < dim; i += blockDim.x) {
        const float v = p[i] * proj_scale;
        const float n = v * inv * bf16_to_f32(norm_w[i]);
        o[i] = (n + bf16_to_f32(trow[i]) * table_scale) * combine_scale;
    }
}
