// Causal attention of new queries against a bf16 KV cache, for prefill and decode alike.
// q: f32 [tokens, heads, head_dim]; out: f32 [tokens, heads, head_dim], or, where out_b is not null, out_b:
// bf16 [tokens, heads, head_dim] instead (the o projection's operand, rounded to nearest even);
// k_cache, v_cache: bf16 [num_seqs, capacity, kv_heads, head_dim], position p in slot p % capacity;
// seq_ids, positions: i32 [tokens]. Query t (sequence seq_ids[t], position positions[t]) attends to
// key positions max(0, pos - window + 1) ..= pos (window <= 0: no window), all of which must already
// be in the cache. GQA: head h reads kv head h / (heads / kv_heads). Scores are scale * q.k, softmax
// in f32 with an online max.
//
// Grid (tokens, heads, splits): block z takes the z-th of `splits` equal parts of the query's key
// range (split-KV, so a decode step with few tokens still fills the GPU). Within a block each warp
// walks every nwarps-th key of the part and each lane owns EPL consecutive dims (head_dim <= 32*EPL);
// the warps merge in shared memory. With one split the block writes the normalised output; with
// more it writes its unnormalised partial (max, sum, acc) and attention_combine merges the parts.
#define MAX_WARPS 8

// Keys in flight per warp on the 16-byte path: independent loads issued before the first use.
#define KEYS_IN_FLIGHT 4

__device__ __forceinline__ void unpack8(const uint4 u, float* v) {
    v[0] = __uint_as_float(u.x << 16);
    v[1] = __uint_as_float(u.x & 0xffff0000u);
    v[2] = __uint_as_float(u.y << 16);
    v[3] = __uint_as_float(u.y & 0xffff0000u);
    v[4] = __uint_as_float(u.z << 16);
    v[5] = __uint_as_float(u.z & 0xffff0000u);
    v[6] = __uint_as_float(u.w << 16);
    v[7] = __uint_as_float(u.w & 0xffff0000u);
}

// One key's step of the online softmax for this lane's dims.
template <int EPL>
__device__ __forceinline__ void online_step(const float* qv, const float* kv, const float* vv, float& m, float& l,
                                            float* acc) {
    float s = 0.0f;
#pragma unroll
    for (int e = 0; e < EPL; ++e) s += qv[e] * kv[e];
    s = warp_sum(s);
    const float m_new = fmaxf(m, s);
    const float corr = expf(m - m_new);
    const float p = expf(s - m_new);
    l = l * corr + p;
#pragma unroll
    for (int e = 0; e < EPL; ++e) acc[e] = acc[e] * corr + p * vv[e];
    m = m_new;
}

// One round of keys at once (the first n of KEYS_IN_FLIGHT loaded 16-byte K/V chunks of this lane): the n
// scores first (independent dot products whose shuffle reductions interleave), then one max and one rescale of
// the running state, then the weighted V rows. Equal to n online_step calls up to f32 rounding, with one
// dependent reduction chain and n + 1 exponentials a round instead of n of each.
template <int EPL>
__device__ __forceinline__ void online_round(const float* qv, const uint4 (&kr)[KEYS_IN_FLIGHT][EPL / 8],
                                             const uint4 (&vr)[KEYS_IN_FLIGHT][EPL / 8], int n, float& m,
                                             float& l, float* acc) {
    constexpr int C = EPL / 8;
    float s[KEYS_IN_FLIGHT];
#pragma unroll
    for (int u = 0; u < KEYS_IN_FLIGHT; ++u) {
        float kv[EPL];
#pragma unroll
        for (int c = 0; c < C; ++c) unpack8(kr[u][c], kv + 8 * c);
        float d = 0.0f;
#pragma unroll
        for (int e = 0; e < EPL; ++e) d += qv[e] * kv[e];
        s[u] = d;
    }
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) {
#pragma unroll
        for (int u = 0; u < KEYS_IN_FLIGHT; ++u) s[u] += __shfl_xor_sync(0xffffffffu, s[u], o);
    }
    // Keys past n were not loaded: their scores are garbage and must not reach the max, the sum or acc.
    float m_new = m;
#pragma unroll
    for (int u = 0; u < KEYS_IN_FLIGHT; ++u)
        if (u < n) m_new = fmaxf(m_new, s[u]);
    const float corr = expf(m - m_new);
    float p[KEYS_IN_FLIGHT];
    float p_sum = 0.0f;
#pragma unroll
    for (int u = 0; u < KEYS_IN_FLIGHT; ++u) {
        p[u] = u < n ? expf(s[u] - m_new) : 0.0f;
        p_sum += p[u];
    }
    l = l * corr + p_sum;
