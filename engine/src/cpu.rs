//! The CPU reference forward pass, in f32 arithmetic, following transformers' Gemma 4 text decoder op for op.
//! Weights stay in their stored type (BF16 or F32) and are widened row by row; matrix products are split
//! over output rows with rayon.

use rayon::prelude::*;

use crate::config::{LayerKind, TextConfig};
use crate::weights::{LayerWeights, Model};

thread_local! {
    static EMULATE_BF16: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Runs `f` with the CPU rounding what the GPU path stores in BF16 (projection inputs and the KV cache), on
/// this thread only: it tells BF16 rounding apart from a bug when the GPU and the f32 reference disagree.
pub fn emulating_bf16<R>(f: impl FnOnce() -> R) -> R {
    let before = EMULATE_BF16.with(|e| e.replace(true));
    let r = f();
    EMULATE_BF16.with(|e| e.set(before));
    r
}

fn emulate_bf16() -> bool {
    EMULATE_BF16.with(|e| e.get())
}

#[inline]
fn round_bf16(v: f32) -> f32 {
    crate::tensor::bf16_to_f32(crate::tensor::f32_to_bf16(v))
}

/// `y[t][o] = sum_i x[t][i] * w[o][i]` for `x: [tokens, in]`, `w: [out, in]` (a 2-D view of `w`).
pub fn matmul(
    x: &[f32],
    tokens: usize,
    w: &crate::tensor::Tensor,
    out_rows: usize,
    in_cols: usize,
) -> Vec<f32> {
    matmul_rows(x, tokens, w, 0, out_rows, in_cols)
}

/// Like `matmul` but over rows `[row0, row0 + out_rows)` of `w` (used for one expert of a stacked tensor).
pub fn matmul_rows(
    x: &[f32],
    tokens: usize,
    w: &crate::tensor::Tensor,
    row0: usize,
    out_rows: usize,
    in_cols: usize,
) -> Vec<f32> {
    debug_assert_eq!(x.len(), tokens * in_cols);
    let rounded: Vec<f32>;
    let x = if emulate_bf16() {
        rounded = x.iter().map(|&v| round_bf16(v)).collect();
        &rounded[..]
    } else {
        x
    };
    const CHUNK: usize = 32;
    let mut yt = vec![0f32; out_rows * tokens]; // [out][tokens]
    yt.par_chunks_mut(CHUNK * tokens)
        .enumerate()
        .for_each(|(c, block)| {
            let mut row = vec![0f32; in_cols];
            for (r, outs) in block.chunks_mut(tokens).enumerate() {
                w.row_into(row0 + c * CHUNK + r, in_cols, &mut row);
                for (t, o) in outs.iter_mut().enumerate() {
                    *o = dot(&row, &x[t * in_cols..(t + 1) * in_cols]);
                }
            }
        });
    let mut y = vec![0f32; tokens * out_rows];
    for o in 0..out_rows {
        for t in 0..tokens {
            y[t * out_rows + o] = yt[o * tokens + t];
        }
    }
    y
}

#[inline]
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let n8 = a.len() / 8 * 8;
    for i in (0..n8).step_by(8) {
        for k in 0..8 {
            acc[k] += a[i + k] * b[i + k];
        }
    }
    let mut s = 0f32;
    for i in n8..a.len() {
        s += a[i] * b[i];
    }
    ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7])) + s
}

/// RMSNorm over rows of width `w`: `x * (mean(x^2) + eps)^-0.5`, times `weight` when given (plain weight,
/// not Gemma 3's `1 + weight`).
pub fn rms_norm(x: &mut [f32], width: usize, weight: Option<&[f32]>, eps: f32) {
    for row in x.chunks_mut(width) {
        let ms = row.iter().map(|v| v * v).sum::<f32>() / width as f32 + eps;
        let inv = ms.powf(-0.5);
        match weight {
            Some(w) => row.iter_mut().zip(w).for_each(|(v, w)| *v = *v * inv * w),
            None => row.iter_mut().for_each(|v| *v *= inv),
        }
    }
}

