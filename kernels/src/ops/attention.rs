//! Causal GQA attention against the KV cache, split-KV with a merge (attention.cu): launcher, f64 reference
//! and check.

use crate::check::{bf16_round, poison_f32, CheckReport, Checker};
use crate::device::launch::{int, launched, need};
use crate::device::Gpu;
use crate::error::{shape, DriverContext, Result};
use crate::layout::{KvCache, KvCacheMut, KvLayout, Tokens};
use crate::tolerance::{self as tol, relative_error};
use cudarc::driver::{CudaSlice, DevicePtr, DevicePtrMut, DeviceRepr, LaunchConfig};
use half::bf16;

/// Keys per split [`Gpu::attention`] aims for under `max_keys` (8 warps x 4 keys in flight x 2 rounds).
pub const ATTENTION_KEYS_PER_SPLIT: usize = 64;

/// Largest head_dim the attention kernel supports (32 lanes x 16 dims).
pub const MAX_HEAD_DIM: usize = 512;

/// Most key-range splits a query's attention takes (`ATTENTION_MAX_SPLITS` in attention.cu: the merge gives
/// each split one lane of a warp).
pub const ATTENTION_MAX_SPLITS: usize = 32;

/// Which attention kernels [`Gpu::attention`] runs ([`AttentionSpec::path`]); the default is the per-head
/// kernel with a separate merge launch.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AttentionPath {
    /// The last split block merges the partials (no `attention_combine` launch).
    pub merge_in_kernel: bool,
    /// The per-head kernel's online softmax takes a round of keys (the 4 whose K/V loads are in flight) at
    /// once: their scores, one max and one rescale, then their V rows (attention.cu `online_round`), where it
    /// otherwise steps key by key. Head_dim 256 and 512 (the 16-byte path).
    pub softmax_per_round: bool,
}

/// Element types [`Gpu::attention`] writes: f32, or bf16 (the next projection's operand).
pub trait AttentionOutput: DeviceRepr {
    /// Whether the kernel writes bf16 (its `out_b` operand) rather than f32.
    const BF16: bool;
}

impl AttentionOutput for f32 {
    const BF16: bool = false;
}

impl AttentionOutput for bf16 {
    const BF16: bool = true;
}

/// What one attention call computes, beyond its buffers.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AttentionSpec {
    /// Query heads (a multiple of the cache's kv heads: GQA).
    pub heads: usize,
    /// Sliding window in tokens (`None`: full causal attention).
    pub window: Option<usize>,
    /// Scores are `scale * q·k` (Gemma 4: 1.0).
    pub scale: f32,
    /// A bound on the keys any query sees (the caller knows the context length), or `None`.
    pub max_keys: Option<usize>,
    /// Which kernels run; all are results-equal up to f32 reduction order.
    pub path: AttentionPath,
}

/// The scratch slots attention keeps in the [`Gpu`]'s arena: the split partials, and one merge counter per
/// query (token x head) for the in-kernel merge, zero between launches.
pub(crate) const PARTIALS: &str = "attention.partials";
pub(crate) const MERGE_COUNTERS: &str = "attention.merge_counters";

