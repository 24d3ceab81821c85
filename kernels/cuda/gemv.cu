// Weight-streaming skinny GEMM for decode batches of 1..8 rows: y[m, n] = x[m, k] . w[n, k]^T with bf16
// x and w (w: a Hugging Face Linear weight, row-major [out, in]), f32 y, f32 accumulation.
// The matrix is read once, in 16-byte loads (8 bf16), coalesced along k. Each warp owns GEMV_R
// consecutive output rows and one of kparts slices of k; per lane GEMV_U x GEMV_R independent 16-byte
// weight loads are issued before the first is used, and the x chunk (M rows x 8 values) is loaded once
// and reused for the GEMV_R rows (so x, served from L1/L2, costs M / GEMV_R loads per weight load).
// A block is 8 warps: groups = 8 / kparts row groups, each split over kparts warps along k (split-K
// inside the block, merged in shared memory, so narrow outputs still spread over many warps).
// Requires k % 8 == 0 and 16-byte aligned x and w (the host checks). Grid ceil(n / (GEMV_R * groups)).
// Before waiting on the previous kernel (PDL, common.cuh) a block asks L2 for the first `prefetch_bytes` of
// its rows of w (bulk prefetch, sm_90): the weights are constant, so their stream can start while the
// previous kernel drains. 0 turns it off; the block is compiled only with VKAE_ABLATIONS defined (the crate's
// `ablations` feature), and the host passes 0 otherwise.
//
// Epilogues (`epilogue`), so that a GeGLU needs no launch of its own:
//   GEMV_PLAIN         y[m, row] = s (f32).
//   GEMV_GEGLU_WITH    out_b[m, row] = bf16(gelu_tanh(s) * z[m * z_stride + row]) (the per-layer-input gate).
//   GEMV_GEGLU_HALVES  w is a fused [gate; up] matrix of n = 2 * h rows; each warp takes rows j, j + 1 of the
//                      gate half and the same rows of the up half, and out_b[m, j] = bf16(gelu_tanh(gate_j) *
//                      up_j) for j < h (the MLP's gate|up projection). Grid ceil(h / (2 * groups)).
#define GEMV_PLAIN 0
#define GEMV_GEGLU_WITH 1
#define GEMV_GEGLU_HALVES 2
#define GEMV_R 4
#define GEMV_U 2
#define GEMV_WARPS 8

__device__ __forceinline__ void gemv_unpack8(const uint4 u, float* v) {
    v[0] = __uint_as_float(u.x << 16);
    v[1] = __uint_as_float(u.x & 0xffff0000u);
    v[2] = __uint_as_float(u.y << 16);
    v[3] = __uint_as_float(u.y & 0xffff0000u);
    v[4] = __uint_as_float(u.z << 16);
    v[5] = __uint_as_float(u.z & 0xffff0000u);
    v[6] = __uint_as_float(u.w << 16);
    v[7] = __uint_as_float(u.w & 0xffff0000u);
}