#[inline]
pub fn gelu_tanh(x: f32) -> f32 {
    const C: f32 = 0.797_884_6; // sqrt(2/pi)
    0.5 * x * (1.0 + (C * (x + 0.044715 * x * x * x)).tanh())
}

/// Rotates `x` (`heads` rows of `head_dim`) at position `pos`: pairs `(i, i + head_dim/2)`.
pub fn rope(x: &mut [f32], head_dim: usize, pos: usize, inv_freq: &[f32]) {
    let half = head_dim / 2;
    let (cos, sin): (Vec<f32>, Vec<f32>) = inv_freq
        .iter()
        .map(|f| {
            let a = pos as f32 * f;
            (a.cos(), a.sin())
        })
        .unzip();
    for head in x.chunks_mut(head_dim) {
        for i in 0..half {
            let (x1, x2) = (head[i], head[i + half]);
            head[i] = x1 * cos[i] - x2 * sin[i];
            head[i + half] = x2 * cos[i] + x1 * sin[i];
        }
    }
}

pub fn softcap(logits: &mut [f32], cap: Option<f64>) {
    if let Some(c) = cap {
        let c = c as f32;
        logits.iter_mut().for_each(|v| *v = (*v / c).tanh() * c);
    }
}

/// K/V of one cache-owning layer: `[positions][kv_heads * head_dim]`, appended as tokens arrive.
#[derive(Default, Clone)]
struct LayerCache {
    k: Vec<f32>,
    v: Vec<f32>,
}

/// One sequence's decoding state on the CPU.
pub struct CpuSession<'m> {
    model: &'m Model,
    caches: Vec<LayerCache>,
    inv_freq_sliding: Vec<f32>,
    inv_freq_full: Vec<f32>,
    /// Positions already in the cache.
    pub pos: usize,
    norms: Vec<LayerNorms>,
    final_norm: Vec<f32>,
}

struct LayerNorms {
    input: Vec<f32>,
    post_attn: Vec<f32>,
    pre_ff: Vec<f32>,
    post_ff: Vec<f32>,
    q: Vec<f32>,
    k: Option<Vec<f32>>,
}

impl<'m> CpuSession<'m> {
    pub fn new(model: &'m Model) -> Self {
        let c = &model.config;
        let norms = model
            .layers
            .iter()
            .map(|l| LayerNorms {
                input: l.input_norm.to_f32().into_owned(),
                post_attn: l.post_attn_norm.to_f32().into_owned(),
                pre_ff: l.pre_ff_norm.to_f32().into_owned(),
                post_ff: l.post_ff_norm.to_f32().into_owned(),
                q: l.attn.q_norm.to_f32().into_owned(),
                k: l.attn.k_norm.as_ref().map(|t| t.to_f32().into_owned()),
            })
            .collect();
        CpuSession {
            model,
            caches: vec![LayerCache::default(); c.num_hidden_layers],
            inv_freq_sliding: c.rope_sliding.inv_freq(c.head_dim),
            inv_freq_full: c.rope_full.inv_freq(c.global_head_dim),
            pos: 0,
            norms,
            final_norm: model.final_norm.to_f32().into_owned(),
        }
    }

    /// Runs `ids` (placed after the cached positions) through the decoder. Returns the soft-capped logits of
    /// every position when `all_logits`, else of the last one only (`[n, vocab]` row-major).
    pub fn forward(&mut self, ids: &[u32], all_logits: bool) -> Vec<f32> {
        let m = self.model;
        let c = &m.config;
        let h = c.hidden_size;
        let t = ids.len();
        let eps = c.rms_norm_eps as f32;
        // Embedding * sqrt(hidden) (the scale is an f32 of the f64 root, as transformers stores it).
        let scale = (h as f64).sqrt() as f32;
        let mut x = vec![0f32; t * h];
        for (i, &id) in ids.iter().enumerate() {
            m.embed.row_into(id as usize, h, &mut x[i * h..(i + 1) * h]);
            x[i * h..(i + 1) * h].iter_mut().for_each(|v| *v *= scale);
        }
        let ple = self.per_layer_inputs(ids, &x);
        for (li, layer) in m.layers.iter().enumerate() {
            self.layer(
                li,
                layer,
                &mut x,
                ple.as_ref().map(|p| (p.as_slice(), li)),
                t,
                eps,
            );
        }
        self.pos += t;
        let rows: Vec<usize> = if all_logits {
            (0..t).collect()
        } else {
            vec![t - 1]
        };
        let mut hsel: Vec<f32> = rows
            .iter()
            .flat_map(|&r| x[r * h..(r + 1) * h].to_vec())
            .collect();
        rms_norm(&mut hsel, h, Some(&self.final_norm), eps);
        let mut logits = matmul(&hsel, rows.len(), m.lm_head(), c.vocab_size, h);
        softcap(&mut logits, c.final_logit_softcapping);
        logits
    }

