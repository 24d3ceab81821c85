// Logit soft-cap fused with the first pass of the greedy argmax: each block caps one chunk of a row,
// tanh(x / cap) * cap, optionally writes the capped values back (out may alias x, or be nullptr when
// only the ids are needed), and reduces the chunk to a packed (value key, ~index) word as argmax.cu's
// argmax_partial does; argmax_final then picks each row's id. The argmax is taken over the CAPPED
// values, so ties that the cap creates resolve to the lowest index exactly as softcap then argmax do.
// x: f32 [rows, cols]; partial: u64 [rows, chunks]; grid (chunks, rows).
extern "C" __global__ void softcap_argmax_partial(const float* x, float* out, unsigned long long* __restrict__ partial,
                                                  int cols, int chunk_len, float cap) {
    PDL_ENTRY();
    const int chunk = blockIdx.x, r = blockIdx.y;
    const size_t row = (size_t)r * cols;
    const int begin = chunk * chunk_len;
    const int end = min(cols, begin + chunk_len);
    const float inv = 1.0f / cap;
    unsigned long long best = 0ull;
    for (int i = begin + threadIdx.x; i < end; i += blockDim.x) {
        const float v = tanhf(x[row + i] * inv) * cap;
        if (out != nullptr) out[row + i] = v;
        const unsigned long long p = argmax_pack(v, (unsigned)i);
        best = p > best ? p : best;
    }
    best = block_max_u64(best);
    if (threadIdx.x == 0) partial[(size_t)r * gridDim.x + chunk] = best;
}
