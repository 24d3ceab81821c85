//! Benchmark section: embedding gather (check at a small vocab; time on the full 262144 x 2560 table).

use super::harness::e4b::*;
use super::harness::{Bench, Settings};
use crate::check::Checker;
use crate::error::Result;

/// Checks, then (unless `s.check_only`) times, at batch `batch`.
pub(super) fn bench(b: &mut Bench<'_>, batch: usize, seed: u64, s: &Settings) -> Result<()> {
    let gpu = b.gpu;
    let check_only = s.check_only;
    // ---- embedding gather (check at a small vocab; time on the full 262144 x 2560 table)
    let check = Checker::new(gpu, seed).embed(batch, HIDDEN, 4096)?;
    if !check_only {
        let table = b.bf16s(VOCAB * HIDDEN)?;
        let ids: Vec<Vec<u32>> = (0..64)
            .map(|_| {
                (0..batch)
                    .map(|_| b.rng.below(VOCAB as u64) as u32)
                    .collect()
            })
            .collect();
        let ids = ids
            .iter()
            .map(|v| gpu.upload(v))
            .collect::<Result<Vec<_>>>()?;
        let mut out = gpu.alloc::<f32>(batch * HIDDEN)?;
        let st = b
            .timer
            .time(|i| gpu.embed(&table, &ids[i % ids.len()], batch, HIDDEN, 50.5, &mut out))?;
        b.record(
            "embed (bf16 gather x scale)",
            format!("[{batch}] of [{VOCAB}, {HIDDEN}]"),
            batch,
            Some(check),
            st,
            (batch * HIDDEN * 6) as f64,
        );
    } else {
        b.checks.push(check);
    }
    Ok(())
}