#pragma unroll
    for (int e = 0; e < EPL; ++e) acc[e] *= corr;
#pragma unroll
    for (int u = 0; u < KEYS_IN_FLIGHT; ++u) {
        if (u < n) {
            float vv[EPL];
#pragma unroll
            for (int c = 0; c < C; ++c) unpack8(vr[u][c], vv + 8 * c);
#pragma unroll
            for (int e = 0; e < EPL; ++e) acc[e] += p[u] * vv[e];
        }
    }
    m = m_new;
}

// Merges the split partials of query head th (= token * heads + head) into its output: out = sum_s acc_s w_s
// with w_s = e^(m_s - M) / sum_r l_r e^(m_r - M) (0 for a split that saw no key). The weights are computed
// once, one lane a split (at most ATTENTION_MAX_SPLITS), then every thread sums its dims over the splits with the
// loads unrolled. Partials are read through L2 (load_l2_f32), so the last split block of the attention kernel
// itself may merge what the others wrote. Every thread of the block must call it; it ends with a barrier.
#define ATTENTION_MAX_SPLITS 32
__device__ __forceinline__ void merge_splits(const float* __restrict__ part_ml, const float* __restrict__ part_acc,
                                             float* __restrict__ out, bf16_t* __restrict__ out_b, size_t th,
                                             int head_dim, int splits) {
    __shared__ float weight[ATTENTION_MAX_SPLITS];
    const float* ml = part_ml + 2 * th * splits;
    if (threadIdx.x < 32) {
        const int s = threadIdx.x;
        const float m = s < splits ? load_l2_f32(ml + 2 * s) : NEG_INF;
        const float l = s < splits ? load_l2_f32(ml + 2 * s + 1) : 0.0f;
        const float gm = warp_max(m);
        const float e = l > 0.0f ? expf(m - gm) : 0.0f;
        const float gl = warp_sum(l * e);
        weight[s] = e / gl;
    }
    __syncthreads();
    const float* acc = part_acc + th * splits * head_dim;
    for (int d = threadIdx.x; d < head_dim; d += blockDim.x) {
        float o = 0.0f;
#pragma unroll 8
        for (int s = 0; s < splits; ++s) o += load_l2_f32(acc + (size_t)s * head_dim + d) * weight[s];
        if (out_b) out_b[th * head_dim + d] = f32_to_bf16(o);
        else out[th * head_dim + d] = o;
    }
    __syncthreads();
}

// Walks this warp's keys j_begin + warp, + nwarps, ... <= j_end of one kv head with 16-byte loads
// (head_dim == 32 * EPL, EPL % 8 == 0, 16-byte aligned caches) in rounds: KEYS_IN_FLIGHT keys' K and V are
// loaded before any is used, then on_round(kr, vr, n) gets the round's raw chunks of this lane (kr, vr:
// uint4[KEYS_IN_FLIGHT][EPL / 8]), of which the first n (>= 1) keys are loaded. Every lane of the warp calls
// on_round for the same rounds, so a shuffle inside stays converged.
template <int EPL, typename OnRound>
__device__ __forceinline__ void walk_rounds_16b(const bf16_t* __restrict__ k_cache,
                                                const bf16_t* __restrict__ v_cache, size_t seq_base, size_t row,
                                                size_t head_off, int capacity, int j_begin, int j_end, int warp,
                                                int nwarps, OnRound on_round) {
    constexpr int C = EPL / 8;
    for (int j0 = j_begin + warp; j0 <= j_end; j0 += nwarps * KEYS_IN_FLIGHT) {
        uint4 kr[KEYS_IN_FLIGHT][C], vr[KEYS_IN_FLIGHT][C];
#pragma unroll
        for (int u = 0; u < KEYS_IN_FLIGHT; ++u) {
            const int j = j0 + u * nwarps;
            if (j <= j_end) {
                const size_t off = (seq_base + (size_t)(j % capacity)) * row + head_off;
                const uint4* kp = (const uint4*)(k_cache + off);
                const uint4* vp = (const uint4*)(v_cache + off);
#pragma unroll
                for (int c = 0; c < C; ++c) {
                    kr[u][c] = kp[c];
                    vr[u][c] = vp[c];
                }
            }
        }
        on_round(kr, vr, min(KEYS_IN_FLIGHT, (j_end - j0) / nwarps + 1));
    }
}

