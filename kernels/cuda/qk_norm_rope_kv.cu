// Fused attention prologue for one layer: per-head RMSNorm of q, k and v, RoPE of q and k, and the
// bf16 KV-cache write, from the fused q|k|v projection output, in one launch.
// qkv: f32 [tokens, row_stride]; q heads at columns [0, heads*hd), k heads at k_col + j*hd, v heads at
// v_col + j*hd (v_col == k_col: attention_k_eq_v, values are the raw key projection).
// q_out: f32 [tokens, heads, hd] = rope(rmsnorm(q) * q_norm). With kv_heads > 0 also
//   k_cache[seq, pos % capacity, j] = bf16(rope(rmsnorm(k_j) * k_norm))   (k_norm nullptr: scale-free)
//   v_cache[seq, pos % capacity, j] = bf16(rmsnorm(v_j))                 (v_norm has no scale)
// Caches: bf16 [num_seqs, capacity, kv_heads, hd]. RoPE is rotate_half with angle pos * inv_freq[i]
// computed in double as in rope.cu (inv_freq 0: pair unrotated).
// Grid (tokens, heads + 2 * kv_heads); block: threads own rotation pairs (i, i + hd/2), at most
// QKV_MAX_PAIRS each (the host picks blockDim so that hd / 2 <= blockDim * QKV_MAX_PAIRS). The work of one block
// is qkv_head_prologue.

// Rotation pairs one thread holds in qkv_head_prologue (the caller's blockDim * QKV_MAX_PAIRS >= head_dim / 2).
#define QKV_MAX_PAIRS 4

// The fused attention prologue (the kernel below says exactly what) for one token t and one head slot (q heads
// first, then k heads, then v heads), by the whole block. qkv is read through L2 (load_l2_f32, common.cuh).
__device__ __forceinline__ void qkv_head_prologue(const float* __restrict__ qkv, int t, int slot, int row_stride,
                                                  int k_col, int v_col, float* __restrict__ q_out,
                                                  const bf16_t* __restrict__ q_norm,
                                                  const bf16_t* __restrict__ k_norm,
                                                  const float* __restrict__ inv_freq,
                                                  const int* __restrict__ seq_ids,
                                                  const int* __restrict__ positions, bf16_t* __restrict__ k_cache,
                                                  bf16_t* __restrict__ v_cache, int heads, int kv_heads, int hd,
                                                  int capacity, float eps) {
    const int half = hd / 2;
    // Which head this block normalises, where it reads, whether it rotates, where it writes.
    int col;
    const bf16_t* w;
    bool rotate;
    int kind;  // 0 q, 1 k, 2 v
    int j = 0;
    if (slot < heads) {
        kind = 0;
        col = slot * hd;
        w = q_norm;
        rotate = true;
    } else if (slot < heads + kv_heads) {
        kind = 1;
        j = slot - heads;
        col = k_col + j * hd;
        w = k_norm;
        rotate = true;
    } else {
        kind = 2;
        j = slot - heads - kv_heads;
        col = v_col + j * hd;
        w = nullptr;
        rotate = false;
    }
    const float* src = qkv + (size_t)t * row_stride + col;
    float a[QKV_MAX_PAIRS], b[QKV_MAX_PAIRS];
    float ss = 0.0f;
#pragma unroll
    for (int u = 0; u < QKV_MAX_PAIRS; ++u) {
        const int i = threadIdx.x + u * blockDim.x;
        a[u] = 0.0f;
        b[u] = 0.0f;
        if (i < half) {
            a[u] = load_l2_f32(src + i);
            b[u] = load_l2_f32(src + i + half);
            ss += a[u] * a[u] + b[u] * b[u];
        }
    }
    ss = block_sum(ss);
    const float inv = 1.0f / sqrtf(ss / (float)hd + eps);
    const double pos = (double)positions[t];
    size_t cache_off = 0;
    if (kind != 0) {
        const size_t cslot = (size_t)seq_ids[t] * capacity + (size_t)(positions[t] % capacity);
        cache_off = (cslot * kv_heads + j) * hd;
    }
#pragma unroll
    for (int u = 0; u < QKV_MAX_PAIRS; ++u) {
        const int i = threadIdx.x + u * blockDim.x;
        if (i < half) {
            float x0 = w != nullptr ? a[u] * inv * bf16_to_f32(w[i]) : a[u] * inv;
            float x1 = w != nullptr ? b[u] * inv * bf16_to_f32(w[i + half]) : b[u] * inv;
            if (rotate) {
                const float f = inv_freq[i];
                if (f != 0.0f) {
                    double sn, cs;
                    sincos(pos * (double)f, &sn, &cs);
                    const float cf = (float)cs, sf = (float)sn;
                    const float r0 = x0 * cf - x1 * sf;
                    const float r1 = x1 * cf + x0 * sf;
                    x0 = r0;
                    x1 = r1;
                }
            }
            if (kind == 0) {
                float* dst = q_out + ((size_t)t * heads + slot) * hd;
                dst[i] = x0;
                dst[i + half] = x1;
            } else {
                bf16_t* dst = (kind == 1 ? k_cache : v_cache) + cache_off;
                dst[i] = f32_to_bf16(x0);
                dst[i + half] = f32_to_bf16(x1);
            }
        }
    }
}

extern "C" __global__ void qk_norm_rope_kv(const float* __restrict__ qkv, int row_stride, int k_col, int v_col,
                                           float* __restrict__ q_out, const bf16_t* __restrict__ q_norm,
                                           const bf16_t* __restrict__ k_norm, const float* __restrict__ inv_freq,
                                           const int* __restrict__ seq_ids, const int* __restrict__ positions,
                                           bf16_t* __restrict__ k_cache, bf16_t* __restrict__ v_cache, int heads,
                                           int kv_heads, int hd, int capacity, float eps) {
    PDL_ENTRY();
    qkv_head_prologue(qkv, blockIdx.x, blockIdx.y, row_stride, k_col, v_col, q_out, q_norm, k_norm, inv_freq,
                      seq_ids, positions, k_cache, v_cache, heads, kv_heads, hd, capacity, eps);
}