impl Gpu {
    /// Causal attention of `tokens.count` queries against a layer's KV cache (prefill and decode alike).
    ///
    /// `q`: f32 `[tokens, heads, head_dim]`; `out`: `[tokens, heads, head_dim]`, f32, or bf16 (rounded to
    /// nearest even: the o projection's operand, without a cast launch); query `t` belongs to sequence
    /// `seq_ids[t]` at position `positions[t]` and attends to that sequence's cached keys at positions
    /// `max(0, pos - window + 1) ..= pos` (`window: None` for full attention), which [`Gpu::kv_append`] must
    /// have written first. GQA: head `h` uses kv head `h / (heads / kv_heads)`. Scores are `scale * q.k`,
    /// softmax in f32. `head_dim <= 512`.
    ///
    /// Split-KV: each query's key range is cut into [`Gpu::attention_splits`] parts processed by
    /// separate blocks and merged by a second launch (one launch when the batch alone fills the
    /// GPU); the partials live in this `Gpu`'s scratch arena. With `spec.max_keys` the split count is also
    /// capped at `ceil(max_keys / ATTENTION_KEYS_PER_SPLIT)`, so a short context runs few splits (or one, with
    /// no combine launch); never more than [`Gpu::attention_splits`], so the scratch reserved by
    /// [`Gpu::reserve_scratch`] always suffices. Correct for any bound: it only sets the parallelism.
    ///
    /// `spec.path` picks the kernels: with `merge_in_kernel` the last split block of each query merges the
    /// partials itself, counted on device counters in the scratch arena, instead of a second launch
    /// (`attention_combine`); with `softmax_per_round` the per-head kernel updates its online softmax once per
    /// round of keys (`attention_rounds_epl8/16`, head_dim 256 or 512) instead of once per key.
    pub fn attention<C, P, T>(
        &self,
        q: &impl DevicePtr<f32>,
        cache: KvCache<'_, C>,
        tokens: Tokens<'_, P>,
        spec: AttentionSpec,
        out: &mut impl DevicePtrMut<T>,
    ) -> Result<()>
    where
        C: DevicePtr<bf16>,
        P: DevicePtr<i32>,
        T: AttentionOutput,
    {
        const OP: &str = "attention";
        let KvCache {
            k: k_cache,
            v: v_cache,
            layout,
        } = cache;
        let Tokens {
            seq_ids,
            positions,
            count: tokens,
        } = tokens;
        let AttentionSpec {
            heads,
            window,
            scale,
            max_keys,
            path,
        } = spec;
        let hd = layout.head_dim;
        if hd == 0 || hd > MAX_HEAD_DIM {
            return Err(shape(
                OP,
                format!("head_dim {hd} must be in 1..={MAX_HEAD_DIM}"),
            ));
        }
        if layout.kv_heads == 0 || !heads.is_multiple_of(layout.kv_heads) {
            return Err(shape(
                OP,
                format!(
                    "heads {heads} is not a multiple of kv_heads {}",
                    layout.kv_heads
                ),
            ));
        }
        if layout.capacity == 0 {
            return Err(shape(OP, "capacity must be positive".into()));
        }
        if window == Some(0) {
            return Err(shape(OP, "a window must be at least 1 token".into()));
        }
        need(OP, "q", q.len(), tokens * heads * hd)?;
        need(OP, "out", out.len(), tokens * heads * hd)?;
        need(OP, "seq_ids", seq_ids.len(), tokens)?;
        need(OP, "positions", positions.len(), tokens)?;
        need(OP, "k_cache", k_cache.len(), layout.elements())?;
        need(OP, "v_cache", v_cache.len(), layout.elements())?;
        if tokens == 0 {
            return Ok(());
        }
        let epl = hd.div_ceil(32).next_power_of_two();
        let func = match (path.softmax_per_round, epl) {
            (true, 8) => "attention_rounds_epl8",
            (true, 16) => "attention_rounds_epl16",
            (_, 1) => "attention_epl1",
            (_, 2) => "attention_epl2",
            (_, 4) => "attention_epl4",
            (_, 8) => "attention_epl8",
            (_, 16) => "attention_epl16",
            _ => unreachable!("head_dim <= 512 gives at most 16 dims a lane"),
        };
        let heads_i = int(OP, "heads", heads)?;
        let kvh = int(OP, "kv_heads", layout.kv_heads)?;
        let hd_i = int(OP, "head_dim", hd)?;
        let cap = int(OP, "capacity", layout.capacity)?;
        let win = int(OP, "window", window.unwrap_or(0))?;
        let most = self.attention_splits(tokens, heads);
        let splits = match max_keys {
            Some(k) => most.min(k.div_ceil(ATTENTION_KEYS_PER_SPLIT).max(1)),
            None => most,
        };
        // Merging in the kernel: one counter per query, zero between launches.
        let merge_in_kernel = path.merge_in_kernel && splits > 1;
        let counters_slot = self.scratch.buffer::<u32>(MERGE_COUNTERS);
        let mut counters = if merge_in_kernel {
            Some(self.scratch.grown(&counters_slot, tokens * heads)?)
        } else {
            None
        };
        let counters_ptr = counters
            .as_mut()
            .map_or(0u64, |c| c.device_ptr_mut(&self.stream).0);
        let part_len = if splits > 1 {
            tokens * heads * splits * (hd + 2)
        } else {
            1
        };
        let part_slot = self.scratch.buffer::<f32>(PARTIALS);
        let mut part = self.scratch.grown(&part_slot, part_len)?;
        let (pp, _g0) = part.device_ptr_mut(&self.stream);
        // Partials: (max, sum) pairs first, then the accumulators.
        let (part_ml, part_acc) = (pp, pp + (tokens * heads * splits * 2 * 4) as u64);
        let (qp, _g1) = q.device_ptr(&self.stream);
        let (kc, _g2) = k_cache.device_ptr(&self.stream);
        let (vc, _g3) = v_cache.device_ptr(&self.stream);
        let (si, _g4) = seq_ids.device_ptr(&self.stream);
        let (po, _g5) = positions.device_ptr(&self.stream);
        // The kernel writes f32 `out`, or bf16 `out_b` where that pointer is not null.
        let (outp, _g6) = out.device_ptr_mut(&self.stream);
        let (op, obp) = if T::BF16 { (0u64, outp) } else { (outp, 0u64) };
        // One block per (token, query head, split).
        let cfg = LaunchConfig {
            grid_dim: (
                int(OP, "tokens", tokens)? as u32,
                heads as u32,
                splits as u32,
            ),
            block_dim: (256, 1, 1),
            shared_mem_bytes: 0,
        };
        let mut b = self.launcher(func);
        b.arg(&qp)
            .arg(&kc)
            .arg(&vc)
            .arg(&si)
            .arg(&po)
            .arg(&op)
            .arg(&obp);
        b.arg(&part_ml).arg(&part_acc);
        b.arg(&heads_i)
            .arg(&kvh)
            .arg(&hd_i)
            .arg(&cap)
            .arg(&win)
            .arg(&scale)
            .arg(&counters_ptr);
        unsafe { b.launch(cfg) }.ctx(launched(OP))?;
        if splits > 1 && !merge_in_kernel {
            let splits_i = splits as i32;
            let cfg = LaunchConfig {
                grid_dim: (tokens as u32, heads as u32, 1),
                block_dim: (128, 1, 1),
                shared_mem_bytes: 0,
            };
            let mut b = self.launcher("attention_combine");
            b.arg(&part_ml).arg(&part_acc).arg(&op).arg(&obp);
            b.arg(&heads_i).arg(&hd_i).arg(&splits_i);
            unsafe { b.launch(cfg) }.ctx(launched(OP))?;
        }
        Ok(())
    }

