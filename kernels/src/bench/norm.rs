//! Benchmark section: RMSNorm: hidden rows (weight), q-norm rows (weight, hd 256), v-norm (scale-free, hd 512).

use super::harness::e4b::*;
use super::harness::{Bench, Settings};
use super::timing::sets_for;
use crate::check::Checker;
use crate::error::Result;

/// Checks, then (unless `s.check_only`) times, at batch `batch`.
pub(super) fn bench(b: &mut Bench<'_>, batch: usize, seed: u64, s: &Settings) -> Result<()> {
    let gpu = b.gpu;
    let check_only = s.check_only;
    // ---- RMSNorm: hidden rows (weight), q-norm rows (weight, hd 256), v-norm (scale-free, hd 512)
    for (rows, cols, weighted, label) in [
        (batch, HIDDEN, true, "rms_norm (hidden, weight)"),
        (
            batch * HEADS,
            HEAD_DIM_SLIDING,
            true,
            "rms_norm (q heads, weight)",
        ),
        (
            batch * KV_HEADS,
            HEAD_DIM_GLOBAL,
            false,
            "rms_norm (v heads, scale-free)",
        ),
    ] {
        let check = Checker::new(gpu, seed ^ rows as u64).rms_norm(rows, cols, weighted, false)?;
        if check_only {
            b.checks.push(check);
            continue;
        }
        let n = rows * cols;
        let sets = sets_for(n * 8);
        let xs = b.f32s(n * sets)?;
        let w = b.bf16s(cols)?;
        let mut out = gpu.alloc::<f32>(n * sets)?;
        let st = b.timer.time(|i| {
            let k = i % sets;
            gpu.rms_norm(
                &xs.slice(k * n..(k + 1) * n),
                weighted.then_some(&w),
                1e-6,
                rows,
                cols,
                &mut out.slice_mut(k * n..(k + 1) * n),
            )
        })?;
        b.record(
            label,
            format!("[{rows}, {cols}]"),
            batch,
            Some(check),
            st,
            (n * 8 + cols * 2) as f64,
        );
    }
    Ok(())
}
