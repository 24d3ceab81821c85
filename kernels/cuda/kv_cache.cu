// KV-cache write: stores new keys/values (f32) into bf16 caches at their sequence and position.
// k_new, v_new: f32 [tokens, kv_heads, head_dim]; seq_ids, positions: i32 [tokens];
// k_cache, v_cache: bf16 [num_seqs, capacity, kv_heads, head_dim]; position p lives in slot
// p % capacity (a ring when capacity is smaller than the context, e.g. a sliding-window layer).
// One block per token.
extern "C" __global__ void kv_append_bf16(const float* __restrict__ k_new, const float* __restrict__ v_new,
                                          const int* __restrict__ seq_ids, const int* __restrict__ positions,
                                          bf16_t* __restrict__ k_cache, bf16_t* __restrict__ v_cache,
                                          int kv_heads, int head_dim, int capacity) {
    PDL_ENTRY();
    const int t = blockIdx.x;
    const int width = kv_heads * head_dim;
    const size_t slot = (size_t)seq_ids[t] * capacity + (size_t)(positions[t] % capacity);
    const float* kn = k_new + (size_t)t * width;
    const float* vn = v_new + (size_t)t * width;
    bf16_t* kc = k_cache + slot * width;
    bf16_t* vc = v_cache + slot * width;
    for (int i = threadIdx.x; i < width; i += blockDim.x) {
        kc[i] = f32_to_bf16(kn[i]);
        vc[i] = f32_to_bf16(vn[i]);
    }
}
