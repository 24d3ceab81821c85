//! Benchmark section: casts at the MLP width.

use super::harness::e4b::*;
use super::harness::{Bench, Settings};
use super::timing::sets_for;
use crate::check::Checker;
use crate::error::Result;
use half::bf16;

/// Checks, then (unless `s.check_only`) times, at batch `batch`.
pub(super) fn bench(b: &mut Bench<'_>, batch: usize, seed: u64, s: &Settings) -> Result<()> {
    let gpu = b.gpu;
    let check_only = s.check_only;
    // ---- casts at the MLP width
    {
        let checks = Checker::new(gpu, seed ^ 13).casts(batch * INTERMEDIATE)?;
        if check_only {
            b.checks.extend(checks);
        } else {
            let n = batch * INTERMEDIATE;
            let sets = sets_for(n * 6);
            let x = b.f32s(n * sets)?;
            let mut y = gpu.alloc::<bf16>(n * sets)?;
            let st = b.timer.time(|i| {
                let k = i % sets;
                gpu.cast_f32_to_bf16(
                    &x.slice(n * k..n * (k + 1)),
                    n,
                    &mut y.slice_mut(n * k..n * (k + 1)),
                )
            })?;
            b.record(
                "cast f32->bf16",
                format!("[{batch}, {INTERMEDIATE}]"),
                batch,
                Some(checks[0].clone()),
                st,
                (n * 6) as f64,
            );
        }
    }
    Ok(())
}
