// Embedding gather with scale: out[r, :] = f32(table[ids[r], :]) * scale.
// table: bf16 [vocab, hidden]; ids: u32 [rows]; out: f32 [rows, hidden]. One block per row.
// An id >= vocab writes NaN to its row, so a bad token id can never pass a check silently.
extern "C" __global__ void embed_gather_bf16(const bf16_t* __restrict__ table,
                                             const unsigned* __restrict__ ids,
                                             float* __restrict__ out,
                                             int hidden, unsigned vocab, float scale) {
    PDL_ENTRY();
    const int r = blockIdx.x;
    const unsigned id = ids[r];
    float* o = out + (size_t)r * hidden;
    if (id >= vocab) {
        for (int i = threadIdx.x; i < hidden; i += blockDim.x) o[i] = __int_as_float(0x7fc00000);
        return;
    }
    const bf16_t* t = table + (size_t)id * hidden;
    if ((hidden & 7) == 0 && aligned16(t) && aligned16(o)) {
        // 16-byte loads: 8 bf16 per thread per step.
        const uint4* t4 = (const uint4*)t;
        float4* o4 = (float4*)o;
        for (int i = threadIdx.x; i < hidden / 8; i += blockDim.x) {
            const uint4 p = t4[i];
            const unsigned w[4] = {p.x, p.y, p.z, p.w};
            float f[8];
#pragma unroll
            for (int j = 0; j < 4; ++j) {
                f[2 * j] = __uint_as_float(w[j] << 16) * scale;
                f[2 * j + 1] = __uint_as_float(w[j] & 0xffff0000u) * scale;
            }
            o4[2 * i] = make_float4(f[0], f[1], f[2], f[3]);
            o4[2 * i + 1] = make_float4(f[4], f[5], f[6], f[7]);
        }
    } else {
        for (int i = threadIdx.x; i < hidden; i += blockDim.x) o[i] = bf16_to_f32(t[i]) * scale;
    }
}
