//! Benchmark section: RoPE on q: sliding (default, hd 256) and global (proportional, hd 512).

use super::harness::e4b::*;
use super::harness::{Bench, Settings};
use super::timing::sets_for;
use crate::check::Checker;
use crate::error::Result;
use crate::rope::Rope;

/// Checks, then (unless `s.check_only`) times, at batch `batch`.
pub(super) fn bench(b: &mut Bench<'_>, batch: usize, seed: u64, s: &Settings) -> Result<()> {
    let gpu = b.gpu;
    let check_only = s.check_only;
    // ---- RoPE on q: sliding (default, hd 256) and global (proportional, hd 512)
    for rope in [
        Rope::Default {
            theta: 1e4,
            head_dim: HEAD_DIM_SLIDING,
        },
        Rope::Proportional {
            theta: 1e6,
            partial_rotary_factor: 0.25,
            head_dim: HEAD_DIM_GLOBAL,
        },
    ] {
        let hd = rope.head_dim();
        let check = Checker::new(gpu, seed ^ hd as u64).rope(batch, HEADS, rope, 131072)?;
        if check_only {
            b.checks.push(check);
            continue;
        }
        let n = batch * HEADS * hd;
        let sets = sets_for(n * 8);
        let mut xs = b.f32s(n * sets)?;
        let pos: Vec<i32> = (0..batch).map(|_| b.rng.below(131072) as i32).collect();
        let (dp, df) = (gpu.upload(&pos)?, gpu.upload(&rope.inv_freq())?);
        let st = b.timer.time(|i| {
            let k = i % sets;
            gpu.rope(
                &mut xs.slice_mut(k * n..(k + 1) * n),
                &dp,
                &df,
                batch,
                HEADS,
                hd,
            )
        })?;
        let name = if hd == HEAD_DIM_SLIDING {
            "rope (q, default 1e4)"
        } else {
            "rope (q, proportional 0.25, 1e6)"
        };
        b.record(
            name,
            format!("[{batch}, {HEADS}, {hd}]"),
            batch,
            Some(check),
            st,
            (n * 8) as f64,
        );
    }
    Ok(())
}
