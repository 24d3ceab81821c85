//! The VKAE kernel path: the generic GPU path's numerics (BF16 weights and projection operands, f32
//! accumulation, f32 residual stream, BF16 KV cache) with fewer, larger launches, and each greedy decode
//! step captured once as a CUDA graph per batch size and replayed per token.
//!
//! What differs from [`crate::generic`] (one op per launch, no graph):
//! - Weights concatenated at load: q|k|v (q|k on k = v layers, q alone on KV-shared layers) and gate|up,
//!   so a layer runs 5 projections (qkv, o, gate|up, down, and the PLE gate/projection) instead of 7-9.
//! - Fused kernels (vkae-kernels): residual add + post-norm + the next pre-norm + layer scalar in one
//!   launch, writing the next projection's BF16 operand directly (no cast launches); q/k/v norms + RoPE +
//!   KV-cache write in one launch; attention and GeGLU writing the next projection's BF16 operand (the GeGLU
//!   inside the GEMV's epilogue where the GEMV runs the gate|up or per-layer-input gate projection); the
//!   per-layer-input combine in one launch; soft-cap fused into the argmax.
//! - Programmatic dependent launch (Hopper): every kernel of the path may be scheduled while its
//!   predecessor drains and waits for it on the device ([`VkaeOptions::programmatic_launch`]).
//! - Projections with at most 32 rows go to the weight-streaming GEMV (<= 8 rows), the tensor-core skinny
//!   GEMM or cuBLAS, whichever measured fastest for that (rows, out, in) shape when the batch size was first
//!   seen (timed on the model's own weights with CUDA events; [`VkaeModel::projection_choices`] lists the
//!   outcome).
//! - Decode attention split by the cache's context ([`Ablations::context_splits`]); the weight-streaming
//!   kernels' k split chosen by the same measurement ([`Ablations::split_search`]).
//! - The decode step (embedding, every layer, LM head, soft-cap + argmax, then `decode_advance`, which
//!   records the ids and advances the positions on the device) is one CUDA graph per batch size. Token ids,
//!   positions and sequence ids live in fixed device buffers; replaying the graph needs no host work, no
//!   allocation and no synchronisation. Prefill runs the same fused ops eagerly.
//!
//! Files: [`options`] (settings and ablations), `weights` (the fused upload), `buffers` (activations, KV
//! cache, batch buckets), `tuner` (the projection autotuner), `forward` (the fused forward pass), `graph`
//! (`generate` and the checks through the captured decode step), `slots` (the session slot API), `bench`
//! (the VKAE-vs-generic benchmark, feature `ablations`).
//!
//! Not covered: MoE layers (the 26B-A4B's router picks experts on the host); [`VkaeModel::new`] refuses
//! such models with a message naming the generic path.

#[cfg(feature = "ablations")]
pub mod bench;
mod buffers;
mod forward;
mod graph;
pub mod options;
pub(crate) mod slots;
mod tuner;
mod weights;

use std::collections::HashMap;

use vkae_kernels::{Gpu, ScratchLimits};

use crate::config::TextConfig;
use crate::error::{EngineError, Result};
use crate::weights::Model;
use buffers::{Bucket, LayerKv, Work};
use tuner::Tuner;
use weights::FusedWeights;

pub use options::{Ablations, ProjectionMode, VkaeOptions};
pub use tuner::{ProjectionKernel, ProjectionTiming};

/// A model resident on the GPU, run by the VKAE path.
pub struct VkaeModel {
    gpu: Gpu,
    config: TextConfig,
    options: VkaeOptions,
    weights: FusedWeights,
    prefill: Option<Work>,
    buckets: HashMap<usize, Bucket>,
    /// Batch rows the kernels' internal scratch buffers were reserved for (growing them frees the old
    /// buffers, which invalidates every captured graph).
    scratch_rows: usize,
    /// The projection kernel per shape (see [`VkaeModel::projection_choices`]).
    tuner: Tuner,
}

