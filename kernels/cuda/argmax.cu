// Greedy argmax over rows: out[r] = the first index of the largest value in x[r, :cols]
// (NaN counts as the largest, as torch.argmax does). Two passes: argmax_partial reduces chunks of
// each row to packed (order-preserving value key << 32 | ~index) words in partial[rows, chunks];
// argmax_final picks each row's largest word. The packing makes the lowest index win ties.
__device__ __forceinline__ unsigned long long argmax_pack(float v, unsigned idx) {
    unsigned u = __float_as_uint(v);
    if ((u & 0x7fffffffu) > 0x7f800000u) u = 0xffffffffu;           // NaN: above everything
    else u = (u & 0x80000000u) ? ~u : (u | 0x80000000u);           // order-preserving key
    return ((unsigned long long)u << 32) | (unsigned long long)(~idx);
}

__device__ __forceinline__ unsigned long long block_max_u64(unsigned long long v) {
    __shared__ unsigned long long partial[32];
    __shared__ unsigned long long total;
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    for (int o = 16; o > 0; o >>= 1) {
        const unsigned long long other = __shfl_xor_sync(0xffffffffu, v, o);
        v = other > v ? other : v;
    }
    if (lane == 0) partial[warp] = v;
    __syncthreads();
    if (warp == 0) {
        unsigned long long w = lane < (int)(blockDim.x >> 5) ? partial[lane] : 0ull;
        for (int o = 16; o > 0; o >>= 1) {
            const unsigned long long other = __shfl_xor_sync(0xffffffffu, w, o);
            w = other > w ? other : w;
        }
        if (lane == 0) total = w;
    }
    __syncthreads();
    return total;
}

// grid (chunks, rows); each block reduces columns [chunk * chunk_len, min(cols, (chunk+1) * chunk_len)).
extern "C" __global__ void argmax_partial(const float* __restrict__ x, unsigned long long* __restrict__ partial,
                                          int cols, int chunk_len) {
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
    const int r = blockIdx.x;
    unsigned long long best = 0ull;
    for (int i = threadIdx.x; i < chunks; i += blockDim.x) {
        const unsigned long long p = partial[(size_t)r * chunks + i];
        best = p > best ? p : best;
    }
    best = block_max_u64(best);
    if (threadIdx.x == 0) out[r] = ~(unsigned)(best & 0xffffffffull);
}
