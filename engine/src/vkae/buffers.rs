//! The VKAE path's device buffers: activations for a number of rows, the KV cache, and one batch size's
//! decode state for `generate`.

use vkae_kernels::cudarc::driver::CudaGraph;
use vkae_kernels::half::bf16;
use vkae_kernels::{CudaSlice, Gpu};

use super::weights::{FusedWeights, W};
use crate::config::TextConfig;
pub(super) use crate::device::LayerKv;
use crate::error::Result;

/// Activation buffers for `rows` tokens.
pub(super) struct Work {
    pub(super) rows: usize,
    pub(super) x: CudaSlice<f32>,
    /// The next projection's BF16 operand (a normed residual).
    pub(super) a: W,
    /// The plain residual in BF16 (the PLE gate's and the model projection's operand).
    pub(super) xb: W,
    pub(super) qkv: CudaSlice<f32>,
    pub(super) q: CudaSlice<f32>,
    pub(super) att_b: W,
    pub(super) o: CudaSlice<f32>,
    pub(super) gu: CudaSlice<f32>,
    pub(super) act: W,
    pub(super) ple_proj: CudaSlice<f32>,
    pub(super) ple: CudaSlice<f32>,
    pub(super) pg: CudaSlice<f32>,
    pub(super) pact: W,
    pub(super) hsel: W,
    pub(super) logits: CudaSlice<f32>,
    pub(super) ids: CudaSlice<u32>,
    pub(super) pos: CudaSlice<i32>,
    pub(super) seq: CudaSlice<i32>,
}

/// One batch size's decode state: its buffers, KV cache, token history and captured step.
pub(super) struct Bucket {
    /// Dropped before the buffers it points into.
    pub(super) graph: Option<CudaGraph>,
    pub(super) work: Work,
    pub(super) kv: Vec<Option<LayerKv>>,
    pub(super) capacity: usize,
    /// `[capacity, batch]` generated ids, row `i` = the `i`-th generated token of every sequence.
    pub(super) history: CudaSlice<u32>,
    /// The next history row (device-side step counter).
    pub(super) step: CudaSlice<i32>,
}

impl Work {
    /// Buffers for `rows` tokens, of which `sel` get logits.
    pub(super) fn new(
        g: &Gpu,
        c: &TextConfig,
        weights: &FusedWeights,
        rows: usize,
        sel: usize,
    ) -> Result<Work> {
        let h = c.hidden_size;
        let hd = c.head_dim.max(c.global_head_dim);
        let qw = c.num_attention_heads * hd;
        let qkvw = weights
            .layers
            .iter()
            .map(|l| l.qkv_layout.row_stride)
            .max()
            .unwrap_or(1);
        let inter = weights
            .layers
            .iter()
            .map(|l| l.spec.intermediate_size)
            .max()
            .unwrap_or(1);
        let lp = (c.num_hidden_layers * c.hidden_size_per_layer_input).max(1);
        let pd = c.hidden_size_per_layer_input.max(1);
        let f = |n: usize| g.alloc::<f32>(n.max(1));
        let b = |n: usize| g.alloc::<bf16>(n.max(1));
        Ok(Work {
            rows,
            x: f(rows * h)?,
            a: b(rows * h)?,
            xb: b(rows * h)?,
            qkv: f(rows * qkvw)?,
            q: f(rows * qw)?,
            att_b: b(rows * qw)?,
            o: f(rows * h)?,
            gu: f(rows * 2 * inter)?,
            act: b(rows * inter)?,
            ple_proj: f(rows * lp)?,
            ple: f(rows * lp)?,
            pg: f(rows * pd)?,
            pact: b(rows * pd)?,
            hsel: b(sel * h)?,
            logits: f(sel * c.vocab_size)?,
            ids: g.alloc::<u32>(rows.max(1))?,
            pos: g.alloc::<i32>(rows.max(1))?,
            seq: g.alloc::<i32>(rows.max(1))?,
        })
    }
}

/// A KV cache of `num_seqs x capacity` positions for every cache-owning layer.
pub(super) fn new_kv(
    gpu: &Gpu,
    weights: &FusedWeights,
    num_seqs: usize,
    capacity: usize,
) -> Result<Vec<Option<LayerKv>>> {
    crate::device::new_kv(
        gpu,
        weights.layers.iter().map(|l| &l.spec),
        num_seqs,
        capacity,
    )
}