    /// Per-layer inputs `[tokens, layers, ple_dim]` (E-models), or `None`.
    fn per_layer_inputs(&self, ids: &[u32], x: &[f32]) -> Option<Vec<f32>> {
        let m = self.model;
        let c = &m.config;
        let p = m.ple.as_ref()?;
        let (h, pd, nl) = (
            c.hidden_size,
            c.hidden_size_per_layer_input,
            c.num_hidden_layers,
        );
        let t = ids.len();
        let mut proj = matmul(x, t, &p.model_projection, nl * pd, h);
        let proj_scale = (h as f64).powf(-0.5) as f32;
        proj.iter_mut().for_each(|v| *v *= proj_scale);
        let norm_w = p.projection_norm.to_f32();
        rms_norm(&mut proj, pd, Some(&norm_w), c.rms_norm_eps as f32);
        let table_scale = (pd as f64).sqrt() as f32;
        let combine = 2f64.powf(-0.5) as f32;
        let mut row = vec![0f32; nl * pd];
        for (i, &id) in ids.iter().enumerate() {
            p.table.row_into(id as usize, nl * pd, &mut row);
            for (o, r) in proj[i * nl * pd..(i + 1) * nl * pd].iter_mut().zip(&row) {
                *o = (*o + r * table_scale) * combine;
            }
        }
        Some(proj)
    }

    fn layer(
        &mut self,
        li: usize,
        l: &LayerWeights,
        x: &mut [f32],
        ple: Option<(&[f32], usize)>,
        t: usize,
        eps: f32,
    ) {
        let c = &self.model.config;
        let h = c.hidden_size;
        // Attention with sandwich norms.
        let mut a = x.to_vec();
        rms_norm(&mut a, h, Some(&self.norms[li].input), eps);
        let mut a = self.attention(li, l, &a, t, eps);
        rms_norm(&mut a, h, Some(&self.norms[li].post_attn), eps);
        x.iter_mut().zip(&a).for_each(|(x, a)| *x += a);
        // Feed-forward (dense GeGLU, plus the routed experts on MoE layers).
        let residual = x.to_vec();
        let mut f = residual.clone();
        rms_norm(&mut f, h, Some(&self.norms[li].pre_ff), eps);
        let mut f = geglu(&f, t, h, &l.gate, &l.up, &l.down, l.spec.intermediate_size);
        if let Some(moe) = &l.moe {
            rms_norm(&mut f, h, Some(&moe.post_ff_norm_1.to_f32()), eps);
            let e = moe_block(c, moe, &residual, t, eps);
            f.iter_mut().zip(&e).for_each(|(f, e)| *f += e);
        }
        rms_norm(&mut f, h, Some(&self.norms[li].post_ff), eps);
        x.iter_mut().zip(&f).for_each(|(x, f)| *x += f);
        // Per-layer input branch (E-models).
        if let (Some(p), Some((ple, idx))) = (&l.ple, ple) {
            let (pd, nl) = (c.hidden_size_per_layer_input, c.num_hidden_layers);
            let mut g = matmul(x, t, &p.gate, pd, h);
            for tok in 0..t {
                let slice = &ple[(tok * nl + idx) * pd..(tok * nl + idx + 1) * pd];
                for (gv, s) in g[tok * pd..(tok + 1) * pd].iter_mut().zip(slice) {
                    *gv = gelu_tanh(*gv) * s;
                }
            }
            let mut pr = matmul(&g, t, &p.projection, h, pd);
            rms_norm(&mut pr, h, Some(&p.post_norm.to_f32()), eps);
            x.iter_mut().zip(&pr).for_each(|(x, p)| *x += p);
        }
        x.iter_mut().for_each(|v| *v *= l.layer_scalar);
    }

