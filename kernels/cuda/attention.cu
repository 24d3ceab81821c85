// Causal attention of new queries against a bf16 KV cache, for prefill and decode alike.
// q: f32 [tokens, heads, head_dim]; out: f32 [tokens, heads, head_dim];
// k_cache, v_cache: bf16 [num_seqs, capacity, kv_heads, head_dim], position p in slot p % capacity;
// seq_ids, positions: i32 [tokens]. Query t (sequence seq_ids[t], position positions[t]) attends to
// key positions max(0, pos - window + 1) ..= pos (window <= 0: no window), all of which must already
// be in the cache. GQA: head h reads kv head h / (heads / kv_heads). Scores are scale * q.k, softmax
// in f32 with an online max. One block per (token, head); each warp walks every nwarps-th key, each
// lane owns EPL consecutive dims (head_dim <= 32 * EPL); the warps' partial results merge at the end.
#define MAX_WARPS 8

template <int EPL>
__device__ __forceinline__ void attention_impl(const float* __restrict__ q, const bf16_t* __restrict__ k_cache,
                                               const bf16_t* __restrict__ v_cache,
                                               const int* __restrict__ seq_ids, const int* __restrict__ positions,
                                               float* __restrict__ out, int heads, int kv_heads, int head_dim,
                                               int capacity, int window, float scale) {
    __shared__ float sh_m[MAX_WARPS];
    __shared__ float sh_l[MAX_WARPS];
    __shared__ float sh_acc[MAX_WARPS][EPL * 32];

    const int t = blockIdx.x;
    const int h = blockIdx.y;
    const int lane = threadIdx.x & 31;
    const int warp = threadIdx.x >> 5;
    const int nwarps = blockDim.x >> 5;
    const int seq = seq_ids[t];
    const int pos = positions[t];
    const int kvh = h / (heads / kv_heads);
    const int lo = window > 0 ? max(0, pos - window + 1) : 0;
    const int d0 = lane * EPL;

    float qv[EPL];
    const float* qp = q + ((size_t)t * heads + h) * head_dim;
#pragma unroll
    for (int e = 0; e < EPL; ++e) qv[e] = (d0 + e < head_dim) ? qp[d0 + e] * scale : 0.0f;

    float m = NEG_INF, l = 0.0f;
    float acc[EPL];
#pragma unroll
    for (int e = 0; e < EPL; ++e) acc[e] = 0.0f;

    const size_t seq_base = (size_t)seq * capacity;
    const size_t row = (size_t)kv_heads * head_dim;
    for (int j = lo + warp; j <= pos; j += nwarps) {
        const size_t off = (seq_base + (size_t)(j % capacity)) * row + (size_t)kvh * head_dim;
        const bf16_t* kp = k_cache + off;
        const bf16_t* vp = v_cache + off;
        float s = 0.0f;
#pragma unroll
        for (int e = 0; e < EPL; ++e)
            if (d0 + e < head_dim) s += qv[e] * bf16_to_f32(kp[d0 + e]);
        s = warp_sum(s);
        const float m_new = fmaxf(m, s);
        const float corr = expf(m - m_new);
        const float p = expf(s - m_new);
        l = l * corr + p;
#pragma unroll
        for (int e = 0; e < EPL; ++e) {
            const float v = (d0 + e < head_dim) ? bf16_to_f32(vp[d0 + e]) : 0.0f;
            acc[e] = acc[e] * corr + p * v;
        }
        m = m_new;
    }

    if (lane == 0) {
        sh_m[warp] = m;
        sh_l[warp] = l;
    }
#pragma unroll
    for (int e = 0; e < EPL; ++e) sh_acc[warp][d0 + e] = acc[e];
    __syncthreads();

    float gm = NEG_INF;
    for (int w = 0; w < nwarps; ++w) gm = fmaxf(gm, sh_m[w]);
    float gl = 0.0f;
    for (int w = 0; w < nwarps; ++w)
        if (sh_l[w] > 0.0f) gl += sh_l[w] * expf(sh_m[w] - gm);
    float* op = out + ((size_t)t * heads + h) * head_dim;
    for (int d = threadIdx.x; d < head_dim; d += blockDim.x) {
        float o = 0.0f;
        for (int w = 0; w < nwarps; ++w)
            if (sh_l[w] > 0.0f) o += sh_acc[w][d] * expf(sh_m[w] - gm);
        op[d] = o / gl;
    }
}

#define ATTENTION_ENTRY(EPL)                                                                              \
    extern "C" __global__ void attention_epl##EPL(const float* q, const bf16_t* k_cache, const bf16_t* v_cache, \
                                                  const int* seq_ids, const int* positions, float* out,  \
                                                  int heads, int kv_heads, int head_dim, int capacity,  \
                                                  int window, float scale) {                             \
        attention_impl<EPL>(q, k_cache, v_cache, seq_ids, positions, out, heads, kv_heads, head_dim,    \
                            capacity, window, scale);                                                    \
    }

ATTENTION_ENTRY(1)
ATTENTION_ENTRY(2)
ATTENTION_ENTRY(4)
ATTENTION_ENTRY(8)
ATTENTION_ENTRY(16)
