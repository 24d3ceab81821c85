// GeGLU: out[r, c] = gelu_tanh(gate[r * gate_stride + c]) * up[r * up_stride + c], c < n.
// gelu_tanh: common.cuh.
// Row strides let gate and up be the two halves of one fused projection output, or a slice of a
// wider tensor (the per-layer-embedding input). out: f32 [rows, n]. Grid-stride over rows * n.
extern "C" __global__ void geglu_f32(const float* __restrict__ gate, const float* __restrict__ up,
                                     float* __restrict__ out, int rows, int n, long long gate_stride,
                                     long long up_stride) {
    PDL_ENTRY();
    const size_t total = (size_t)rows * n;
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < total; i += (size_t)gridDim.x * blockDim.x) {
        const size_t r = i / n, c = i % n;
        const float g = gate[r * gate_stride + c];
        const float u = up[r * up_stride + c];
        out[i] = gelu_tanh(g) * u;
    }
}

// The same GeGLU with a bf16 output (round to nearest even): the next projection's operand, written
// directly so no separate cast launch is needed. out: bf16 [rows, n].
extern "C" __global__ void geglu_f32_to_bf16(const float* __restrict__ gate, const float* __restrict__ up,
                                             bf16_t* __restrict__ out, int rows, int n, long long gate_stride,
                                             long long up_stride) {
    PDL_ENTRY();
    const size_t total = (size_t)rows * n;
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < total; i += (size_t)gridDim.x * blockDim.x) {
        const size_t r = i / n, c = i % n;
        const float g = gate[r * gate_stride + c];
        const float u = up[r * up_stride + c];
        out[i] = f32_to_bf16(gelu_tanh(g) * u);
    }
}