    fn attention(
        &mut self,
        li: usize,
        l: &LayerWeights,
        a: &[f32],
        t: usize,
        eps: f32,
    ) -> Vec<f32> {
        let c = &self.model.config;
        let h = c.hidden_size;
        let spec = &l.spec;
        let hd = spec.head_dim;
        let nh = c.num_attention_heads;
        let kvh = spec.kv_heads;
        let inv_freq = match spec.kind {
            LayerKind::Sliding => &self.inv_freq_sliding,
            LayerKind::Full => &self.inv_freq_full,
        };
        let mut q = matmul(a, t, &l.attn.q_proj, nh * hd, h);
        rms_norm(&mut q, hd, Some(&self.norms[li].q), eps);
        for tok in 0..t {
            rope(
                &mut q[tok * nh * hd..(tok + 1) * nh * hd],
                hd,
                self.pos + tok,
                inv_freq,
            );
        }
        let owner = spec.kv_source.unwrap_or(li);
        if spec.kv_source.is_none() {
            let kp = l.attn.k_proj.as_ref().expect("owner layer has k_proj");
            let raw_k = matmul(a, t, kp, kvh * hd, h);
            // k=v global layers take values from the key projection (before k_norm and rope).
            let mut v = match &l.attn.v_proj {
                Some(vp) => matmul(a, t, vp, kvh * hd, h),
                None => raw_k.clone(),
            };
            let mut k = raw_k;
            rms_norm(&mut k, hd, self.norms[li].k.as_deref(), eps);
            for tok in 0..t {
                rope(
                    &mut k[tok * kvh * hd..(tok + 1) * kvh * hd],
                    hd,
                    self.pos + tok,
                    inv_freq,
                );
            }
            rms_norm(&mut v, hd, None, eps);
            if emulate_bf16() {
                k.iter_mut()
                    .chain(v.iter_mut())
                    .for_each(|x| *x = round_bf16(*x));
            }
            let cache = &mut self.caches[li];
            cache.k.extend_from_slice(&k);
            cache.v.extend_from_slice(&v);
        }
        let cache = &self.caches[owner];
        let group = nh / kvh;
        let total = self.pos + t;
        debug_assert_eq!(cache.k.len(), total * kvh * hd);
        let mut out = vec![0f32; t * nh * hd];
        out.par_chunks_mut(nh * hd)
            .enumerate()
            .for_each(|(tok, o)| {
                let p = self.pos + tok;
                let lo = if spec.window == usize::MAX {
                    0
                } else {
                    (p + 1).saturating_sub(spec.window)
                };
                let mut scores = vec![0f32; p + 1 - lo];
                for head in 0..nh {
                    let g = head / group;
                    let qh = &q[(tok * nh + head) * hd..(tok * nh + head + 1) * hd];
                    for (j, s) in (lo..=p).zip(scores.iter_mut()) {
                        // Attention scaling is 1.0 (q_norm/k_norm replace 1/sqrt(d)).
                        *s = dot(qh, &cache.k[(j * kvh + g) * hd..(j * kvh + g + 1) * hd]);
                    }
                    let mx = scores.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
                    let mut sum = 0f32;
                    scores.iter_mut().for_each(|s| {
                        *s = (*s - mx).exp();
                        sum += *s;
                    });
                    let oh = &mut o[head * hd..(head + 1) * hd];
                    for (j, s) in (lo..=p).zip(scores.iter()) {
                        let w = s / sum;
                        let vj = &cache.v[(j * kvh + g) * hd..(j * kvh + g + 1) * hd];
                        oh.iter_mut().zip(vj).for_each(|(o, v)| *o += w * v);
                    }
                }
            });
        matmul(&out, t, &l.attn.o_proj, h, nh * hd)
    }
}

