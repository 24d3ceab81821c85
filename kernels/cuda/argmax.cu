// Greedy argmax over rows: out[r] = the first index of the largest value in x[r, :cols]
// (NaN counts as the largest, as torch.argmax does). Two passes: argmax_partial reduces chunks of
// each row to packed (order-preserving value key << 32 | ~index) words in partial[rows, chunks];
// argmax_final picks each row's largest word. The packing makes the lowest index win ties
// (argmax_pack and block_max_u64 live in common.cuh: softcap_argmax.cu packs the same way).
// grid (chunks, rows); each block reduces columns [chunk * chunk_len, min(cols, (chunk+1) * chunk_len)).
extern "C" __global__ void argmax_partial(const float* __restrict__ x, unsigned long long* __restrict__ partial,
                                          int cols, int chunk_len) {
    PDL_ENTRY();
    const int chunk = blockIdx.x, r = blockIdx.y;
    const float* xr = x + (size_t)r * cols;
    const int begin = chunk * chunk_len;
    const int end = min(cols, begin + chunk_len);
    unsigned long long best = 0ull;
    for (int i = begin + threadIdx.x; i < end; i += blockDim.x) {
        const unsigned long long p = argmax_pack(xr[i], (unsigned)i);
        best = p > best ? p : best;
    }
    best = block_max_u64(best);
    if (threadIdx.x == 0) partial[(size_t)r * gridDim.x + chunk] = best;
}

// One block per row.
extern "C" __global__ void argmax_final(const unsigned long long* __restrict__ partial, unsigned* __restrict__ out,
                                        int chunks) {
    PDL_ENTRY();
    const int r = blockIdx.x;
    unsigned long long best = 0ull;
    for (int i = threadIdx.x; i < chunks; i += blockDim.x) {
        const unsigned long long p = partial[(size_t)r * chunks + i];
        best = p > best ? p : best;
    }
    best = block_max_u64(best);
    if (threadIdx.x == 0) out[r] = ~(unsigned)(best & 0xffffffffull);
}
