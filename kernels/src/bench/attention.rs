//! Benchmark section: decode attention: sliding (hd 256, window 512) and global (hd 512, full), at each context.

use super::harness::e4b::*;
use super::harness::{Bench, Row, Settings};
use crate::check::Checker;
use crate::error::Result;
use crate::layout::{KvCache, KvLayout, Tokens};
use crate::ops::attention::AttentionCase;
use crate::{AttentionPath, AttentionSpec};
use cudarc::driver::CudaSlice;

/// Checks, then (unless `s.check_only`) times, at batch `batch`.
pub(super) fn bench(b: &mut Bench<'_>, batch: usize, seed: u64, s: &Settings) -> Result<()> {
    let gpu = b.gpu;
    let check_only = s.check_only;
    // ---- decode attention: sliding (hd 256, window 512) and global (hd 512, full), at each context
    for (hd, window) in [(HEAD_DIM_SLIDING, Some(WINDOW)), (HEAD_DIM_GLOBAL, None)] {
        let case = AttentionCase {
            num_seqs: batch,
            context: 1024,
            new_tokens: 1,
            heads: HEADS,
            kv_heads: KV_HEADS,
            head_dim: hd,
            window,
            max_keys: None,
            capacity: 1024 + 1,
            bf16_out: false,
            path: Default::default(),
        };
        let check = Checker::new(gpu, seed ^ (hd as u64) << 8).attention(case)?;
        // The VKAE path's form (merged in the kernel, a round of keys at a time), checked on the same case.
        let rounds_check = Checker::new(gpu, seed ^ (hd as u64) << 9).attention(AttentionCase {
            path: AttentionPath {
                merge_in_kernel: true,
                softmax_per_round: true,
            },
            ..case
        })?;
        if check_only {
            b.checks.push(check);
            b.checks.push(rounds_check);
            continue;
        }
        for &context in &s.contexts {
            let layout = KvLayout {
                num_seqs: batch,
                capacity: context + 1,
                kv_heads: KV_HEADS,
                head_dim: hd,
            };
            let kc = b.bf16s(layout.elements())?;
            let vc = b.bf16s(layout.elements())?;
            let q = b.f32s(batch * HEADS * hd)?;
            let mut out = gpu.alloc::<f32>(batch * HEADS * hd)?;
            let seqs: Vec<i32> = (0..batch as i32).collect();
            let (ds, dp) = (
                gpu.upload(&seqs)?,
                gpu.upload(&vec![context as i32; batch])?,
            );
            let cache = || KvCache::new(&kc, &vc, layout);
            let places = || Tokens::new(&ds, &dp, batch);
            let spec = AttentionSpec {
                heads: HEADS,
                window,
                scale: 1.0,
                max_keys: None,
                path: AttentionPath::default(),
            };
            let st = b
                .timer
                .time(|_| gpu.attention(&q, cache(), places(), spec, &mut out))?;
            let keys = window.map_or(context + 1, |w| w.min(context + 1));
            let bytes = batch * keys * KV_HEADS * hd * 2 * 2 + 2 * batch * HEADS * hd * 4;
            let name = match window {
                Some(w) => format!("attention decode (window {w})"),
                None => "attention decode (full)".to_string(),
            };
            let splits = gpu.attention_splits(batch, HEADS);
            // The check is listed once; every context row shows it.
            b.rows.push(Row {
                kernel: name.clone(),
                shape: format!("ctx {context} h {HEADS}/{KV_HEADS} hd {hd} splits {splits}"),
                batch,
                check: Some(check.clone()),
                stats: st,
                bytes: bytes as f64,
            });
            // The same with the split count bounded by the keys (the VKAE path knows its context): merged by the
            // separate launch, by the last split block (the VKAE path's default), and that with its online
            // softmax a round of keys at a time.
            let splits = splits.min(keys.div_ceil(crate::ATTENTION_KEYS_PER_SPLIT));
            // One timing of this context's case with the splits bounded by its keys, for `heads` query heads.
            let time_path =
                |b: &mut Bench<'_>, out: &mut CudaSlice<f32>, heads: usize, path: AttentionPath| {
                    b.timer.time(|_| {
                        let spec = AttentionSpec {
                            heads,
                            max_keys: Some(keys),
                            path,
                            ..spec
                        };
                        gpu.attention(&q, cache(), places(), spec, &mut *out)
                    })
                };
            for (path, form) in [
                (AttentionPath::default(), ""),
                (
                    AttentionPath {
                        merge_in_kernel: true,
                        ..Default::default()
                    },
                    ", merged in kernel",
                ),
                (
                    AttentionPath {
                        merge_in_kernel: true,
                        softmax_per_round: true,
                    },
                    ", merged in kernel, softmax per round of keys",
                ),
            ] {
                let st = time_path(b, &mut out, HEADS, path)?;
                b.rows.push(Row {
                    kernel: format!("{name}, splits from context{form}"),
                    shape: format!("ctx {context} h {HEADS}/{KV_HEADS} hd {hd} splits {splits}"),
                    batch,
                    check: None,
                    stats: st,
                    bytes: bytes as f64,
                });
            }
            // Full attention with only one query head per KV head (2/2): the same KV heads and keys, a quarter of
            // the blocks, so a quarter of what E4B's 8/2 blocks read (each of a group's 4 query heads re-reads
            // its KV head). About as long as the 8/2 row: each block's own chain of loads binds, and sharing K/V
            // across a group would not help; about a quarter: what the blocks read together binds, and loading
            // K/V once per group is the lever.
            if window.is_none() {
                let rounds = AttentionPath {
                    merge_in_kernel: true,
                    softmax_per_round: true,
                };
                let st = time_path(b, &mut out, KV_HEADS, rounds)?;
                let splits = gpu
                    .attention_splits(batch, KV_HEADS)
                    .min(keys.div_ceil(crate::ATTENTION_KEYS_PER_SPLIT));
                b.rows.push(Row {
                    kernel: format!(
                        "{name}, splits from context, merged in kernel, softmax per round, one query head per KV head"
                    ),
                    shape: format!("ctx {context} h {KV_HEADS}/{KV_HEADS} hd {hd} splits {splits}"),
                    batch,
                    check: None,
                    stats: st,
                    bytes: (batch * keys * KV_HEADS * hd * 2 * 2 + 2 * batch * KV_HEADS * hd * 4) as f64,
                });
            }
        }
        b.checks.push(check);
        b.checks.push(rounds_check);
    }
    Ok(())
}