    /// The most f32 partials and u32 merge counters any attention call needs, whatever its token count: a
    /// query's keys are split only while its blocks number under two waves (`queries < 2 * SMs`, queries =
    /// tokens x heads), so the counters stay under `2 * SMs`, and `queries x splits < queries x (2 * SMs /
    /// queries + 1) < 4 * SMs` blocks write partials of `head_dim + 2` floats each.
    pub fn attention_scratch_bound(&self, head_dim: usize) -> (usize, usize) {
        let sms = self.multiprocessors() as usize;
        (4 * sms * (head_dim + 2), 2 * sms)
    }

    /// How many parts [`Gpu::attention`] splits each query's key range into: enough blocks for
    /// two waves over the multiprocessors, at most 32, and 1 (no combine pass) once
    /// `tokens * heads` fills the GPU by itself.
    pub fn attention_splits(&self, tokens: usize, heads: usize) -> usize {
        let blocks = (tokens * heads).max(1);
        (2 * self.multiprocessors() as usize)
            .div_ceil(blocks)
            .clamp(1, ATTENTION_MAX_SPLITS)
    }
}

/// The f64 CPU reference.
pub mod reference {

    /// Attention geometry for [`attention`].
    #[derive(Debug, Clone, Copy)]
    pub struct AttentionShape {
        pub heads: usize,
        pub kv_heads: usize,
        pub head_dim: usize,
        /// Positions stored per sequence in the history arrays.
        pub hist_len: usize,
        /// Sliding window (keys `pos - window + 1 ..= pos`), or None.
        pub window: Option<usize>,
        pub scale: f64,
    }

