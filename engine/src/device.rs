//! What both GPU paths keep on the device the same way: weights uploaded as BF16, and the KV cache of every
//! cache-owning layer (`num_seqs x capacity` positions, a row addressed by its sequence id and position).

use vkae_kernels::half::bf16;
use vkae_kernels::{CudaSlice, Gpu, KvLayout};

use crate::config::LayerSpec;
use crate::error::{EngineError, Result};
use crate::tensor::Tensor;

impl From<vkae_kernels::KernelError> for EngineError {
    fn from(e: vkae_kernels::KernelError) -> Self {
        EngineError::Gpu(e.to_string())
    }
}

/// A BF16 matrix or vector on the device.
pub(crate) type W = CudaSlice<bf16>;

fn bf16_bytes(v: &[u16]) -> &[u8] {
    // SAFETY: a u16 slice viewed as its little-endian bytes.
    unsafe { std::slice::from_raw_parts(v.as_ptr() as *const u8, v.len() * 2) }
}

/// Uploads a tensor as BF16.
pub(crate) fn upload(gpu: &Gpu, t: &Tensor) -> Result<W> {
    Ok(gpu.upload_bf16_bytes(bf16_bytes(&t.to_bf16()))?)
}

/// Uploads tensors with the same row length as one matrix, rows in the order given.
pub(crate) fn upload_concat(gpu: &Gpu, parts: &[&Tensor]) -> Result<W> {
    let mut all: Vec<u16> = Vec::with_capacity(parts.iter().map(|t| t.numel()).sum());
    for t in parts {
        all.extend_from_slice(&t.to_bf16());
    }
    Ok(gpu.upload_bf16_bytes(bf16_bytes(&all))?)
}

/// One cache-owning layer's BF16 KV cache.
pub(crate) struct LayerKv {
    pub(crate) k: W,
    pub(crate) v: W,
    pub(crate) layout: KvLayout,
}

/// A KV cache of `num_seqs x capacity` positions for every cache-owning layer of `specs` (`None` for the
/// KV-shared ones).
pub(crate) fn new_kv<'a>(
    gpu: &Gpu,
    specs: impl Iterator<Item = &'a LayerSpec>,
    num_seqs: usize,
    capacity: usize,
) -> Result<Vec<Option<LayerKv>>> {
    specs
        .map(|s| {
            if s.kv_source.is_some() {
                return Ok(None);
            }
            let layout = KvLayout {
                num_seqs,
                capacity,
                kv_heads: s.kv_heads,
                head_dim: s.head_dim,
            };
            Ok(Some(LayerKv {
                k: gpu.alloc(layout.elements())?,
                v: gpu.alloc(layout.elements())?,
                layout,
            }))
        })
        .collect()
}

/// The greedy ids of the first `want.len()` rows (`ids` on the device), each with its `vocab` logits from
/// `logits` (`[rows, vocab]`) where `want` marks the row.
pub(crate) fn download_rows(
    gpu: &Gpu,
    ids: &CudaSlice<u32>,
    logits: &CudaSlice<f32>,
    vocab: usize,
    want: &[bool],
) -> Result<Vec<(u32, Option<Vec<f32>>)>> {
    let host = gpu.download(&ids.slice(..want.len()))?; // synchronizes
    host.into_iter()
        .zip(want)
        .enumerate()
        .map(|(i, (t, &wanted))| {
            let row = match wanted {
                true => Some(gpu.download(&logits.slice(i * vocab..(i + 1) * vocab))?),
                false => None,
            };
            Ok((t, row))
        })
        .collect()
}
