//! Benchmark section: residual add, layer scale.

use super::harness::e4b::*;
use super::harness::{Bench, Settings};
use super::timing::sets_for;
use crate::check::Checker;
use crate::error::Result;

/// Checks, then (unless `s.check_only`) times, at batch `batch`.
pub(super) fn bench(b: &mut Bench<'_>, batch: usize, seed: u64, s: &Settings) -> Result<()> {
    let gpu = b.gpu;
    let check_only = s.check_only;
    // ---- residual add, layer scale
    {
        let checks = Checker::new(gpu, seed ^ 5).residual(batch * HIDDEN)?;
        if check_only {
            b.checks.extend(checks);
        } else {
            let n = batch * HIDDEN;
            let sets = sets_for(n * 12);
            let mut acc = b.f32s(n * sets)?;
            let x = b.f32s(n * sets)?;
            let st = b.timer.time(|i| {
                let k = i % sets;
                gpu.add_inplace(
                    &mut acc.slice_mut(n * k..n * (k + 1)),
                    &x.slice(n * k..n * (k + 1)),
                    n,
                )
            })?;
            b.record(
                "add (residual, in place)",
                format!("[{batch}, {HIDDEN}]"),
                batch,
                Some(checks[1].clone()),
                st,
                (n * 12) as f64,
            );
            let st = b.timer.time(|i| {
                let k = i % sets;
                gpu.scale_inplace(&mut acc.slice_mut(n * k..n * (k + 1)), 0.9, n)
            })?;
            b.record(
                "scale (layer_scalar, in place)",
                format!("[{batch}, {HIDDEN}]"),
                batch,
                Some(checks[3].clone()),
                st,
                (n * 8) as f64,
            );
        }
    }
    Ok(())
}
