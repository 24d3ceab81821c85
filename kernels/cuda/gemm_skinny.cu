// Tensor-core weight-streaming skinny GEMM for decode batches of 1..32 rows: y[m, n] = x[m, k] . w[n, k]^T,
// bf16 x and w (w: a Hugging Face Linear weight, row-major [out, in]), f32 y, f32 accumulation.
// mma.sync m16n8k16 (bf16 in, f32 accumulate) with A = 16 rows of w (output features) x 16 k and
// B = 16 k x 8 batch rows of x (".col" B is x as stored: each batch row's k contiguous), C = 16 outputs x
// 8 batch rows. The batch is covered by NT n-tiles of 8 rows (rows >= m re-read row 0, never out of bounds;
// their columns of C are independent and never written); each warp owns RT * 16 consecutive output rows
// and one of kparts slices of k.
//
// k map. The order of the reduction over k is free, so every lane loads whole 16-byte pieces: in a 32-wide
// k chunk, lane (g = lane >> 2, t = lane & 3) loads w[row g][8t .. 8t+8], w[row g+8][8t .. 8t+8] and
// x[batch row g][8t .. 8t+8] (one uint4 each; 32-bit word j holds physical offsets 8t+2j, 8t+2j+1, low
// half first). mma h (0 or 1) takes words 2h and 2h+1 of every piece:
//   A regs {a0, a1, a2, a3} = {w_g.word[2h], w_g8.word[2h], w_g.word[2h+1], w_g8.word[2h+1]}
//   B regs {b0, b1}         = {x_g.word[2h], x_g.word[2h+1]}
// With the PTX fragment layout (a0: row g, k 2t,2t+1; a1: row g+8, same k; a2: row g, k 2t+8,2t+9; a3: row
// g+8, same k; b0: k 2t,2t+1, col g; b1: k 2t+8,2t+9, col g) that is, for both A and B, the map
//   logical k l (0..16) of mma h  ->  physical offset 8 * ((l & 7) >> 1) + 4h + 2 * (l >> 3) + (l & 1)
// a bijection onto 0..32, the same for A and B, so the two mmas sum exactly the chunk's 32 products
// (kernels/src/skinny.rs `k_map` mirrors it; its tests emulate the fragments and prove the sum).
// C: c0, c1 = output row g, batch rows 2t, 2t+1 of the tile; c2, c3 = output row g+8.
//
// Streaming: each warp keeps U chunks of 32 k in flight in a register ring (U x RT x 2 weight loads of 16
// bytes per lane, 8 in every entry, with the NT x pieces of those chunks), refilling a slot right after its
// mmas. A block is 8 warps: groups = 8 / kparts row groups, each split over kparts warps along k, merged
// in shared memory (narrow outputs still spread over many SMs). Rows past n clamp their loads to row n - 1 and are not written.
// Requires k % 32 == 0 and 16-byte aligned x and w (the host checks). Grid ceil(n / (RT * 16 * groups)).
// PDL as gemv.cu: before waiting on the previous kernel a block asks L2 for the first `prefetch_bytes` of
// its rows of w (bulk prefetch, sm_90; 0 turns it off; compiled only with VKAE_ABLATIONS, as in gemv.cu); x is
// read only after the wait.
#define SK_WARPS 8

__device__ __forceinline__ void sk_mma(float* c, unsigned a0, unsigned a1, unsigned a2, unsigned a3, unsigned b0,
                                       unsigned b1) {
    asm("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
        "{%0, %1, %2, %3};"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
}

// 16-byte read-only loads with an explicit L1 policy: weights are read once (no L1 allocation), x is re-read
// by every warp (cached). Volatile: asm without side effects could be hoisted above pdl_wait(), and x must
// not be read before it.
__device__ __forceinline__ uint4 sk_ld_stream(const uint4* p) {
    uint4 v;
    asm volatile("ld.global.nc.L1::no_allocate.v4.u32 {%0, %1, %2, %3}, [%4];"
                 : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w)
                 : "l"(p));
    return v;
}
__device__ __forceinline__ uint4 sk_ld_cached(const uint4* p) {
    uint4 v;
    asm volatile("ld.global.nc.v4.u32 {%0, %1, %2, %3}, [%4];" : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w) : "l"(p));
    return v;
}

