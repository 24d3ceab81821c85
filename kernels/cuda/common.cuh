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

// Residual add + RMSNorm of one row of `cols` f32 values, by the whole block (Gemma 4's sandwich norms):
//   x_new = (x + rmsnorm(o) * w_post) * s        (o == nullptr: x_new = x * s)
//   x = x_new                                    (the residual stream, f32, in place)
//   out_norm = bf16(rmsnorm(x_new) * w_next)     (the next projection's input; w_next == nullptr: scale-free)
//   out_x    = bf16(x_new)                       (a projection of the plain residual, e.g. the PLE gate)
// Either output may be nullptr; s is Gemma's per-layer scalar at a layer's end, 1 elsewhere. rmsnorm(v) =
// v * rsqrt(mean(v^2) + eps), f32 accumulation, products ordered as in rms_norm.cu. Each thread holds its
// elements (i = threadIdx.x + e * blockDim.x) in registers from one round of loads to the end, so the row costs
// one memory round trip and two block reductions; the caller guarantees cols <= blockDim.x * RESID_PER_THREAD.
// x and o are read through L2 (load_l2_f32), as when a GEMV tail (since removed) passed rows other blocks of
// its kernel had just written; kept so that residual_norm.cu's code stays the code measured on the H200.
#define RESID_PER_THREAD 12
// 1 / sqrt(mean(v^2) + eps) of a row the block holds in registers (RESID_PER_THREAD values a thread, zeros past
// cols); every thread gets it.
__device__ __forceinline__ float row_inv_rms(const float (&v)[RESID_PER_THREAD], int cols, float eps) {
    float ss = 0.0f;
#pragma unroll
    for (int e = 0; e < RESID_PER_THREAD; ++e) ss += v[e] * v[e];
    ss = block_sum(ss);
    return 1.0f / sqrtf(ss / (float)cols + eps);
}

__device__ __forceinline__ void residual_rms_norm_row(float* __restrict__ xr, const float* __restrict__ orow,
                                                      const bf16_t* __restrict__ w_post, float s,
                                                      const bf16_t* __restrict__ w_next,
                                                      bf16_t* __restrict__ on, bf16_t* __restrict__ ob,
                                                      int cols, float eps) {
    float xv[RESID_PER_THREAD], ov[RESID_PER_THREAD];
#pragma unroll
    for (int e = 0; e < RESID_PER_THREAD; ++e) {
        const int i = threadIdx.x + e * blockDim.x;
        xv[e] = i < cols ? load_l2_f32(xr + i) : 0.0f;
        ov[e] = (i < cols && orow != nullptr) ? load_l2_f32(orow + i) : 0.0f;
    }
    if (orow != nullptr) {
        const float inv = row_inv_rms(ov, cols, eps);
#pragma unroll
        for (int e = 0; e < RESID_PER_THREAD; ++e) {
            const int i = threadIdx.x + e * blockDim.x;
            const float w = (i < cols && w_post != nullptr) ? bf16_to_f32(w_post[i]) : 1.0f;
            xv[e] = (xv[e] + ov[e] * inv * w) * s;
        }
    } else if (s != 1.0f) {
#pragma unroll
        for (int e = 0; e < RESID_PER_THREAD; ++e) xv[e] = xv[e] * s;
    }
#pragma unroll
    for (int e = 0; e < RESID_PER_THREAD; ++e) {
        const int i = threadIdx.x + e * blockDim.x;
        if (i < cols) {
            if (orow != nullptr || s != 1.0f) xr[i] = xv[e];
            if (ob != nullptr) ob[i] = f32_to_bf16(xv[e]);
        }
    }
    if (on != nullptr) {
        const float inv = row_inv_rms(xv, cols, eps);
#pragma unroll
        for (int e = 0; e < RESID_PER_THREAD; ++e) {
            const int i = threadIdx.x + e * blockDim.x;
            if (i < cols) on[i] = f32_to_bf16(w_next != nullptr ? xv[e] * inv * bf16_to_f32(w_next[i]) : xv[e] * inv);
        }
    }
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

// Rotation pairs one thread holds in qkv_head_prologue (the caller's blockDim * QKV_MAX_PAIRS >= head_dim / 2).
#define QKV_MAX_PAIRS 4

// The fused attention prologue (qk_norm_rope_kv.cu says exactly what) for one token t and one head slot (q heads
// first, then k heads, then v heads), by the whole block. qkv is read through L2 (load_l2_f32), as when the
// GEMV's q|k|v tail (since removed) shared it; kept so that qk_norm_rope_kv.cu's code stays the measured one.
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
