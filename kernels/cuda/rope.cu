// Rotary position embedding in place, rotate_half convention: for pair i < head_dim/2,
//   (x[i], x[i + head_dim/2]) <- (x[i] cos - x[i+half] sin, x[i+half] cos + x[i] sin),
// angle = positions[t] * inv_freq[i]. x: f32 [tokens, heads, head_dim]; positions: i32 [tokens];
// inv_freq: f32 [head_dim/2] (zeros leave a pair unrotated, which is how proportional rope keeps
// its non-rotary dims). The angle and its sine/cosine are computed in double so long positions
// keep full f32 accuracy. One block per token; each thread owns pair indices and loops over heads.
extern "C" __global__ void rope_inplace_f32(float* __restrict__ x, const int* __restrict__ positions,
                                            const float* __restrict__ inv_freq, int heads, int head_dim) {
    PDL_ENTRY();
    const int t = blockIdx.x;
    const int half = head_dim / 2;
    const double pos = (double)positions[t];
    float* xt = x + (size_t)t * heads * head_dim;
    for (int i = threadIdx.x; i < half; i += blockDim.x) {
        const float f = inv_freq[i];
        if (f == 0.0f) continue;
        double s, c;
        sincos(pos * (double)f, &s, &c);
        const float cf = (float)c, sf = (float)s;
        for (int h = 0; h < heads; ++h) {
            float* xh = xt + (size_t)h * head_dim;
            const float a = xh[i], b = xh[i + half];
            xh[i] = a * cf - b * sf;
            xh[i + half] = b * cf + a * sf;
        }
    }
}
