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
// is common.cuh's qkv_head_prologue.

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
