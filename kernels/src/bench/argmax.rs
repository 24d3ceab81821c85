//! Benchmark section: logits: softcap and argmax over [batch, 262144].

use super::harness::e4b::*;
use super::harness::{Bench, Settings};
use super::timing::sets_for;
use crate::check::Checker;
use crate::error::Result;

/// Checks, then (unless `s.check_only`) times, at batch `batch`.
pub(super) fn bench(b: &mut Bench<'_>, batch: usize, seed: u64, s: &Settings) -> Result<()> {
    let gpu = b.gpu;
    let check_only = s.check_only;
    // ---- logits: softcap and argmax over [batch, 262144]
    {
        let n = batch * VOCAB;
        let c1 = Checker::new(gpu, seed ^ 11).softcap(n)?;
        let c2 = Checker::new(gpu, seed ^ 12).argmax(batch, VOCAB)?;
        if check_only {
            b.checks.extend([c1, c2]);
        } else {
            let sets = sets_for(n * 8);
            let mut x = b.f32s(n * sets)?;
            let st = b.timer.time(|i| {
                let k = i % sets;
                gpu.softcap_inplace(&mut x.slice_mut(n * k..n * (k + 1)), 30.0, n)
            })?;
            b.record(
                "softcap (30, in place)",
                format!("[{batch}, {VOCAB}]"),
                batch,
                Some(c1),
                st,
                (n * 8) as f64,
            );
            let mut out = gpu.alloc::<u32>(batch)?;
            let sets = sets_for(n * 4);
            let st = b.timer.time(|i| {
                let k = i % sets;
                gpu.argmax_rows(
                    &x.slice(n * (k % (x.len() / n))..n * (k % (x.len() / n) + 1)),
                    batch,
                    VOCAB,
                    &mut out,
                )
            })?;
            b.record(
                "argmax_rows",
                format!("[{batch}, {VOCAB}]"),
                batch,
                Some(c2),
                st,
                (n * 4) as f64,
            );
        }
    }
    Ok(())
}
