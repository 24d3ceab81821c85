//! Benchmark section: KV append (global layer shape).

use super::harness::e4b::*;
use super::harness::{Bench, Settings};
use crate::check::Checker;
use crate::error::Result;
use crate::layout::{KvCacheMut, KvLayout, Tokens};
use half::bf16;

/// Checks, then (unless `s.check_only`) times, at batch `batch`.
pub(super) fn bench(b: &mut Bench<'_>, batch: usize, seed: u64, s: &Settings) -> Result<()> {
    let gpu = b.gpu;
    let check_only = s.check_only;
    // ---- KV append (global layer shape)
    {
        let check = Checker::new(gpu, seed ^ 77).kv_append(batch, 1, KV_HEADS, HEAD_DIM_GLOBAL)?;
        if check_only {
            b.checks.push(check);
        } else {
            let max_ctx = s.contexts.iter().copied().max().unwrap_or(0);
            let layout = KvLayout {
                num_seqs: batch,
                capacity: max_ctx + 64,
                kv_heads: KV_HEADS,
                head_dim: HEAD_DIM_GLOBAL,
            };
            let width = KV_HEADS * HEAD_DIM_GLOBAL;
            let (kn, vn) = (b.f32s(batch * width)?, b.f32s(batch * width)?);
            let mut kc = gpu.alloc::<bf16>(layout.elements())?;
            let mut vc = gpu.alloc::<bf16>(layout.elements())?;
            let seqs: Vec<i32> = (0..batch as i32).collect();
            let ds = gpu.upload(&seqs)?;
            let pos: Vec<Vec<i32>> = (0..64).map(|i| vec![(max_ctx + i) as i32; batch]).collect();
            let dps = pos
                .iter()
                .map(|p| gpu.upload(p))
                .collect::<Result<Vec<_>>>()?;
            let st = b.timer.time(|i| {
                let tokens = Tokens::new(&ds, &dps[i % 64], batch);
                let cache = KvCacheMut::new(&mut kc, &mut vc, layout);
                gpu.kv_append(&kn, &vn, tokens, cache)
            })?;
            b.record(
                "kv_append (bf16 cache)",
                format!("[{batch}, {KV_HEADS}, {HEAD_DIM_GLOBAL}]"),
                batch,
                Some(check),
                st,
                (batch * width * 12) as f64,
            );
        }
    }
    Ok(())
}
