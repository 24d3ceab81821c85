//! Reference checks of the VKAE path's fused and weight-streaming kernels (same rules as the parent
//! module: fresh random inputs, outputs poisoned first, tolerances from [`crate::tolerance`]).

use super::{bf16_round, poison_f32, CheckReport, Checker};
use crate::error::Result;
use crate::fused::QkvLayout;
use crate::ops::KvLayout;
use crate::reference as cpu;
use crate::rope::Rope;
use crate::tolerance::{self as tol, relative_error};
use half::bf16;

fn bf16_to_f32(v: &[bf16]) -> Vec<f32> {
    v.iter().map(|x| x.to_f32()).collect()
}

impl Checker<'_> {
    /// Fused residual add + RMSNorm: the updated residual (f32) and both bf16 outputs.
    pub fn residual_rms_norm(
        &mut self,
        rows: usize,
        cols: usize,
        with_branch: bool,
    ) -> Result<Vec<CheckReport>> {
        let g = self.gpu;
        let x = self.rng.normal_vec(rows * cols, 2.0);
        let o = self.rng.normal_vec(rows * cols, 5.0);
        let (w_post, w_next) = (
            self.rng.norm_weight_bf16(cols),
            self.rng.norm_weight_bf16(cols),
        );
        let s = (0.25 + self.rng.uniform()) as f32;
        let eps = 1e-6f32;
        let mut dx = g.upload(&x)?;
        let (dout, dwp, dwn) = (g.upload(&o)?, g.upload(&w_post)?, g.upload(&w_next)?);
        let mut on = g.upload(&vec![bf16::NAN; rows * cols])?;
        let mut ox = g.upload(&vec![bf16::NAN; rows * cols])?;
        g.residual_rms_norm(
            &mut dx,
            with_branch.then_some(&dout),
            Some(&dwp),
            s,
            Some(&dwn),
            Some(&mut on),
            Some(&mut ox),
            rows,
            cols,
            eps,
        )?;
        let (got_x, got_n, got_xb) = (
            g.download(&dx)?,
            bf16_to_f32(&g.download(&on)?),
            bf16_to_f32(&g.download(&ox)?),
        );
        let (want_x, want_n) = cpu::residual_rms_norm(
            &x,
            with_branch.then_some(&o[..]),
            Some(&w_post),
            s as f64,
            Some(&w_next),
            rows,
            cols,
            eps as f64,
        );
        let what = if with_branch { "x + norm(o)" } else { "x only" };
        let shape = format!("rows {rows} cols {cols} s {s:.3}");
        Ok(vec![
            CheckReport::new(
                format!("residual_rms_norm ({what}): x"),
                shape.clone(),
                relative_error(&got_x, &want_x),
                tol::F32_OP,
            ),
            CheckReport::new(
                format!("residual_rms_norm ({what}): bf16 norm"),
                shape.clone(),
                relative_error(&got_n, &want_n),
                tol::BF16_ROUNDING,
            ),
            CheckReport::new(
                format!("residual_rms_norm ({what}): bf16 x"),
                shape,
                relative_error(&got_xb, &want_x),
                tol::BF16_ROUNDING,
            ),
        ])
    }

    /// Fused q/k/v norms + RoPE + KV write. `values`: `Some(true)` separate v heads, `Some(false)` values
    /// are the raw keys (k = v), `None` a KV-shared layer (q only, no cache written).
    #[allow(clippy::too_many_arguments)]
    pub fn qk_norm_rope_kv(
        &mut self,
        tokens: usize,
        heads: usize,
        kv_heads: usize,
        rope: Rope,
        values: Option<bool>,
        capacity: usize,
    ) -> Result<Vec<CheckReport>> {
        let g = self.gpu;
        let hd = rope.head_dim();
        let kvh = if values.is_some() { kv_heads } else { 0 };
        let v_sep = values == Some(true);
        // Padded rows: the launch must honour the stride.
        let row_stride = (heads + kvh + if v_sep { kvh } else { 0 }) * hd + 8;
        let layout = QkvLayout {
            heads,
            kv_heads: kvh,
            head_dim: hd,
            row_stride,
            k_col: heads * hd,
            v_col: if v_sep {
                (heads + kvh) * hd
            } else {
                heads * hd
            },
        };
        let qkv = self.rng.normal_vec(tokens * row_stride, 2.0);
        let (q_norm, k_norm) = (self.rng.norm_weight_bf16(hd), self.rng.norm_weight_bf16(hd));
        let seqs = 2usize;
        let seq_ids: Vec<i32> = (0..tokens).map(|t| (t % seqs) as i32).collect();
        // Distinct slots per token (so no two tokens write one slot), positions past the capacity (ring).
        let positions: Vec<i32> = (0..tokens)
            .map(|t| (capacity * 3 + t / seqs) as i32)
            .collect();
        let inv_freq = rope.inv_freq();
        let eps = 1e-6f32;
        let kv = KvLayout {
            num_seqs: seqs,
            capacity,
            kv_heads: kv_heads.max(1),
            head_dim: hd,
        };
        let (dqkv, dqn, dkn, df) = (
            g.upload(&qkv)?,
            g.upload(&q_norm)?,
            g.upload(&k_norm)?,
            g.upload(&inv_freq)?,
        );
        let (ds, dp) = (g.upload(&seq_ids)?, g.upload(&positions)?);
        let mut q_out = poison_f32(g, tokens * heads * hd)?;
        let mut kc = g.upload(&vec![bf16::NAN; kv.elements()])?;
        let mut vc = g.upload(&vec![bf16::NAN; kv.elements()])?;
        g.qk_norm_rope_kv(
            &dqkv,
            layout,
            &mut q_out,
            &dqn,
            Some(&dkn),
            &df,
            &ds,
            &dp,
            tokens,
            (kvh > 0).then_some((kv, &mut kc, &mut vc)),
            eps,
        )?;
        let got_q = g.download(&q_out)?;
        let (got_k, got_v) = (
            bf16_to_f32(&g.download(&kc)?),
            bf16_to_f32(&g.download(&vc)?),
        );
        // Reference: gather each head kind, norm, rope.
        let gather = |col: usize, n: usize| -> Vec<f32> {
            (0..tokens)
                .flat_map(|t| qkv[t * row_stride + col..t * row_stride + col + n * hd].to_vec())
                .collect()
        };
        let q_n = cpu::rms_norm(
            &gather(0, heads),
            Some(&q_norm),
            eps as f64,
            tokens * heads,
            hd,
        );
        let q_n: Vec<f32> = q_n.iter().map(|&v| v as f32).collect();
        let want_q = cpu::rope(&q_n, &positions, &inv_freq, tokens, heads, hd);
        let shape = format!(
            "tokens {tokens} heads {heads}/{kvh} hd {hd} cap {capacity} {}",
            match values {
                Some(true) => "q|k|v",
                Some(false) => "q|k (k=v)",
                None => "q only (shared KV)",
            }
        );
        let name = "qk_norm_rope_kv";
        let mut r = vec![CheckReport::new(
            format!("{name}: q"),
            shape.clone(),
            relative_error(&got_q, &want_q),
            tol::F32_OP,
        )];
        // Untouched cache slots must keep the poison; written ones match the reference.
        let width = kv.kv_heads * hd;
        let mut written = vec![false; seqs * capacity];
        for t in 0..tokens {
            written[seq_ids[t] as usize * capacity + positions[t] as usize % capacity] = true;
        }
        let kept_poison = (0..seqs * capacity).filter(|&sl| !written[sl]).all(|sl| {
            got_k[sl * width..(sl + 1) * width]
                .iter()
                .all(|v| v.is_nan())
                && got_v[sl * width..(sl + 1) * width]
                    .iter()
                    .all(|v| v.is_nan())
        });
        if kvh > 0 {
            let k_n = cpu::rms_norm(
                &gather(layout.k_col, kvh),
                Some(&k_norm),
                eps as f64,
                tokens * kvh,
                hd,
            );
            let k_n: Vec<f32> = k_n.iter().map(|&v| v as f32).collect();
            let want_k = cpu::rope(&k_n, &positions, &inv_freq, tokens, kvh, hd);
            let want_v = cpu::rms_norm(
                &gather(layout.v_col, kvh),
                None,
                eps as f64,
                tokens * kvh,
                hd,
            );
            let pick = |cache: &[f32]| -> Vec<f32> {
                (0..tokens)
                    .flat_map(|t| {
                        let sl = seq_ids[t] as usize * capacity + positions[t] as usize % capacity;
                        cache[sl * width..(sl + 1) * width].to_vec()
                    })
                    .collect()
            };
            let poison = |e: f64| if kept_poison { e } else { f64::NAN };
            r.push(CheckReport::new(
                format!("{name}: k cache (bf16)"),
                shape.clone(),
                poison(relative_error(&pick(&got_k), &want_k)),
                tol::BF16_ROUNDING,
            ));
            r.push(CheckReport::new(
                format!("{name}: v cache (bf16)"),
                shape,
                poison(relative_error(&pick(&got_v), &want_v)),
                tol::BF16_ROUNDING,
            ));
        } else {
            // A q-only launch must not touch any cache.
            r.push(CheckReport::new(
                format!("{name}: caches untouched"),
                shape,
                if kept_poison { 0.0 } else { f64::NAN },
                0.0,
            ));
        }
        Ok(r)
    }

    /// Per-layer-input combine (one id out of range must give a NaN slice).
    pub fn ple_combine(
        &mut self,
        rows: usize,
        layers: usize,
        dim: usize,
        vocab: usize,
    ) -> Result<CheckReport> {
        let g = self.gpu;
        let width = layers * dim;
        let proj = self.rng.normal_vec(rows * width, 20.0);
        let table = self.rng.normal_bf16(vocab * width, 0.5);
        let ids: Vec<u32> = (0..rows)
            .map(|_| self.rng.below(vocab as u64) as u32)
            .collect();
        let norm_w = self.rng.norm_weight_bf16(dim);
        let scales = [1.0 / 2560f32.sqrt(), (dim as f32).sqrt(), 0.5f32.sqrt()];
        let (dp, dt, di, dn) = (
            g.upload(&proj)?,
            g.upload(&table)?,
            g.upload(&ids)?,
            g.upload(&norm_w)?,
        );
        let mut out = poison_f32(g, rows * width)?;
        g.ple_combine(
            &dp, &dt, &di, &dn, rows, layers, dim, scales, 1e-6, &mut out,
        )?;
        let got = g.download(&out)?;
        let want = cpu::ple_combine(
            &proj,
            &table,
            &ids,
            &norm_w,
            layers,
            dim,
            scales.map(|s| s as f64),
            1e-6,
        );
        Ok(CheckReport::new(
            "ple_combine",
            format!("rows {rows} layers {layers} dim {dim}"),
            relative_error(&got[..rows * width], &want),
            tol::F32_OP,
        ))
    }

    /// Soft-cap fused with the argmax: capped values written back (vs the f64 soft-cap), and the ids
    /// equal to the reference argmax of exactly those capped values (planted ties included).
    pub fn softcap_argmax(&mut self, rows: usize, cols: usize) -> Result<Vec<CheckReport>> {
        let g = self.gpu;
        let mut x = self.rng.normal_vec(rows * cols, 20.0);
        for r in 0..rows {
            // A planted tie after capping: two huge values saturate tanh to the same f32.
            let (a, b) = (
                self.rng.below(cols as u64) as usize,
                self.rng.below(cols as u64) as usize,
            );
            x[r * cols + a] = 1e4;
            x[r * cols + b] = 2e4;
        }
        let mut dx = g.upload(&x)?;
        let mut ids = g.upload(&vec![u32::MAX; rows])?;
        g.softcap_argmax(&mut dx, rows, cols, 30.0, true, &mut ids)?;
        let capped = g.download(&dx)?;
        let got = g.download(&ids)?;
        let want_ids = cpu::argmax_rows(&capped, rows, cols);
        let mut ro = g.upload(&x)?;
        let mut ids2 = g.upload(&vec![u32::MAX; rows])?;
        g.softcap_argmax(&mut ro, rows, cols, 30.0, false, &mut ids2)?;
        let (got2, untouched) = (g.download(&ids2)?, g.download(&ro)? == x);
        let mismatches = got.iter().zip(&want_ids).filter(|(a, b)| a != b).count()
            + got2.iter().zip(&want_ids).filter(|(a, b)| a != b).count();
        let shape = format!("rows {rows} cols {cols}");
        Ok(vec![
            CheckReport::new(
                "softcap_argmax: capped logits",
                shape.clone(),
                relative_error(&capped, &cpu::softcap(&x, 30.0)),
                tol::F32_OP,
            ),
            CheckReport::new(
                "softcap_argmax: ids (ties, read-only too)",
                shape,
                if untouched {
                    mismatches as f64
                } else {
                    f64::NAN
                },
                0.0,
            ),
        ])
    }

    /// GeGLU writing bf16.
    pub fn geglu_to_bf16(&mut self, rows: usize, n: usize) -> Result<CheckReport> {
        let g = self.gpu;
        let gu = self.rng.normal_vec(rows * 2 * n, 2.0);
        let d = g.upload(&gu)?;
        let mut out = g.upload(&vec![bf16::NAN; rows * n])?;
        g.geglu_to_bf16(&d, 2 * n, &d.slice(n..), 2 * n, rows, n, &mut out)?;
        let got = bf16_to_f32(&g.download(&out)?);
        Ok(CheckReport::new(
            "geglu_to_bf16 (fused gate|up)",
            format!("rows {rows} n {n}"),
            relative_error(&got, &cpu::geglu(&gu, 2 * n, &gu[n..], 2 * n, rows, n)),
            tol::BF16_ROUNDING,
        ))
    }

    /// The weight-streaming GEMV against the f64 product of the same bf16 operands (`sample_rows` of
    /// W checked when given; every output must be written).
    pub fn gemv(
        &mut self,
        m: usize,
        n: usize,
        k: usize,
        sample_rows: Option<usize>,
    ) -> Result<CheckReport> {
        self.gemv_split(m, n, k, None, sample_rows)
    }

    /// [`Checker::gemv`] with the k split across a block's warps given (`None`: the default choice).
    pub fn gemv_split(
        &mut self,
        m: usize,
        n: usize,
        k: usize,
        kparts: Option<usize>,
        sample_rows: Option<usize>,
    ) -> Result<CheckReport> {
        self.projection(
            "gemv_bf16 (weight streaming)",
            (m, n, k, kparts, sample_rows),
            tol::F32_ACCUMULATION,
            |g, x, w, y| match kparts {
                Some(p) => g.gemv_bf16_split(x, w, m, n, k, p, y),
                None => g.gemv_bf16(x, w, m, n, k, y),
            },
        )
    }

    /// A projection kernel (`y[m, n] = x[m, k] · w[n, k]ᵀ`, bf16 operands, f32 out) against the f64 product of the
    /// same bf16 operands: fresh x and a tiled random w (a chunk length that is no multiple of k, so tiled rows
    /// differ), y poisoned first; `sample_rows` of W checked when given (plus the last), every output must be
    /// written. `shape` = (m, n, k, kparts, sample_rows); `kparts` is only reported.
    pub(crate) fn projection(
        &mut self,
        label: &str,
        shape: (usize, usize, usize, Option<usize>, Option<usize>),
        tolerance: f64,
        launch: impl FnOnce(
            &crate::Gpu,
            &crate::CudaSlice<bf16>,
            &crate::CudaSlice<bf16>,
            &mut crate::CudaSlice<f32>,
        ) -> Result<()>,
    ) -> Result<CheckReport> {
        let (m, n, k, kparts, sample_rows) = shape;
        let g = self.gpu;
        let x = bf16_round(&self.rng.normal_vec(m * k, 1.0));
        let xb: Vec<bf16> = x.iter().map(|&v| bf16::from_f32(v)).collect();
        let chunk_len = (n * k).min((1 << 20) - 3);
        let chunk = self.rng.normal_bf16(chunk_len, 0.02);
        let (dx, dw) = (g.upload(&xb)?, g.upload_tiled(&chunk, n * k)?);
        let mut y = poison_f32(g, m * n)?;
        launch(g, &dx, &dw, &mut y)?;
        let got = g.download(&y)?;
        let cols: Vec<usize> = match sample_rows {
            Some(s) if s < n => {
                let mut c: Vec<usize> = (0..s).map(|_| self.rng.below(n as u64) as usize).collect();
                c.push(n - 1); // the ragged last row group
                c
            }
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
        let all_written = got[..m * n].iter().all(|v| v.is_finite());
        Ok(CheckReport::new(
            label,
            format!(
                "m {m} n {n} k {k} kparts {kparts:?}{}",
                if cols.len() < n {
                    format!(" ({} cols checked)", cols.len())
                } else {
                    String::new()
                }
            ),
            if all_written {
                relative_error(&gsub, &want)
            } else {
                f64::NAN
            },
            tolerance,
        ))
    }

    /// The GEMV with GeGLU in its epilogue, against the f64 product of the same bf16 operands followed by an
    /// f64 GeGLU: `halves` = the fused [gate; up] form (`n` outputs from `2n` rows), otherwise the gate times a
    /// strided f32 `z`. The bf16 output carries its own rounding, hence the bf16 tolerance.
    pub fn gemv_geglu(
        &mut self,
        m: usize,
        n: usize,
        k: usize,
        kparts: usize,
        halves: bool,
    ) -> Result<CheckReport> {
        let g = self.gpu;
        let rows = if halves { 2 * n } else { n };
        let x = bf16_round(&self.rng.normal_vec(m * k, 1.0));
        let xb: Vec<bf16> = x.iter().map(|&v| bf16::from_f32(v)).collect();
        // Weights scaled so the projections are O(1), where GeGLU is far from linear.
        let w = self.rng.normal_bf16(rows * k, 1.5 / (k as f64).sqrt());
        let z_stride = n + 7;
        let z = self.rng.normal_vec(m * z_stride, 1.0);
        let (dx, dw, dz) = (g.upload(&xb)?, g.upload(&w)?, g.upload(&z)?);
        let mut out = g.upload(&vec![bf16::NAN; m * n])?;
        if halves {
            g.gemv_bf16_geglu_halves(&dx, &dw, m, n, k, kparts, &mut out)?;
        } else {
            g.gemv_bf16_geglu_with(&dx, &dw, m, n, k, kparts, &dz, z_stride, &mut out)?;
        }
        let got = bf16_to_f32(&g.download(&out)?);
        let y = cpu::gemm(&x, &w, m, rows, k);
        let want: Vec<f64> = (0..m)
            .flat_map(|i| (0..n).map(move |j| (i, j)))
            .map(|(i, j)| {
                let other = if halves {
                    y[i * rows + n + j]
                } else {
                    z[i * z_stride + j] as f64
                };
                cpu::gelu_tanh(y[i * rows + j]) * other
            })
            .collect();
        Ok(CheckReport::new(
            if halves {
                "gemv_bf16 + GeGLU epilogue ([gate; up] halves)"
            } else {
                "gemv_bf16 + GeGLU epilogue (gate x z)"
            },
            format!("m {m} n {n} k {k} kparts {kparts}"),
            if got.iter().all(|v| v.is_finite()) {
                relative_error(&got, &want)
            } else {
                f64::NAN
            },
            tol::BF16_ROUNDING,
        ))
    }

    /// The decode-step bookkeeping: history row, positions + 1, step + 1, and no write past capacity.
    pub fn decode_advance(&mut self, batch: usize) -> Result<CheckReport> {
        let g = self.gpu;
        let cap_steps = 3usize;
        let ids: Vec<u32> = (0..batch).map(|_| self.rng.below(1000) as u32).collect();
        let pos: Vec<i32> = (0..batch).map(|_| self.rng.below(1000) as i32).collect();
        let di = g.upload(&ids)?;
        let mut hist = g.upload(&vec![u32::MAX; cap_steps * batch])?;
        let mut step = g.upload(&[1i32])?;
        let mut dp = g.upload(&pos)?;
        for _ in 0..3 {
            g.decode_advance(&di, &mut hist, &mut step, &mut dp, batch)?;
        }
        let (h, s, p) = (g.download(&hist)?, g.download(&step)?, g.download(&dp)?);
        let mut want_h = vec![u32::MAX; cap_steps * batch];
        want_h[batch..2 * batch].copy_from_slice(&ids);
        want_h[2 * batch..].copy_from_slice(&ids);
        let ok = h == want_h && s == [4] && p.iter().zip(&pos).all(|(a, b)| *a == b + 3);
        Ok(CheckReport::new(
            "decode_advance (3 steps, past capacity)",
            format!("batch {batch}"),
            if ok { 0.0 } else { f64::NAN },
            0.0,
        ))
    }

    /// Every fused-kernel check at test sizes (E4B head dims, GQA, rings, k = v, shared KV, odd sizes).
    pub fn fused_suite(&mut self) -> Result<Vec<CheckReport>> {
        let mut r = vec![];
        r.extend(self.residual_rms_norm(5, 2560, true)?);
        r.extend(self.residual_rms_norm(3, 100, false)?);
        let sliding = Rope::Default {
            theta: 1e4,
            head_dim: 256,
        };
        let global = Rope::Proportional {
            theta: 1e6,
            partial_rotary_factor: 0.25,
            head_dim: 512,
        };
        r.extend(self.qk_norm_rope_kv(6, 8, 2, sliding, Some(true), 5)?);
        r.extend(self.qk_norm_rope_kv(3, 8, 2, global, Some(false), 7)?);
        r.extend(self.qk_norm_rope_kv(4, 8, 2, sliding, None, 4)?);
        r.extend(self.qk_norm_rope_kv(
            5,
            4,
            1,
            Rope::Default {
                theta: 1e4,
                head_dim: 40,
            },
            Some(true),
            9,
        )?);
        r.push(self.ple_combine(3, 42, 256, 50)?);
        r.push(self.ple_combine(2, 3, 24, 10)?);
        r.extend(self.softcap_argmax(3, 262_144)?);
        r.extend(self.softcap_argmax(2, 1000)?);
        r.push(self.geglu_to_bf16(3, 10240)?);
        for (m, n, k) in [
            (1, 512, 2560),
            (3, 2048, 2560),
            (8, 2560, 10240),
            (5, 37, 64),
            (2, 256, 2560),
        ] {
            r.push(self.gemv(m, n, k, None)?);
        }
        r.push(self.gemv(1, 262_144, 2560, Some(64))?);
        for kparts in [1, 2, 4, 8] {
            r.push(self.gemv_split(1, 2560, 10240, Some(kparts), None)?);
            r.push(self.gemv_split(7, 300, 2048, Some(kparts), None)?);
        }
        // GeGLU epilogues: the E4B MLP (10240 of [gate; up] 20480 x 2560) and per-layer-input gate (256 x 2560),
        // plus ragged shapes whose last warp runs past the end.
        for (m, n, k, kparts, halves) in [
            (1, 10240, 2560, 1, true),
            (8, 10240, 2560, 1, true),
            (3, 37, 64, 8, true),
            (1, 256, 2560, 8, false),
            (5, 256, 2560, 8, false),
            (2, 45, 96, 2, false),
        ] {
            r.push(self.gemv_geglu(m, n, k, kparts, halves)?);
        }
        r.push(self.decode_advance(5)?);
        Ok(r)
    }
}
