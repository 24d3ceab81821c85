// Shared helpers, prepended to every module before NVRTC compiles it (no system headers needed).
// bf16 values travel as raw 16-bit patterns; conversions are explicit and round to nearest even.
typedef unsigned short bf16_t;

__device__ __forceinline__ float bf16_to_f32(bf16_t h) {
    return __uint_as_float(((unsigned)h) << 16);
}

__device__ __forceinline__ bf16_t f32_to_bf16(float f) {
    unsigned u = __float_as_uint(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) {
        return (bf16_t)((u >> 16) | 0x40u);  // keep NaN a (quiet) NaN
    }
    u += 0x7fffu + ((u >> 16) & 1u);
    return (bf16_t)(u >> 16);
}

__device__ __forceinline__ float warp_sum(float v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

__device__ __forceinline__ float warp_max(float v) {
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

// Sum over the whole block (blockDim.x a multiple of 32, at most 1024). Every thread gets the total.
__device__ __forceinline__ float block_sum(float v) {
    __shared__ float partial[32];
    __shared__ float total;
    const int lane = threadIdx.x & 31;
    const int warp = threadIdx.x >> 5;
    v = warp_sum(v);
    if (lane == 0) partial[warp] = v;
    __syncthreads();
    if (warp == 0) {
        const int nwarps = blockDim.x >> 5;
        float w = lane < nwarps ? partial[lane] : 0.0f;
        w = warp_sum(w);
        if (lane == 0) total = w;
    }
    __syncthreads();
    return total;
}

__device__ __forceinline__ bool aligned16(const void* p) {
    return (((unsigned long long)p) & 15ull) == 0ull;
}

#define NEG_INF __int_as_float(0xff800000)

// A global f32 load served from L2, never from this SM's L1: for data that other blocks of the same kernel
// wrote (L1 is not coherent across SMs within a kernel).
__device__ __forceinline__ float load_l2_f32(const float* p) {
    float v;
    asm volatile("ld.global.cg.f32 %0, [%1];" : "=f"(v) : "l"(p));
    return v;
}

// True, in every thread of the block, for the block that arrives last among `expected` blocks counting on
// *counter; that block sets the counter back to zero (ready for the next launch or graph replay). Publication
// follows a grid barrier: the block's stores are ordered before thread 0 by the barrier, thread 0's fence
// (cumulative) publishes them GPU-wide before it counts, and the last block fences again before it reads what
// the others wrote (through L2: load_l2_f32). Every thread of the block must call it.
__device__ __forceinline__ bool last_block_to_arrive(unsigned* counter, unsigned expected) {
    __shared__ unsigned last;
    __syncthreads();
    if (threadIdx.x == 0) {
        __threadfence();
        last = atomicAdd(counter, 1u) == expected - 1u ? 1u : 0u;
        if (last != 0u) {
            __threadfence();
            *counter = 0u;
        }
    }
    __syncthreads();
    return last != 0u;
}

// gelu_tanh(x) = 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))) (PyTorch's "gelu_pytorch_tanh"). Every GeGLU
// (geglu.cu, the GEMV's fused epilogues) calls this one function, so they round identically.
__device__ __forceinline__ float gelu_tanh(float g) {
    const float inner = 0.7978845608028654f * (g + 0.044715f * g * g * g);
    return 0.5f * g * (1.0f + tanhf(inner));
}

// Greedy argmax words: (order-preserving value key << 32 | ~index), so the largest word is the largest
// value at the lowest index; NaN counts as above everything (as torch.argmax).
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

#ifdef VKAE_ABLATIONS
// Asks L2 for `bytes` (a multiple of 16) of the weights at `base`, in 4 KiB pieces spread over the block's
// threads (bulk prefetch, sm_90): the weight-streaming kernels' prefetch before their PDL wait.
__device__ __forceinline__ void prefetch_l2(const char* base, long long bytes) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    const long long piece = 4096;
    for (long long off = (long long)threadIdx.x * piece; off < bytes; off += (long long)blockDim.x * piece) {
        const unsigned len = (unsigned)min(piece, bytes - off);
        asm volatile("cp.async.bulk.prefetch.L2.global [%0], %1;" ::"l"(base + off), "r"(len) : "memory");
    }
#endif
}
#endif

// Programmatic dependent launch (sm_90 and later; see Gpu::set_programmatic_launch). Every kernel starts with
// PDL_ENTRY(): it lets the next kernel on the stream be scheduled now, then waits until the previous kernel
// has finished and its writes are visible. Work placed before the wait may only read data no earlier kernel
// of the step writes (weights). Every kernel must execute the wait, so that the chain of completions stays
// transitive. Launched without the attribute (or on older devices), both are no-ops.
__device__ __forceinline__ void pdl_launch_dependents() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
#endif
}
__device__ __forceinline__ void pdl_wait() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    asm volatile("griddepcontrol.wait;" ::: "memory");
#endif
}
#define PDL_ENTRY()              \
    do {                         \
        pdl_launch_dependents(); \
        pdl_wait();              \
    } while (0)