    /// Causal attention of `q: [tokens, heads, head_dim]` over a logical key/value history
    /// `k_hist, v_hist: [num_seqs, hist_len, kv_heads, head_dim]` (position-indexed, no ring): query `t`
    /// of sequence `seq_ids[t]` at `positions[t]` sees positions `max(0, pos - window + 1) ..= pos`.
    pub fn attention(
        q: &[f32],
        k_hist: &[f32],
        v_hist: &[f32],
        seq_ids: &[i32],
        positions: &[i32],
        s: AttentionShape,
    ) -> Vec<f64> {
        let tokens = positions.len();
        let hd = s.head_dim;
        let group = s.heads / s.kv_heads;
        let mut out = vec![0.0f64; tokens * s.heads * hd];
        for t in 0..tokens {
            let seq = seq_ids[t] as usize;
            let pos = positions[t] as usize;
            let lo = s.window.map_or(0, |w| (pos + 1).saturating_sub(w));
            for h in 0..s.heads {
                let kvh = h / group;
                let qv = &q[(t * s.heads + h) * hd..(t * s.heads + h + 1) * hd];
                let at = |j: usize| ((seq * s.hist_len + j) * s.kv_heads + kvh) * hd;
                let scores: Vec<f64> = (lo..=pos)
                    .map(|j| {
                        let k = &k_hist[at(j)..at(j) + hd];
                        s.scale
                            * qv.iter()
                                .zip(k)
                                .map(|(&a, &b)| a as f64 * b as f64)
                                .sum::<f64>()
                    })
                    .collect();
                let m = scores.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                let w: Vec<f64> = scores.iter().map(|&x| (x - m).exp()).collect();
                let z: f64 = w.iter().sum();
                let o = &mut out[(t * s.heads + h) * hd..(t * s.heads + h + 1) * hd];
                for (idx, j) in (lo..=pos).enumerate() {
                    let v = &v_hist[at(j)..at(j) + hd];
                    for d in 0..hd {
                        o[d] += w[idx] / z * v[d] as f64;
                    }
                }
            }
        }
        out
    }
}

/// Geometry of one attention check: `num_seqs` sequences, each with a random context already in
/// the cache (the first sequence's is exactly `context`), then `new_tokens` appended and queried.
#[derive(Debug, Clone, Copy)]
pub struct AttentionCase {
    pub num_seqs: usize,
    pub context: usize,
    pub new_tokens: usize,
    pub heads: usize,
    pub kv_heads: usize,
    pub head_dim: usize,
    pub window: Option<usize>,
    /// Cache slots per sequence; smaller than `context + new_tokens` makes the cache a ring.
    pub capacity: usize,
    /// The key bound given to [`Gpu::attention`] (`AttentionSpec::max_keys`).
    pub max_keys: Option<usize>,
    /// Check the bf16 output of [`Gpu::attention`] instead of the f32 output.
    pub bf16_out: bool,
    /// The kernels that run (default: the per-head kernel and a separate merge launch).
    pub path: AttentionPath,
}

impl AttentionCase {
    /// A small decode case with E4B's GQA (8 query heads on 2 kv heads, head_dim 256): 3 sequences, 40 keys of
    /// context, one new token each, 64 cache slots, no window, f32 output on the default path. The other cases
    /// are this with fields changed.
    pub const DECODE: AttentionCase = AttentionCase {
        num_seqs: 3,
        context: 40,
        new_tokens: 1,
        heads: 8,
        kv_heads: 2,
        head_dim: 256,
        window: None,
        capacity: 64,
        max_keys: None,
        bf16_out: false,
        path: AttentionPath {
            merge_in_kernel: false,
            softmax_per_round: false,
        },
    };
}

