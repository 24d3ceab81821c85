//! Reference checks: each runs one kernel on fresh random inputs, with its output poisoned (NaN,
//! or all-ones bits for integers) before the run, and compares with the f64 CPU reference in
//! [`crate::reference`] by `||out - ref|| / ||ref||` against a tolerance from
//! [`crate::tolerance`]. Used by the crate's GPU tests and by the micro-benchmark before timing.

use crate::error::Result;
use crate::gpu::Gpu;
use crate::ops::{AttentionPath, KvLayout};
use crate::reference::{self as cpu, AttentionShape};
use crate::rng::Rng;
use crate::rope::Rope;
use crate::tolerance::{self as tol, relative_error};
use cudarc::driver::CudaSlice;
use half::bf16;

mod fused;
mod gemm_lt;
mod skinny;

/// One check's outcome.
#[derive(Debug, Clone)]
pub struct CheckReport {
    /// Kernel and variant, e.g. "rms_norm (weight)".
    pub name: String,
    /// The sizes it ran at.
    pub shape: String,
    /// `||out - ref|| / ||ref||` (NaN if any output element was not finite, e.g. left poisoned).
    pub rel_err: f64,
    /// The tolerance it must meet.
    pub tol: f64,
}

impl CheckReport {
    fn new(name: impl Into<String>, shape: impl Into<String>, rel_err: f64, tol: f64) -> Self {
        Self {
            name: name.into(),
            shape: shape.into(),
            rel_err,
            tol,
        }
    }

    /// Finite and within tolerance.
    pub fn passed(&self) -> bool {
        tol::passes(self.rel_err, self.tol)
    }
}

impl std::fmt::Display for CheckReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{:<4} {:<34} {:<44} rel_err {:>9.3e} (tol {:.0e})",
            if self.passed() { "ok" } else { "FAIL" },
            self.name,
            self.shape,
            self.rel_err,
            self.tol
        )
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
    /// The key bound given to [`Gpu::attention_with_max_keys`] (None: plain [`Gpu::attention`]).
    pub max_keys: Option<usize>,
    /// Check the bf16 output of [`Gpu::attention_with_max_keys`] instead of the f32 output.
    pub bf16_out: bool,
    /// The kernel choice given to [`Gpu::attention_with_path`] (default: the per-head kernel and a separate
    /// merge launch).
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

/// Runs checks on one [`Gpu`] with one random stream.
pub struct Checker<'a> {
    gpu: &'a Gpu,
    rng: Rng,
}

fn poison_f32(gpu: &Gpu, n: usize) -> Result<CudaSlice<f32>> {
    gpu.upload(&vec![f32::NAN; n.max(1)])
}

fn bf16_round(v: &[f32]) -> Vec<f32> {
    v.iter().map(|&x| bf16::from_f32(x).to_f32()).collect()
}

impl<'a> Checker<'a> {
    pub fn new(gpu: &'a Gpu, seed: u64) -> Self {
        Self {
            gpu,
            rng: Rng::new(seed),
        }
    }

    /// Embedding gather (one id out of range must give a NaN row; checked separately).
    pub fn embed(&mut self, rows: usize, hidden: usize, vocab: usize) -> Result<CheckReport> {
        let g = self.gpu;
        let table = self.rng.normal_bf16(vocab * hidden, 0.02);
        let ids: Vec<u32> = (0..rows)
            .map(|_| self.rng.below(vocab as u64) as u32)
            .collect();
        let scale = (hidden as f32).sqrt();
        let (dt, di) = (g.upload(&table)?, g.upload(&ids)?);
        let mut out = poison_f32(g, rows * hidden)?;
        g.embed(&dt, &di, rows, hidden, scale, &mut out)?;
        let got = g.download(&out)?;
        let want = cpu::embed(&table, &ids, hidden, scale as f64);
        Ok(CheckReport::new(
            "embed",
            format!("rows {rows} hidden {hidden} vocab {vocab}"),
            relative_error(&got[..rows * hidden], &want),
            tol::F32_OP,
        ))
    }

