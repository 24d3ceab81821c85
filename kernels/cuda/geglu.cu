// GeGLU: out[r, c] = gelu_tanh(gate[r * gate_stride + c]) * up[r * up_stride + c], c < n.
// gelu_tanh: common.cuh.
// Row strides let gate and up be the two halves of one fused projection output, or a slice of a
// wider tensor (the per-layer-embedding input). Grid-stride over rows * n. Two outputs: f32 [rows, n]
// (geglu_f32), or bf16 [rows, n] rounded to nearest even (geglu_f32_to_bf16): the next projection's
// operand, written directly so no separate cast launch is needed.
__device__ __forceinline__ void store_geglu(float* out, size_t i, float v) { out[i] = v; }
__device__ __forceinline__ void store_geglu(bf16_t* out, size_t i, float v) { out[i] = f32_to_bf16(v); }

template <typename Out>
__device__ __forceinline__ void geglu_impl(const float* __restrict__ gate, const float* __restrict__ up,
                                           Out* __restrict__ out, int rows, int n, long long gate_stride,
                                           long long up_stride) {
    const size_t total = (size_t)rows * n;
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < total; i += (size_t)gridDim.x * blockDim.x) {
        const size_t r = i / n, c = i % n;
        const float g = gate[r * gate_stride + c];
        const float u = up[r * up_stride + c];
        store_geglu(out, i, gelu_tanh(g) * u);
    }
}

extern "C" __global__ void geglu_f32(const float* __restrict__ gate, const float* __restrict__ up,
                                     float* __restrict__ out, int rows, int n, long long gate_stride,
                                     long long up_stride) {
    PDL_ENTRY();
    geglu_impl(gate, up, out, rows, n, gate_stride, up_stride);
}

extern "C" __global__ void geglu_f32_to_bf16(const float* __restrict__ gate, const float* __restrict__ up,
                                             bf16_t* __restrict__ out, int rows, int n, long long gate_stride,
                                             long long up_stride) {
    PDL_ENTRY();
    geglu_impl(gate, up, out, rows, n, gate_stride, up_stride);
}
