// The end of a captured greedy decode step, so that a CUDA graph can be replayed step after step with
// no host work: the ids the argmax just wrote become this step's output in history[step, :], and every
// sequence's position advances by one for the next replay. step lives on the device (one i32).
// ids: u32 [batch]; history: u32 [capacity_steps, batch] (a step past capacity is not recorded);
// positions: i32 [batch]. One block of at least batch threads.
extern "C" __global__ void decode_advance(const unsigned* __restrict__ ids, unsigned* __restrict__ history,
                                          int capacity_steps, int* __restrict__ step, int* __restrict__ positions,
                                          int batch) {
    PDL_ENTRY();
    const int s = *step;
    for (int b = threadIdx.x; b < batch; b += blockDim.x) {
        if (s < capacity_steps) history[(size_t)s * batch + b] = ids[b];
        positions[b] += 1;
    }
    __syncthreads();
    if (threadIdx.x == 0) *step = s + 1;
}