    /// RMSNorm with or without weight, out of place or in place.
    pub fn rms_norm(
        &mut self,
        rows: usize,
        cols: usize,
        weighted: bool,
        inplace: bool,
    ) -> Result<CheckReport> {
        let g = self.gpu;
        let x = self.rng.normal_vec(rows * cols, 3.0);
        let w = self.rng.norm_weight_bf16(cols);
        let dw = g.upload(&w)?;
        let weight = weighted.then_some(&dw);
        let eps = 1e-6f32;
        let got = if inplace {
            let mut dx = g.upload(&x)?;
            g.rms_norm_inplace(&mut dx, weight, eps, rows, cols)?;
            g.download(&dx)?
        } else {
            let dx = g.upload(&x)?;
            let mut out = poison_f32(g, rows * cols)?;
            g.rms_norm(&dx, weight, eps, rows, cols, &mut out)?;
            g.download(&out)?
        };
        let want = cpu::rms_norm(&x, weighted.then_some(&w[..]), eps as f64, rows, cols);
        let name = format!(
            "rms_norm ({}{})",
            if weighted { "weight" } else { "scale-free" },
            if inplace { ", in place" } else { "" }
        );
        Ok(CheckReport::new(
            name,
            format!("rows {rows} cols {cols}"),
            relative_error(&got[..rows * cols], &want),
            tol::F32_OP,
        ))
    }

    /// RoPE in place at random positions below `max_pos`.
    pub fn rope(
        &mut self,
        tokens: usize,
        heads: usize,
        rope: Rope,
        max_pos: usize,
    ) -> Result<CheckReport> {
        let g = self.gpu;
        let hd = rope.head_dim();
        let x = self.rng.normal_vec(tokens * heads * hd, 1.0);
        let positions: Vec<i32> = (0..tokens)
            .map(|_| self.rng.below(max_pos as u64) as i32)
            .collect();
        let inv = rope.inv_freq();
        // Poison: the kernel works in place, so the check is that every element comes back finite
        // and rotated; untouched pairs (zero inv_freq) must equal the input, which the reference has.
        let mut dx = g.upload(&x)?;
        let (dp, df) = (g.upload(&positions)?, g.upload(&inv)?);
        g.rope(&mut dx, &dp, &df, tokens, heads, hd)?;
        let got = g.download(&dx)?;
        let want = cpu::rope(&x, &positions, &inv, tokens, heads, hd);
        let kind = match rope {
            Rope::Default { theta, .. } => format!("rope (default, theta {theta:e})"),
            Rope::Proportional {
                theta,
                partial_rotary_factor,
                ..
            } => {
                format!("rope (proportional {partial_rotary_factor}, {theta:e})")
            }
        };
        Ok(CheckReport::new(
            kind,
            format!("tokens {tokens} heads {heads} hd {hd} pos<{max_pos}"),
            relative_error(&got, &want),
            tol::F32_OP,
        ))
    }