/// `down(gelu_tanh(gate(x)) * up(x))`.
fn geglu(
    x: &[f32],
    t: usize,
    h: usize,
    gate: &crate::tensor::Tensor,
    up: &crate::tensor::Tensor,
    down: &crate::tensor::Tensor,
    inter: usize,
) -> Vec<f32> {
    let g = matmul(x, t, gate, inter, h);
    let u = matmul(x, t, up, inter, h);
    let act: Vec<f32> = g.iter().zip(&u).map(|(g, u)| gelu_tanh(*g) * u).collect();
    matmul(&act, t, down, h, inter)
}

/// The routed experts of a 26B-A4B layer, applied to the residual stream `residual` (before
/// pre_feedforward_layernorm), already passed through `post_feedforward_layernorm_2`.
fn moe_block(
    c: &TextConfig,
    moe: &crate::weights::MoeWeights,
    residual: &[f32],
    t: usize,
    eps: f32,
) -> Vec<f32> {
    let h = c.hidden_size;
    let (ne, k, mi) = (c.num_experts, c.top_k_experts, c.moe_intermediate_size);
    // Router: scale-free norm, * scale * hidden^-0.5, linear, softmax, top-k, renormalise, * per-expert scale.
    let mut r = residual.to_vec();
    rms_norm(&mut r, h, None, eps);
    let rs = moe.router_scale.to_f32();
    let root = (h as f64).powf(-0.5) as f32;
    for row in r.chunks_mut(h) {
        row.iter_mut()
            .zip(rs.iter())
            .for_each(|(v, s)| *v = *v * s * root);
    }
    let scores = matmul(&r, t, &moe.router_proj, ne, h);
    let per_expert = moe.per_expert_scale.to_f32();
    let mut xin = residual.to_vec();
    rms_norm(&mut xin, h, Some(&moe.pre_ff_norm_2.to_f32()), eps);
    let mut out = vec![0f32; t * h];
    for tok in 0..t {
        let s = &scores[tok * ne..(tok + 1) * ne];
        let mx = s.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
        let exps: Vec<f32> = s.iter().map(|v| (v - mx).exp()).collect();
        let sum: f32 = exps.iter().sum();
        let probs: Vec<f32> = exps.iter().map(|e| e / sum).collect();
        let mut order: Vec<usize> = (0..ne).collect();
        order.sort_by(|&a, &b| {
            probs[b]
                .partial_cmp(&probs[a])
                .unwrap_or(std::cmp::Ordering::Equal)
                .then(a.cmp(&b))
        });
        let top = &order[..k];
        let tsum: f32 = top.iter().map(|&e| probs[e]).sum();
        let xt = &xin[tok * h..(tok + 1) * h];
        let ot = &mut out[tok * h..(tok + 1) * h];
        for &e in top {
            let w = probs[e] / tsum * per_expert[e];
            let gu = matmul_rows(xt, 1, &moe.gate_up, e * 2 * mi, 2 * mi, h);
            let act: Vec<f32> = (0..mi).map(|i| gelu_tanh(gu[i]) * gu[mi + i]).collect();
            let y = matmul_rows(&act, 1, &moe.down, e * h, h, mi);
            ot.iter_mut().zip(&y).for_each(|(o, y)| *o += y * w);
        }
    }
    rms_norm(&mut out, h, Some(&moe.post_ff_norm_2.to_f32()), eps);
    out
}

/// Index of the largest value (the first one on ties, as torch.argmax).
pub fn argmax(v: &[f32]) -> u32 {
    let mut best = 0;
    for (i, &x) in v.iter().enumerate() {
        if x > v[best] {
            best = i;
        }
    }
    best as u32
}

/// `log_softmax(logits)[target]`, computed in f64.
pub fn log_prob(logits: &[f32], target: u32) -> f64 {
    let mx = logits.iter().cloned().fold(f32::NEG_INFINITY, f32::max) as f64;
    let lse = logits
        .iter()
        .map(|&v| (v as f64 - mx).exp())
        .sum::<f64>()
        .ln()
        + mx;
    logits[target as usize] as f64 - lse
}
