//! Benchmark section: GeGLU (fused gate|up output of the MLP).

use super::harness::e4b::*;
use super::harness::{Bench, Settings};
use super::timing::sets_for;
use crate::check::Checker;
use crate::error::Result;
use crate::layout::Strided;

/// Checks, then (unless `s.check_only`) times, at batch `batch`.
pub(super) fn bench(b: &mut Bench<'_>, batch: usize, seed: u64, s: &Settings) -> Result<()> {
    let gpu = b.gpu;
    let check_only = s.check_only;
    // ---- GeGLU (fused gate|up output of the MLP)
    {
        let check = Checker::new(gpu, seed ^ 99).geglu(batch, INTERMEDIATE, true)?;
        if check_only {
            b.checks.push(check);
        } else {
            let n = batch * INTERMEDIATE;
            let sets = sets_for(n * 12);
            let gu = b.f32s(2 * n * sets)?;
            let mut out = gpu.alloc::<f32>(n * sets)?;
            let st = b.timer.time(|i| {
                let k = i % sets;
                let g = gu.slice(2 * n * k..2 * n * (k + 1));
                let up = g.slice(INTERMEDIATE..);
                gpu.geglu(
                    Strided::new(&g, 2 * INTERMEDIATE),
                    Strided::new(&up, 2 * INTERMEDIATE),
                    batch,
                    INTERMEDIATE,
                    &mut out.slice_mut(n * k..n * (k + 1)),
                )
            })?;
            b.record(
                "geglu (fused gate|up)",
                format!("[{batch}, {INTERMEDIATE}]"),
                batch,
                Some(check),
                st,
                (n * 12) as f64,
            );
        }
    }
    Ok(())
}