impl VkaeModel {
    /// Opens device 0 (compiling the kernels) and uploads the weights in the path's fused layout.
    pub fn new(model: &Model, options: VkaeOptions) -> Result<Self> {
        let c = model.config.clone();
        if c.enable_moe_block {
            return Err(EngineError::Input(
                "the VKAE path does not cover MoE layers yet (the router runs on the host); use --device cuda"
                    .into(),
            ));
        }
        let gpu = Gpu::new()?;
        Self::apply_launch_options(&gpu, options)?;
        let mut m = VkaeModel {
            weights: FusedWeights::upload(&gpu, model)?,
            prefill: None,
            buckets: HashMap::new(),
            scratch_rows: 0,
            tuner: Tuner::default(),
            options,
            config: c,
            gpu,
        };
        m.ensure_scratch(32)?;
        m.gpu.synchronize()?;
        Ok(m)
    }

    pub fn config(&self) -> &TextConfig {
        &self.config
    }

    pub fn device_name(&self) -> &str {
        self.gpu.device_name()
    }

    pub fn options(&self) -> VkaeOptions {
        self.options
    }

    /// Switches options; captured graphs are dropped (they hold the old choices).
    pub fn set_options(&mut self, options: VkaeOptions) -> Result<()> {
        self.gpu.synchronize()?;
        for b in self.buckets.values_mut() {
            b.graph = None;
        }
        Self::apply_launch_options(&self.gpu, options)?;
        // The kernel choices were timed under the old launch settings and among the old candidates; time them
        // again when either changes.
        let timed_under = |o: VkaeOptions| {
            (
                o.programmatic_launch,
                o.ablations().prefetch_bytes(),
                o.ablations().split_search,
                o.cublaslt_candidates(),
            )
        };
        if timed_under(self.options) != timed_under(options) {
            self.tuner.clear();
        }
        self.options = options;
        Ok(())
    }

    /// Programmatic launch where the device has it (compute capability 9.0+); elsewhere the option is
    /// ignored, since launches without it are the same work in the same order.
    fn apply_launch_options(gpu: &Gpu, options: VkaeOptions) -> Result<()> {
        let programmatic = options.programmatic_launch && gpu.compute_capability().0 >= 9;
        gpu.set_programmatic_launch(programmatic)?;
        #[cfg(feature = "ablations")]
        gpu.set_gemv_prefetch_bytes(if programmatic {
            options.ablations().prefetch_bytes()
        } else {
            0
        });
        Ok(())
    }

    /// The measured projection choices so far, in the order measured (see [`ProjectionTiming`]).
    pub fn projection_choices(&self) -> Vec<ProjectionTiming> {
        self.tuner.timings.clone()
    }

    /// The same measurements, borrowed.
    pub fn projection_timings(&self) -> &[ProjectionTiming] {
        &self.tuner.timings
    }

    /// Reserves the kernels' internal scratch for `rows` rows of argmax (decode rows, or prefill rows whose
    /// logits are wanted) and for every attention call the model can make; growing it drops every captured
    /// graph (they point at the old buffers).
    pub(super) fn ensure_scratch(&mut self, rows: usize) -> Result<()> {
        if rows <= self.scratch_rows {
            return Ok(());
        }
        let c = &self.config;
        // Attention's scratch is reserved at its bound for any token count (Gpu::attention_scratch_bound), so no
        // later call grows it and a captured step keeps valid pointers.
        self.gpu.reserve_scratch(ScratchLimits {
            linear_elements: 0,
            argmax_rows: rows,
            argmax_cols: c.vocab_size,
            attention_tokens: rows,
            attention_heads: c.num_attention_heads.max(1),
            attention_head_dim: c.head_dim.max(c.global_head_dim),
        })?;
        for b in self.buckets.values_mut() {
            b.graph = None;
        }
        self.scratch_rows = rows;
        Ok(())
    }

    fn new_work(&self, rows: usize, sel: usize) -> Result<Work> {
        Work::new(&self.gpu, &self.config, &self.weights, rows, sel)
    }

    fn new_kv(&self, num_seqs: usize, capacity: usize) -> Result<Vec<Option<LayerKv>>> {
        buffers::new_kv(&self.gpu, &self.weights, num_seqs, capacity)
    }

    /// Times the projection kernels for `rows`-row steps (see `tuner`).
    fn measure_projections(&mut self, rows: usize) -> Result<()> {
        self.tuner
            .measure(&self.gpu, &self.config, &self.weights, self.options, rows)
    }
}
