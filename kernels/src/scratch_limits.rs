//! Reserving every op's scratch up front ([`Gpu::reserve_scratch`]), so that no op allocates later (e.g.
//! inside a captured CUDA graph).

use crate::device::Gpu;
use crate::error::Result;
use crate::{matmul, ops};
use half::bf16;

/// Largest sizes the ops with internal scratch buffers will see; [`Gpu::reserve_scratch`] allocates
/// for them up front, so that no op allocates later (e.g. inside a captured CUDA graph).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ScratchLimits {
    /// Largest `m * k` passed to [`Gpu::linear`].
    pub linear_elements: usize,
    /// Largest `rows` and `cols` passed to [`Gpu::argmax_rows`].
    pub argmax_rows: usize,
    pub argmax_cols: usize,
    /// Largest `tokens`, `heads` and `head_dim` passed to [`Gpu::attention`].
    pub attention_tokens: usize,
    pub attention_heads: usize,
    pub attention_head_dim: usize,
}

impl Gpu {
    /// Allocates every internal scratch buffer for `limits` now (buffers only grow).
    pub fn reserve_scratch(&self, limits: ScratchLimits) -> Result<()> {
        self.scratch
            .reserve::<bf16>(matmul::cublas::LINEAR_BF16, limits.linear_elements)?;
        self.scratch.reserve::<u64>(
            ops::argmax::PARTIALS,
            limits.argmax_rows * limits.argmax_cols.div_ceil(ops::argmax::ARGMAX_CHUNK),
        )?;
        // Attention's split partials and merge counters, at the bound that holds for every token count (so no
        // later call, prefill included, grows them: a captured decode step keeps valid pointers).
        if limits.attention_tokens > 0 && limits.attention_heads > 0 {
            let (partials, counters) = self.attention_scratch_bound(limits.attention_head_dim);
            self.scratch
                .reserve::<f32>(ops::attention::PARTIALS, partials)?;
            self.scratch
                .reserve::<u32>(ops::attention::MERGE_COUNTERS, counters)?;
        }
        Ok(())
    }
}