    /// KV-cache write: written slots must hold bf16(k_new)/bf16(v_new) exactly, every other slot must
    /// keep its poison. Reported error: over written slots (NaN if any other slot changed).
    pub fn kv_append(
        &mut self,
        num_seqs: usize,
        tokens_per_seq: usize,
        kv_heads: usize,
        head_dim: usize,
    ) -> Result<CheckReport> {
        let g = self.gpu;
        let capacity = tokens_per_seq * 2 + 3;
        let layout = KvLayout {
            num_seqs,
            capacity,
            kv_heads,
            head_dim,
        };
        let width = kv_heads * head_dim;
        let tokens = num_seqs * tokens_per_seq;
        let k = self.rng.normal_vec(tokens * width, 1.0);
        let v = self.rng.normal_vec(tokens * width, 1.0);
        let seq_ids: Vec<i32> = (0..tokens).map(|t| (t / tokens_per_seq) as i32).collect();
        // Distinct random positions per sequence, some past capacity (ring slots).
        let mut positions = Vec::with_capacity(tokens);
        for _ in 0..num_seqs {
            let start = self.rng.below(4 * capacity as u64) as usize;
            positions.extend((0..tokens_per_seq).map(|i| (start + 2 * i) as i32));
        }
        let poison = vec![bf16::NAN; layout.elements()];
        let mut kc = g.upload(&poison)?;
        let mut vc = g.upload(&poison)?;
        let (dk, dv, ds, dp) = (
            g.upload(&k)?,
            g.upload(&v)?,
            g.upload(&seq_ids)?,
            g.upload(&positions)?,
        );
        g.kv_append(&dk, &dv, &ds, &dp, tokens, layout, &mut kc, &mut vc)?;
        let (kh, vh) = (g.download(&kc)?, g.download(&vc)?);
        let mut got = Vec::new();
        let mut want = Vec::new();
        let mut written = vec![false; num_seqs * capacity];
        for t in 0..tokens {
            let slot = seq_ids[t] as usize * capacity + positions[t] as usize % capacity;
            written[slot] = true;
            for i in 0..width {
                got.push(kh[slot * width + i].to_f32());
                want.push(bf16::from_f32(k[t * width + i]).to_f64());
                got.push(vh[slot * width + i].to_f32());
                want.push(bf16::from_f32(v[t * width + i]).to_f64());
            }
        }
        let untouched_kept = written
            .iter()
            .enumerate()
            .filter(|(_, w)| !**w)
            .all(|(slot, _)| {
                (0..width).all(|i| kh[slot * width + i].is_nan() && vh[slot * width + i].is_nan())
            });
        let err = if untouched_kept {
            relative_error(&got, &want)
        } else {
            f64::NAN
        };
        Ok(CheckReport::new(
            "kv_append",
            format!("seqs {num_seqs} x {tokens_per_seq} kvh {kv_heads} hd {head_dim}"),
            err,
            tol::F32_OP,
        ))
    }

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
            g.kv_append(&dk, &dv, &ds, &dp, toks.len(), layout, kc, vc)
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
        let got: Vec<f32> = if c.bf16_out {
            let mut out = g.upload(&vec![bf16::NAN; tokens * c.heads * hd])?;
            g.attention_with_path(
                &dq, &kc, &vc, &ds, &dp, tokens, c.heads, layout, c.window, 1.0, c.max_keys,
                c.path, &mut out,
            )?;
            g.download(&out)?.iter().map(|v| v.to_f32()).collect()
        } else {
            let mut out = poison_f32(g, tokens * c.heads * hd)?;
            g.attention_with_path(
                &dq, &kc, &vc, &ds, &dp, tokens, c.heads, layout, c.window, 1.0, c.max_keys,
                c.path, &mut out,
            )?;
            g.download(&out)?
        };
        let shape = AttentionShape {
            heads: c.heads,
            kv_heads: c.kv_heads,
            head_dim: hd,
            hist_len,
            window: c.window,
            scale: 1.0,
        };
        let want = cpu::attention(
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

    /// GeGLU with separate gate/up tensors, or the two halves of one fused `[rows, 2n]` tensor.
    pub fn geglu(&mut self, rows: usize, n: usize, fused: bool) -> Result<CheckReport> {
        let g = self.gpu;
        let mut out = poison_f32(g, rows * n)?;
        let (got, want) = if fused {
            let gu = self.rng.normal_vec(rows * 2 * n, 2.0);
            let d = g.upload(&gu)?;
            g.geglu(&d, 2 * n, &d.slice(n..), 2 * n, rows, n, &mut out)?;
            (
                g.download(&out)?,
                cpu::geglu(&gu, 2 * n, &gu[n..], 2 * n, rows, n),
            )
        } else {
            let gate = self.rng.normal_vec(rows * n, 2.0);
            let up = self.rng.normal_vec(rows * n, 1.0);
            let (dg, du) = (g.upload(&gate)?, g.upload(&up)?);
            g.geglu(&dg, n, &du, n, rows, n, &mut out)?;
            (g.download(&out)?, cpu::geglu(&gate, n, &up, n, rows, n))
        };
        Ok(CheckReport::new(
            if fused {
                "geglu (fused gate|up)"
            } else {
                "geglu"
            },
            format!("rows {rows} n {n}"),
            relative_error(&got[..rows * n], &want),
            tol::F32_OP,
        ))
    }

    /// Residual add (out of place and in place) and scale.
    pub fn residual(&mut self, n: usize) -> Result<Vec<CheckReport>> {
        let g = self.gpu;
        let a = self.rng.normal_vec(n, 1.0);
        let b = self.rng.normal_vec(n, 1.0);
        let s = (0.5 + self.rng.uniform()) as f32;
        let (da, db) = (g.upload(&a)?, g.upload(&b)?);
        let mut out = poison_f32(g, n)?;
        g.add(&da, &db, n, &mut out)?;
        let add = relative_error(&g.download(&out)?[..n], &cpu::add(&a, &b));
        let mut acc = g.upload(&a)?;
        g.add_inplace(&mut acc, &db, n)?;
        let add_in = relative_error(&g.download(&acc)?, &cpu::add(&a, &b));
        let mut out = poison_f32(g, n)?;
        g.scale(&da, s, n, &mut out)?;
        let scale = relative_error(&g.download(&out)?[..n], &cpu::scale(&a, s as f64));
        let mut x = g.upload(&a)?;
        g.scale_inplace(&mut x, s, n)?;
        let scale_in = relative_error(&g.download(&x)?, &cpu::scale(&a, s as f64));
        let shape = format!("n {n}");
        Ok(vec![
            CheckReport::new("add", shape.clone(), add, tol::F32_OP),
            CheckReport::new("add (in place)", shape.clone(), add_in, tol::F32_OP),
            CheckReport::new("scale", shape.clone(), scale, tol::F32_OP),
            CheckReport::new("scale (in place)", shape, scale_in, tol::F32_OP),
        ])
    }

    /// Final-logit softcap (cap 30) on values spread well past the cap.
    pub fn softcap(&mut self, n: usize) -> Result<CheckReport> {
        let g = self.gpu;
        let x = self.rng.normal_vec(n, 40.0);
        let mut d = g.upload(&x)?;
        g.softcap_inplace(&mut d, 30.0, n)?;
        Ok(CheckReport::new(
            "softcap",
            format!("n {n} cap 30"),
            relative_error(&g.download(&d)?, &cpu::softcap(&x, 30.0)),
            tol::F32_OP,
        ))
    }

    /// Greedy argmax; each row gets a planted tie of its maximum at two indices (the lower must
    /// win). Reported error: the fraction of rows whose index differs from the reference.
    pub fn argmax(&mut self, rows: usize, cols: usize) -> Result<CheckReport> {
        let g = self.gpu;
        let mut x = self.rng.normal_vec(rows * cols, 1.0);
        for r in 0..rows {
            let a = self.rng.below(cols as u64) as usize;
            let b = self.rng.below(cols as u64) as usize;
            let top = 10.0 + self.rng.uniform() as f32;
            x[r * cols + a] = top;
            x[r * cols + b] = top;
        }
        let d = g.upload(&x)?;
        let mut out = g.upload(&vec![u32::MAX; rows])?;
        g.argmax_rows(&d, rows, cols, &mut out)?;
        let got = g.download(&out)?;
        let want = cpu::argmax_rows(&x, rows, cols);
        let wrong = got.iter().zip(&want).filter(|(a, b)| a != b).count();
        Ok(CheckReport::new(
            "argmax_rows (planted ties)",
            format!("rows {rows} cols {cols}"),
            wrong as f64 / rows as f64,
            0.0,
        ))
    }

    /// Both casts. f32 -> bf16 must equal round-to-nearest-even bit for bit (else NaN is reported)
    /// and is measured against the unrounded values; bf16 -> f32 is exact.
    pub fn casts(&mut self, n: usize) -> Result<Vec<CheckReport>> {
        let g = self.gpu;
        let x = self.rng.normal_vec(n, 10.0);
        let dx = g.upload(&x)?;
        let mut b = g.upload(&vec![bf16::NAN; n])?;
        g.cast_f32_to_bf16(&dx, n, &mut b)?;
        let got = g.download(&b)?;
        let bit_exact = got
            .iter()
            .zip(&x)
            .all(|(a, &v)| a.to_bits() == bf16::from_f32(v).to_bits());
        let gotf: Vec<f32> = got.iter().map(|v| v.to_f32()).collect();
        let want: Vec<f64> = x.iter().map(|&v| v as f64).collect();
        let e1 = if bit_exact {
            relative_error(&gotf, &want)
        } else {
            f64::NAN
        };
        let src = self.rng.normal_bf16(n, 10.0);
        let ds = g.upload(&src)?;
        let mut out = poison_f32(g, n)?;
        g.cast_bf16_to_f32(&ds, n, &mut out)?;
        let want2: Vec<f64> = src.iter().map(|v| v.to_f64()).collect();
        let e2 = relative_error(&g.download(&out)?[..n], &want2);
        Ok(vec![
            CheckReport::new(
                "cast f32->bf16 (bit-exact RNE)",
                format!("n {n}"),
                e1,
                tol::BF16_ROUNDING,
            ),
            CheckReport::new("cast bf16->f32", format!("n {n}"), e2, 0.0),
        ])
    }

    /// The cuBLAS projection through [`Gpu::linear`] (f32 activation cast to bf16), compared with the
    /// f64 product of the unrounded activation; `sample_rows` of W (output columns) are checked when
    /// given, to keep the CPU reference short at LM-head sizes.
    pub fn linear(
        &mut self,
        m: usize,
        n: usize,
        k: usize,
        sample_rows: Option<usize>,
    ) -> Result<CheckReport> {
        let g = self.gpu;
        let x = self.rng.normal_vec(m * k, 1.0);
        // W is a random chunk tiled over [n, k] (a length prime to k, so rows differ): LM-head-size
        // weights without a host array of their full size.
        let chunk_len = (n * k).min((1 << 20) - 3);
        let chunk = self.rng.normal_bf16(chunk_len, 0.02);
        let (dx, dw) = (g.upload(&x)?, g.upload_tiled(&chunk, n * k)?);
        let mut y = poison_f32(g, m * n)?;
        g.linear(&dx, &dw, m, n, k, &mut y)?;
        let got = g.download(&y)?;
        let cols: Vec<usize> = match sample_rows {
            Some(s) if s < n => (0..s).map(|_| self.rng.below(n as u64) as usize).collect(),
            _ => (0..n).collect(),
        };
        let wsub: Vec<bf16> = cols
            .iter()
            .flat_map(|&j| (0..k).map(move |i| (j * k + i) % chunk_len))
            .map(|idx| chunk[idx])
            .collect();
        let want = cpu::gemm(&x, &wsub, m, cols.len(), k);
        let gsub: Vec<f32> = (0..m)
            .flat_map(|i| cols.iter().map(move |&j| (i, j)))
            .map(|(i, j)| got[i * n + j])
            .collect();
        // Every element must have been written, sampled or not.
        let all_written = got[..m * n].iter().all(|v| v.is_finite());
        let err = if all_written {
            relative_error(&gsub, &want)
        } else {
            f64::NAN
        };
        Ok(CheckReport::new(
            "linear (cuBLAS bf16, f32 acc)",
            format!(
                "m {m} n {n} k {k}{}",
                if cols.len() < n {
                    format!(" ({} cols checked)", cols.len())
                } else {
                    String::new()
                }
            ),
            err,
            tol::BF16_OPERANDS,
        ))
    }

    /// The whole suite at test sizes (small enough for a quick run, large enough to cover
    /// multi-block rows, E4B head dims, GQA, windows, rings and ragged batches).
    pub fn suite(&mut self) -> Result<Vec<CheckReport>> {
        let mut r = vec![
            self.embed(7, 2560, 1000)?,
            self.embed(5, 100, 50)?,
            self.rms_norm(9, 2560, true, false)?,
            self.rms_norm(9, 2560, false, false)?,
            self.rms_norm(33, 256, true, true)?,
            self.rms_norm(4, 100, false, true)?,
            self.rope(
                5,
                8,
                Rope::Default {
                    theta: 1e4,
                    head_dim: 256,
                },
                131072,
            )?,
            self.rope(
                5,
                2,
                Rope::Proportional {
                    theta: 1e6,
                    partial_rotary_factor: 0.25,
                    head_dim: 512,
                },
                131072,
            )?,
            self.rope(
                3,
                4,
                Rope::Default {
                    theta: 1e4,
                    head_dim: 64,
                },
                4096,
            )?,
            self.kv_append(3, 5, 2, 256)?,
            self.kv_append(2, 4, 1, 48)?,
        ];
        let base = AttentionCase::DECODE;
        for c in [
            base, // decode, full
            AttentionCase {
                bf16_out: true,
                ..base
            }, // bf16 output (split partials merged by the combine)
            AttentionCase {
                head_dim: 512,
                ..base
            }, // global head dim
            AttentionCase {
                context: 0,
                new_tokens: 17,
                ..base
            }, // prefill from empty
            AttentionCase {
                context: 20,
                new_tokens: 9,
                window: Some(8),
                ..base
            }, // prefill chunk, window
            AttentionCase {
                context: 300,
                window: Some(16),
                capacity: 16,
                ..base
            }, // decode, ring = window
            AttentionCase {
                context: 100,
                new_tokens: 4,
                window: Some(32),
                capacity: 35,
                ..base
            }, // ring, 4 new
            AttentionCase {
                heads: 4,
                kv_heads: 1,
                head_dim: 40,
                context: 10,
                new_tokens: 3,
                ..base
            }, // odd small hd
            AttentionCase {
                num_seqs: 1,
                context: 3,
                ..base
            }, // more splits than keys
            AttentionCase {
                num_seqs: 1,
                context: 150,
                capacity: 160,
                max_keys: Some(151),
                ..base
            }, // splits from the context: 3
            AttentionCase {
                context: 100,
                window: Some(32),
                capacity: 35,
                max_keys: Some(32),
                ..base
            }, // one split (no combine), ring
        ] {
            r.push(self.attention(c)?);
        }
        for c in Self::attention_path_cases() {
            r.push(self.attention(c)?);
        }
        r.push(self.geglu(5, 10240, false)?);
        r.push(self.geglu(3, 1000, true)?);
        r.extend(self.residual(100_003)?);
        r.push(self.softcap(100_003)?);
        r.push(self.argmax(4, 262_144)?);
        r.push(self.argmax(3, 1000)?);
        r.extend(self.casts(100_003)?);
        r.push(self.linear(3, 512, 2560, None)?);
        r.push(self.linear(8, 2048, 2560, None)?);
        r.push(self.linear(1, 1000, 100, None)?);
        Ok(r)
    }
}