template <int M>
__device__ __forceinline__ void gemv_impl(const bf16_t* __restrict__ x, const bf16_t* __restrict__ w,
                                          float* __restrict__ y, int n, int k, int kparts, int prefetch_bytes,
                                          int epilogue, const float* __restrict__ z, long long z_stride,
                                          bf16_t* __restrict__ out_b) {
    __shared__ float red[GEMV_WARPS][GEMV_R * M];
    pdl_launch_dependents();
#ifdef VKAE_ABLATIONS
    if (prefetch_bytes > 0 && epilogue != GEMV_GEGLU_HALVES) {
        // This block's rows are contiguous: [first, first + rows) x k bf16.
        const int first = blockIdx.x * (GEMV_WARPS / kparts) * GEMV_R;
        const int rows = min((GEMV_WARPS / kparts) * GEMV_R, n - first);
        const long long bytes = min((long long)rows * k * 2, (long long)prefetch_bytes) & ~15ll;
        prefetch_l2((const char*)(w + (size_t)first * k), bytes);
    }
#endif
    const int lane = threadIdx.x & 31;
    const int warp = threadIdx.x >> 5;
    const int groups = GEMV_WARPS / kparts;
    const int g = warp % groups;
    const int part = warp / groups;
    const int row0 = (blockIdx.x * groups + g) * GEMV_R;
    const int kv = k >> 3;  // 16-byte chunks per row
    const int begin = (int)(((long long)kv * part) / kparts);
    const int end = (int)(((long long)kv * (part + 1)) / kparts);
    const int half = n >> 1;
    const int pair0 = (blockIdx.x * groups + g) * 2;  // GEMV_GEGLU_HALVES: this warp's first gate row
    const uint4* w4[GEMV_R];
#pragma unroll
    for (int r = 0; r < GEMV_R; ++r) {
        // Rows past the end re-read the last row and are not written.
        const int row = epilogue == GEMV_GEGLU_HALVES ? (r >> 1) * half + min(pair0 + (r & 1), half - 1)
                                                      : min(row0 + r, n - 1);
        w4[r] = (const uint4*)(w + (size_t)row * k);
    }
    const uint4* x4 = (const uint4*)x;

    uint4 wr[GEMV_U][GEMV_R];
    auto load_weights = [&](int i0) {
#pragma unroll
        for (int u = 0; u < GEMV_U; ++u) {
            const int i = i0 + u * 32;
#pragma unroll
            for (int r = 0; r < GEMV_R; ++r) wr[u][r] = i < end ? w4[r][i] : make_uint4(0u, 0u, 0u, 0u);
        }
    };
    // The first chunk of weights is loaded before the wait on the previous kernel (weights are constant), so
    // under programmatic launch it streams while that kernel drains. The wait is placed behind a branch on the
    // loaded values so that no compiler pass can sink the loads past it: `prefetch_bytes >> 31` is 0 for every
    // launch (the host passes a non-negative count), so the second branch never runs.
    load_weights(begin + lane);
    unsigned seen = 0u;
#pragma unroll
    for (int u = 0; u < GEMV_U; ++u)
#pragma unroll
        for (int r = 0; r < GEMV_R; ++r) seen ^= wr[u][r].x ^ wr[u][r].y ^ wr[u][r].z ^ wr[u][r].w;
    if ((seen & (unsigned)(prefetch_bytes >> 31)) == 0u) {
        pdl_wait();
    } else {
        red[0][0] = __uint_as_float(seen);
        pdl_wait();
    }

    float acc[GEMV_R][M];
#pragma unroll
    for (int r = 0; r < GEMV_R; ++r)
#pragma unroll
        for (int m = 0; m < M; ++m) acc[r][m] = 0.0f;

    for (int i0 = begin + lane;;) {
#pragma unroll
        for (int u = 0; u < GEMV_U; ++u) {
            const int i = i0 + u * 32;
            if (i < end) {
                float wf[GEMV_R][8];
#pragma unroll
                for (int r = 0; r < GEMV_R; ++r) gemv_unpack8(wr[u][r], wf[r]);
#pragma unroll
                for (int m = 0; m < M; ++m) {
                    float xf[8];
                    gemv_unpack8(x4[(size_t)m * kv + i], xf);
#pragma unroll
                    for (int r = 0; r < GEMV_R; ++r)
#pragma unroll
                        for (int e = 0; e < 8; ++e) acc[r][m] = fmaf(wf[r][e], xf[e], acc[r][m]);
                }
            }
        }
        i0 += 32 * GEMV_U;
        if (i0 >= end) break;
        load_weights(i0);
    }
#pragma unroll
    for (int r = 0; r < GEMV_R; ++r)
#pragma unroll
        for (int m = 0; m < M; ++m) {
            const float v = warp_sum(acc[r][m]);
            if (lane == 0) red[warp][r * M + m] = v;
        }
    __syncthreads();
    if (epilogue == GEMV_GEGLU_HALVES) {
        const int outputs = groups * 2 * M;
        for (int t = threadIdx.x; t < outputs; t += blockDim.x) {
            const int gg = t / (2 * M);
            const int rm = t % (2 * M);  // (gate row offset 0 or 1) * M + m
            float gate = 0.0f, up = 0.0f;
            for (int p = 0; p < kparts; ++p) {
                gate += red[p * groups + gg][rm];
                up += red[p * groups + gg][2 * M + rm];
            }
            const int j = (blockIdx.x * groups + gg) * 2 + rm / M;
            const int m = rm % M;
            if (j < half) out_b[(size_t)m * half + j] = f32_to_bf16(gelu_tanh(gate) * up);
        }
        return;
    }
    const int outputs = groups * GEMV_R * M;
    for (int t = threadIdx.x; t < outputs; t += blockDim.x) {
        const int gg = t / (GEMV_R * M);
        const int rm = t % (GEMV_R * M);
        float s = 0.0f;
        for (int p = 0; p < kparts; ++p) s += red[p * groups + gg][rm];
        const int row = (blockIdx.x * groups + gg) * GEMV_R + rm / M;
        const int m = rm % M;
        if (row < n) {
            if (epilogue == GEMV_GEGLU_WITH)
                out_b[(size_t)m * n + row] = f32_to_bf16(gelu_tanh(s) * z[(size_t)m * z_stride + row]);
            else
                y[(size_t)m * n + row] = s;
        }
    }
}

#define GEMV_ENTRY(M)                                                                                   \
    extern "C" __global__ void __launch_bounds__(256) gemv_bf16_m##M(const bf16_t* x, const bf16_t* w,  \
                                                                     float* y, int n, int k, int kparts, \
                                                                     int prefetch_bytes, int epilogue,   \
                                                                     const float* z, long long z_stride, \
                                                                     bf16_t* out_b) {                    \
        gemv_impl<M>(x, w, y, n, k, kparts, prefetch_bytes, epilogue, z, z_stride, out_b);              \
    }

GEMV_ENTRY(1)
GEMV_ENTRY(2)
GEMV_ENTRY(3)
GEMV_ENTRY(4)
GEMV_ENTRY(5)
GEMV_ENTRY(6)
GEMV_ENTRY(7)
GEMV_ENTRY(8)