// walk_rounds_16b, one key at a time: on_key(kv, vv) gets each loaded key's EPL dims of this lane (kv and vv:
// float[EPL]).
template <int EPL, typename OnKey>
__device__ __forceinline__ void walk_keys_16b(const bf16_t* __restrict__ k_cache, const bf16_t* __restrict__ v_cache,
                                              size_t seq_base, size_t row, size_t head_off, int capacity,
                                              int j_begin, int j_end, int warp, int nwarps, OnKey on_key) {
    constexpr int C = EPL / 8;
    walk_rounds_16b<EPL>(k_cache, v_cache, seq_base, row, head_off, capacity, j_begin, j_end, warp, nwarps,
                         [&](const uint4 (&kr)[KEYS_IN_FLIGHT][C], const uint4 (&vr)[KEYS_IN_FLIGHT][C], int n) {
#pragma unroll
                             for (int u = 0; u < KEYS_IN_FLIGHT; ++u) {
                                 if (u < n) {
                                     float kv[EPL], vv[EPL];
#pragma unroll
                                     for (int c = 0; c < C; ++c) {
                                         unpack8(kr[u][c], kv + 8 * c);
                                         unpack8(vr[u][c], vv + 8 * c);
                                     }
                                     on_key(kv, vv);
                                 }
                             }
                         });
}

// The end of a split block for query head th (= token * heads + head): merges the nwarps warps' online-softmax
// states (sh_m, sh_l: one per warp; sh_acc: each warp's dims) and writes the normalised output (one split) or
// the unnormalised partial (max, sum, acc) of split `split` that merge_splits merges. Every thread of the block
// calls it after the barrier that published the warps' states.
template <int EPL>
__device__ __forceinline__ void store_split(const float* sh_m, const float* sh_l, const float (*sh_acc)[EPL * 32],
                                            int nwarps, size_t th, int split, int splits, int head_dim,
                                            float* __restrict__ out, bf16_t* __restrict__ out_b,
                                            float* __restrict__ part_ml, float* __restrict__ part_acc) {
    float bm = NEG_INF;
    for (int w = 0; w < nwarps; ++w) bm = fmaxf(bm, sh_m[w]);
    float bl = 0.0f;
    for (int w = 0; w < nwarps; ++w)
        if (sh_l[w] > 0.0f) bl += sh_l[w] * expf(sh_m[w] - bm);
    if (splits == 1) {
        for (int d = threadIdx.x; d < head_dim; d += blockDim.x) {
            float o = 0.0f;
            for (int w = 0; w < nwarps; ++w)
                if (sh_l[w] > 0.0f) o += sh_acc[w][d] * expf(sh_m[w] - bm);
            if (out_b) out_b[th * head_dim + d] = f32_to_bf16(o / bl);
            else out[th * head_dim + d] = o / bl;
        }
    } else {
        const size_t part = th * splits + split;
        if (threadIdx.x == 0) {
            part_ml[2 * part] = bm;  // NEG_INF with bl == 0 when this split had no keys
            part_ml[2 * part + 1] = bl;
        }
        float* ap = part_acc + part * head_dim;
        for (int d = threadIdx.x; d < head_dim; d += blockDim.x) {
            float o = 0.0f;
            for (int w = 0; w < nwarps; ++w)
                if (sh_l[w] > 0.0f) o += sh_acc[w][d] * expf(sh_m[w] - bm);
            ap[d] = o;
        }
    }
}