// One 32-wide k chunk: for each row tile and batch tile, mma h = 0 on words 0, 1 and h = 1 on words 2, 3.
template <int NT, int RT>
__device__ __forceinline__ void sk_chunk(float (&acc)[RT][NT][4], const uint4 (&wr)[RT][2], const uint4 (&xr)[NT]) {
#pragma unroll
    for (int r = 0; r < RT; ++r)
#pragma unroll
        for (int j = 0; j < NT; ++j) {
            const uint4 a = wr[r][0], a8 = wr[r][1], b = xr[j];
            sk_mma(acc[r][j], a.x, a8.x, a.y, a8.y, b.x, b.y);
            sk_mma(acc[r][j], a.z, a8.z, a.w, a8.w, b.z, b.w);
        }
}

// NT n-tiles of 8 batch rows; RT row tiles of 16 outputs per warp; U chunks of 32 k in flight.
template <int NT, int RT, int U>
__device__ __forceinline__ void skinny_impl(const bf16_t* __restrict__ x, const bf16_t* __restrict__ w,
                                            float* __restrict__ y, int m, int n, int k, int kparts,
                                            int prefetch_bytes) {
    constexpr int RW = RT * 16;  // output rows per warp
    constexpr int BC = NT * 8;   // batch columns per warp
    constexpr int LD = BC + 1;   // shared row stride, padded against bank conflicts
    __shared__ float red[SK_WARPS][RW * LD];
    pdl_launch_dependents();
    const int groups = SK_WARPS / kparts;
#ifdef VKAE_ABLATIONS
    if (prefetch_bytes > 0) {
        // This block's rows are contiguous: [first, first + rows) x k bf16.
        const int first = blockIdx.x * groups * RW;
        const int rows = min(groups * RW, n - first);
        const long long bytes = min((long long)rows * k * 2, (long long)prefetch_bytes) & ~15ll;
        prefetch_l2((const char*)(w + (size_t)first * k), bytes);
    }
#endif
    const int lane = threadIdx.x & 31;
    const int warp = threadIdx.x >> 5;
    const int g = lane >> 2;
    const int t = lane & 3;
    const int grp = warp % groups;
    const int part = warp / groups;
    const int row0 = (blockIdx.x * groups + grp) * RW;
    const int chunks = k >> 5;
    const int begin = (int)(((long long)chunks * part) / kparts);
    const int end = (int)(((long long)chunks * (part + 1)) / kparts);

    // Row pointers (in uint4 pieces, already at this lane's piece 8t of a chunk).
    const uint4* wp[RT][2];
#pragma unroll
    for (int r = 0; r < RT; ++r)
#pragma unroll
        for (int h = 0; h < 2; ++h) {
            const int row = min(row0 + r * 16 + h * 8 + g, n - 1);  // rows past n re-read row n - 1
            wp[r][h] = (const uint4*)(w + (size_t)row * k) + t;
        }
    // A ring of U chunks in flight: slot u holds chunk c0 + u; after its mmas it is refilled with chunk
    // c0 + u + U. The refills are loop-carried, so the compiler cannot sink them to their use (a plain
    // "load U chunks, then compute" body gets its loads interleaved with the mmas, ~3 left in flight).
    // The weights of the first U chunks are loaded before the PDL wait (no kernel writes them), so under
    // programmatic launch they stream while the previous kernel drains. The wait sits behind a branch on the
    // loaded values so that ptxas cannot schedule the loads after it: `prefetch_bytes >> 31` is 0 for every
    // launch (the host passes a non-negative count), so the second branch never runs.
    uint4 wr[U][RT][2];
    uint4 xr[U][NT];
    unsigned seen = 0u;
#pragma unroll
    for (int u = 0; u < U; ++u) {
        if (begin + u < end) {
#pragma unroll
            for (int r = 0; r < RT; ++r)
#pragma unroll
                for (int h = 0; h < 2; ++h) {
                    wr[u][r][h] = sk_ld_stream(wp[r][h] + (begin + u) * 4);
                    seen ^= wr[u][r][h].x ^ wr[u][r][h].y ^ wr[u][r][h].z ^ wr[u][r][h].w;
                }
        }
    }
    if ((seen & (unsigned)(prefetch_bytes >> 31)) == 0u) {
        pdl_wait();
    } else {
        red[0][0] = __uint_as_float(seen);
        pdl_wait();
    }
    // Batch rows >= m re-read row 0 (same addresses as the lanes of row 0: no extra traffic); their
    // columns of C depend on nothing else and are never written.
    const uint4* xp[NT];
#pragma unroll
    for (int j = 0; j < NT; ++j) {
        const int b = j * 8 + g;
        xp[j] = (const uint4*)(x + (size_t)(b < m ? b : 0) * k) + t;
    }
#pragma unroll
    for (int u = 0; u < U; ++u) {
        if (begin + u < end) {
#pragma unroll
            for (int j = 0; j < NT; ++j) xr[u][j] = sk_ld_cached(xp[j] + (begin + u) * 4);
        }
    }

    float acc[RT][NT][4];
#pragma unroll
    for (int r = 0; r < RT; ++r)
#pragma unroll
        for (int j = 0; j < NT; ++j)
#pragma unroll
            for (int c = 0; c < 4; ++c) acc[r][j][c] = 0.0f;

    for (int c0 = begin; c0 < end; c0 += U) {
#pragma unroll
        for (int u = 0; u < U; ++u) {
            if (c0 + u < end) {  // warp-uniform
                sk_chunk<NT, RT>(acc, wr[u], xr[u]);
                const int next = c0 + u + U;
                if (next < end) {
                    const int i = next * 4;  // piece index of the chunk's start (4 pieces per chunk)
#pragma unroll
                    for (int r = 0; r < RT; ++r)
#pragma unroll
                        for (int h = 0; h < 2; ++h) wr[u][r][h] = sk_ld_stream(wp[r][h] + i);
#pragma unroll
                    for (int j = 0; j < NT; ++j) xr[u][j] = sk_ld_cached(xp[j] + i);
                }
            }
        }
    }

    // Fragments to shared memory: red[warp][out_row * LD + batch col].
#pragma unroll
    for (int r = 0; r < RT; ++r)
#pragma unroll
        for (int j = 0; j < NT; ++j)
#pragma unroll
            for (int c = 0; c < 4; ++c) {
                const int orow = r * 16 + g + 8 * (c >> 1);
                const int bcol = j * 8 + 2 * t + (c & 1);
                red[warp][orow * LD + bcol] = acc[r][j][c];
            }
    __syncthreads();
    // Sum the k parts; consecutive threads take consecutive output rows of one batch row (coalesced y).
    const int mb = min(m, BC);  // batch rows this launch writes
    const int outputs = groups * mb * RW;
    for (int o = threadIdx.x; o < outputs; o += blockDim.x) {
        const int gg = o / (mb * RW);
        const int rest = o % (mb * RW);
        const int b = rest / RW;
        const int orow = rest % RW;
        const int row = (blockIdx.x * groups + gg) * RW + orow;
        if (row < n) {
            float s = 0.0f;
            for (int p = 0; p < kparts; ++p) s += red[p * groups + gg][orow * LD + b];
            y[(size_t)b * n + row] = s;
        }
    }
}

// Entries: batch tiles 1, 2, 4 (m <= 8, 16, 32). The 4-tile entry gives each warp 32 output rows so that a
// piece of x feeds two row tiles (x loads per weight load halved); 8 weight loads in flight per lane in each.
extern "C" __global__ __launch_bounds__(256) void skinny_bf16_t1(const bf16_t* x, const bf16_t* w, float* y, int m,
                                                                int n, int k, int kparts, int prefetch_bytes) {
    skinny_impl<1, 1, 4>(x, w, y, m, n, k, kparts, prefetch_bytes);
}
extern "C" __global__ __launch_bounds__(256) void skinny_bf16_t2(const bf16_t* x, const bf16_t* w, float* y, int m,
                                                                int n, int k, int kparts, int prefetch_bytes) {
    skinny_impl<2, 1, 4>(x, w, y, m, n, k, kparts, prefetch_bytes);
}
extern "C" __global__ __launch_bounds__(256) void skinny_bf16_t4(const bf16_t* x, const bf16_t* w, float* y, int m,
                                                                int n, int k, int kparts, int prefetch_bytes) {
    skinny_impl<4, 2, 2>(x, w, y, m, n, k, kparts, prefetch_bytes);
}