impl Checker<'_> {
    /// Attention against a cache filled through [`Gpu::kv_append`], compared with the reference over
    /// the same bf16-rounded keys and values.
    pub fn attention(&mut self, c: AttentionCase) -> Result<CheckReport> {
        let g = self.gpu;
        let hd = c.head_dim;
        let width = c.kv_heads * hd;
        let layout = KvLayout {
            num_seqs: c.num_seqs,
            capacity: c.capacity,
            kv_heads: c.kv_heads,
            head_dim: hd,
        };
        let contexts: Vec<usize> = (0..c.num_seqs)
            .map(|s| {
                if s == 0 {
                    c.context
                } else {
                    self.rng.below(c.context as u64 + 1) as usize
                }
            })
            .collect();
        let hist_len = c.context + c.new_tokens;
        let k_hist = self.rng.normal_vec(c.num_seqs * hist_len * width, 1.0);
        let v_hist = self.rng.normal_vec(c.num_seqs * hist_len * width, 1.0);
        let row = |h: &[f32], s: usize, p: usize| {
            h[(s * hist_len + p) * width..(s * hist_len + p + 1) * width].to_vec()
        };

        let poison = vec![bf16::NAN; layout.elements()];
        let mut kc = g.upload(&poison)?;
        let mut vc = g.upload(&poison)?;
        // Fill each sequence's context in chunks of at most `capacity` positions (one slot per token
        // and call), then append the new tokens in one call.
        let append = |g: &Gpu,
                      toks: &[(usize, usize)],
                      kc: &mut CudaSlice<bf16>,
                      vc: &mut CudaSlice<bf16>|
         -> Result<()> {
            if toks.is_empty() {
                return Ok(());
            }
            let k: Vec<f32> = toks.iter().flat_map(|&(s, p)| row(&k_hist, s, p)).collect();
            let v: Vec<f32> = toks.iter().flat_map(|&(s, p)| row(&v_hist, s, p)).collect();
            let seqs: Vec<i32> = toks.iter().map(|&(s, _)| s as i32).collect();
            let pos: Vec<i32> = toks.iter().map(|&(_, p)| p as i32).collect();
            let (dk, dv, ds, dp) = (
                g.upload(&k)?,
                g.upload(&v)?,
                g.upload(&seqs)?,
                g.upload(&pos)?,
            );
            let tokens = Tokens::new(&ds, &dp, toks.len());
            let cache = KvCacheMut::new(kc, vc, layout);
            g.kv_append(&dk, &dv, tokens, cache)
        };
        let chunk = c.capacity.min(4096);
        let mut p0 = 0;
        while p0 < c.context {
            let toks: Vec<(usize, usize)> = (0..c.num_seqs)
                .flat_map(|s| (p0..(p0 + chunk).min(contexts[s])).map(move |p| (s, p)))
                .collect();
            append(g, &toks, &mut kc, &mut vc)?;
            p0 += chunk;
        }
        let new: Vec<(usize, usize)> = (0..c.num_seqs)
            .flat_map(|s| (0..c.new_tokens).map(move |i| (s, i)))
            .map(|(s, i)| (s, contexts[s] + i))
            .collect();
        append(g, &new, &mut kc, &mut vc)?;

        let tokens = new.len();
        let q = self.rng.normal_vec(tokens * c.heads * hd, 0.1);
        let seq_ids: Vec<i32> = new.iter().map(|&(s, _)| s as i32).collect();
        let positions: Vec<i32> = new.iter().map(|&(_, p)| p as i32).collect();
        let (dq, ds, dp) = (g.upload(&q)?, g.upload(&seq_ids)?, g.upload(&positions)?);
        let cache = || KvCache::new(&kc, &vc, layout);
        let places = || Tokens::new(&ds, &dp, tokens);
        let spec = AttentionSpec {
            heads: c.heads,
            window: c.window,
            scale: 1.0,
            max_keys: c.max_keys,
            path: c.path,
        };
        let got: Vec<f32> = if c.bf16_out {
            let mut out = g.upload(&vec![bf16::NAN; tokens * c.heads * hd])?;
            g.attention(&dq, cache(), places(), spec, &mut out)?;
            g.download(&out)?.iter().map(|v| v.to_f32()).collect()
        } else {
            let mut out = poison_f32(g, tokens * c.heads * hd)?;
            g.attention(&dq, cache(), places(), spec, &mut out)?;
            g.download(&out)?
        };
        let shape = reference::AttentionShape {
            heads: c.heads,
            kv_heads: c.kv_heads,
            head_dim: hd,
            hist_len,
            window: c.window,
            scale: 1.0,
        };
        let want = reference::attention(
            &q,
            &bf16_round(&k_hist),
            &bf16_round(&v_hist),
            &seq_ids,
            &positions,
            shape,
        );
        let ring = if c.capacity < hist_len { ", ring" } else { "" };
        let bf16_out = if c.bf16_out { ", bf16 out" } else { "" };
        let merged = if c.path.merge_in_kernel {
            ", merged in kernel"
        } else {
            ""
        };
        let rounds = if c.path.softmax_per_round {
            ", per round"
        } else {
            ""
        };
        Ok(CheckReport::new(
            format!(
                "attention ({}{ring}{bf16_out}{merged}{rounds})",
                c.window
                    .map_or("full".to_string(), |w| format!("window {w}"))
            ),
            format!(
                "seqs {} ctx {} new {} h {}/{} hd {hd} cap {}",
                c.num_seqs, c.context, c.new_tokens, c.heads, c.kv_heads, c.capacity
            ),
            relative_error(&got[..tokens * c.heads * hd], &want),
            // A bf16 output adds its own rounding; the f32 output differs from the reference only by f32
            // arithmetic.
            if c.bf16_out {
                tol::BF16_ROUNDING
            } else {
                tol::ATTENTION_SAME_CACHE
            },
        ))
    }

    /// The decode attention paths beside `attention`'s default (per-head kernel, separate merge launch): the merge
    /// in the kernel, then the softmax a round of keys at a time, each with and without the other, on E4B's decode
    /// shapes (GQA 8/2, head_dim 256 windowed in a ring and 512 full), bf16 output, prefill rows, 32 splits of
    /// 5000 keys, one kv head, no GQA, and a head_dim the 16-byte path does not take.
    pub fn attention_path_cases() -> Vec<AttentionCase> {
        let merged = AttentionPath {
            merge_in_kernel: true,
            ..AttentionPath::default()
        };
        let base = AttentionCase {
            path: merged,
            ..AttentionCase::DECODE
        };
        let long = AttentionCase {
            num_seqs: 1,
            context: 5000,
            head_dim: 512,
            capacity: 5001,
            max_keys: Some(5001),
            ..base
        };
        let rounds = |merge_in_kernel| AttentionPath {
            merge_in_kernel,
            softmax_per_round: true,
        };
        vec![
            // Merged in the kernel: few splits, a ring window with bf16 output, prefill rows, 32 splits, one
            // kv head, no GQA.
            base,
            AttentionCase {
                head_dim: 512,
                bf16_out: true,
                ..base
            },
            AttentionCase {
                bf16_out: true,
                context: 300,
                window: Some(16),
                capacity: 16,
                ..base
            },
            AttentionCase {
                context: 700,
                window: Some(512),
                capacity: 520,
                max_keys: Some(512),
                ..base
            },
            AttentionCase {
                context: 20,
                new_tokens: 9,
                window: Some(8),
                ..base
            },
            long,
            AttentionCase {
                kv_heads: 1,
                head_dim: 512,
                ..base
            },
            AttentionCase {
                heads: 4,
                kv_heads: 4,
                ..base
            },
            // A round of keys at a time: partial rounds (a few keys a warp), full ones (700 keys, window 512),
            // prefill rows, 32 splits of 5000 keys merged either way, one kv head, bf16 output, and head_dim 200
            // (the kernel's key-by-key fallback), and a single split with a round of two keys.
            AttentionCase {
                path: rounds(false),
                ..base
            },
            AttentionCase {
                path: rounds(true),
                head_dim: 512,
                bf16_out: true,
                ..base
            },
            AttentionCase {
                path: rounds(true),
                context: 700,
                window: Some(512),
                capacity: 520,
                max_keys: Some(512),
                ..base
            },
            AttentionCase {
                path: rounds(false),
                context: 20,
                new_tokens: 9,
                window: Some(8),
                ..base
            },
            AttentionCase {
                path: rounds(true),
                ..long
            },
            AttentionCase {
                path: rounds(false),
                ..long
            },
            AttentionCase {
                path: rounds(true),
                kv_heads: 1,
                head_dim: 512,
                ..base
            },
            AttentionCase {
                path: rounds(false),
                head_dim: 200,
                ..base
            },
            // One split of 48 keys: each warp takes a full round and a round of two, and the block writes the
            // normalised output itself.
            AttentionCase {
                path: rounds(false),
                num_seqs: 1,
                context: 47,
                max_keys: Some(48),
                ..base
            },
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::reference::*;

    #[test]
    fn attention_with_one_key_returns_its_value() {
        let s = AttentionShape {
            heads: 2,
            kv_heads: 1,
            head_dim: 2,
            hist_len: 1,
            window: None,
            scale: 1.0,
        };
        let out = attention(
            &[1.0, 0.0, 0.0, 1.0],
            &[5.0, 5.0],
            &[0.25, -1.0],
            &[0],
            &[0],
            s,
        );
        assert_eq!(out, vec![0.25, -1.0, 0.25, -1.0]);
    }
}