// ROUNDS: on the 16-byte path, the online softmax takes a round of keys at once (online_round) rather than
// one key at a time (online_step).
template <int EPL, bool ROUNDS>
__device__ __forceinline__ void attention_impl(const float* __restrict__ q, const bf16_t* __restrict__ k_cache,
                                               const bf16_t* __restrict__ v_cache,
                                               const int* __restrict__ seq_ids, const int* __restrict__ positions,
                                               float* __restrict__ out, bf16_t* __restrict__ out_b,
                                               float* __restrict__ part_ml,
                                               float* __restrict__ part_acc, int heads, int kv_heads,
                                               int head_dim, int capacity, int window, float scale,
                                               unsigned* __restrict__ counters) {
    __shared__ float sh_m[MAX_WARPS];
    __shared__ float sh_l[MAX_WARPS];
    __shared__ float sh_acc[MAX_WARPS][EPL * 32];

    const int t = blockIdx.x;
    const int h = blockIdx.y;
    const int split = blockIdx.z;
    const int splits = gridDim.z;
    const int lane = threadIdx.x & 31;
    const int warp = threadIdx.x >> 5;
    const int nwarps = blockDim.x >> 5;
    const int seq = seq_ids[t];
    const int pos = positions[t];
    const int kvh = h / (heads / kv_heads);
    const int lo = window > 0 ? max(0, pos - window + 1) : 0;
    const int per_split = (pos - lo + 1 + splits - 1) / splits;
    const int j_begin = lo + split * per_split;
    const int j_end = min(pos, j_begin + per_split - 1);
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
    const bool vec = head_dim == 32 * EPL && aligned16(k_cache) && aligned16(v_cache);
    if constexpr ((EPL % 8) == 0) {
        constexpr int C = EPL / 8;
        if (vec && ROUNDS)
            walk_rounds_16b<EPL>(k_cache, v_cache, seq_base, row, (size_t)kvh * head_dim + d0, capacity, j_begin,
                                 j_end, warp, nwarps,
                                 [&](const uint4 (&kr)[KEYS_IN_FLIGHT][C], const uint4 (&vr)[KEYS_IN_FLIGHT][C],
                                     int n) { online_round<EPL>(qv, kr, vr, n, m, l, acc); });
        else if (vec)
            walk_keys_16b<EPL>(k_cache, v_cache, seq_base, row, (size_t)kvh * head_dim + d0, capacity, j_begin,
                               j_end, warp, nwarps,
                               [&](const float* kv, const float* vv) { online_step<EPL>(qv, kv, vv, m, l, acc); });
    }
    if (!vec || (EPL % 8) != 0) {
        for (int j = j_begin + warp; j <= j_end; j += nwarps) {
            const size_t off = (seq_base + (size_t)(j % capacity)) * row + (size_t)kvh * head_dim;
            float kv[EPL], vv[EPL];
#pragma unroll
            for (int e = 0; e < EPL; ++e) {
                kv[e] = (d0 + e < head_dim) ? bf16_to_f32(k_cache[off + d0 + e]) : 0.0f;
                vv[e] = (d0 + e < head_dim) ? bf16_to_f32(v_cache[off + d0 + e]) : 0.0f;
            }
            online_step<EPL>(qv, kv, vv, m, l, acc);
        }
    }

    if (lane == 0) {
        sh_m[warp] = m;
        sh_l[warp] = l;
    }
#pragma unroll
    for (int e = 0; e < EPL; ++e) sh_acc[warp][d0 + e] = acc[e];
    __syncthreads();

    const size_t th = (size_t)t * heads + h;
    store_split<EPL>(sh_m, sh_l, sh_acc, nwarps, th, split, splits, head_dim, out, out_b, part_ml, part_acc);
    // With counters, the last of the query's split blocks merges them (no attention_combine launch).
    if (splits > 1 && counters != nullptr && last_block_to_arrive(counters + th, (unsigned)splits))
        merge_splits(part_ml, part_acc, out, out_b, th, head_dim, splits);
}

#define ATTENTION_ENTRY(NAME, EPL, ROUNDS)                                                                \
    extern "C" __global__ void NAME(const float* q, const bf16_t* k_cache, const bf16_t* v_cache,          \
                                    const int* seq_ids, const int* positions, float* out, bf16_t* out_b,     \
                                    float* part_ml, float* part_acc, int heads, int kv_heads, int head_dim,  \
                                    int capacity, int window, float scale, unsigned* counters) {            \
        PDL_ENTRY();                                                                                      \
        attention_impl<EPL, ROUNDS>(q, k_cache, v_cache, seq_ids, positions, out, out_b, part_ml, part_acc, \
                                    heads, kv_heads, head_dim, capacity, window, scale, counters);         \
    }

ATTENTION_ENTRY(attention_epl1, 1, false)
ATTENTION_ENTRY(attention_epl2, 2, false)
ATTENTION_ENTRY(attention_epl4, 4, false)
ATTENTION_ENTRY(attention_epl8, 8, false)
ATTENTION_ENTRY(attention_epl16, 16, false)
// The online softmax a round of keys at a time (head_dim 256 and 512 on the 16-byte path).
ATTENTION_ENTRY(attention_rounds_epl8, 8, true)
ATTENTION_ENTRY(attention_rounds_epl16, 16, true)

// Merges the split partials of every (token, head) (merge_splits). Grid (tokens, heads).
extern "C" __global__ void attention_combine(const float* __restrict__ part_ml, const float* __restrict__ part_acc,
                                             float* __restrict__ out, bf16_t* __restrict__ out_b, int heads,
                                             int head_dim, int splits) {
    PDL_ENTRY();
    merge_splits(part_ml, part_acc, out, out_b, (size_t)blockIdx.x * heads + blockIdx.y, head_dim, splits);
}
