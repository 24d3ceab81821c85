//! f64 CPU references for every kernel, written for clarity, not speed. Layouts are the kernels'
//! (see the crate docs); inputs are taken as the kernels take them (bf16 as `half::bf16`), and
//! outputs are f64 so the checks measure the GPU's rounding alone.

use half::bf16;

/// `out[r, :] = table[ids[r], :] * scale`; an id out of range gives a NaN row.
pub fn embed(table: &[bf16], ids: &[u32], hidden: usize, scale: f64) -> Vec<f64> {
    let vocab = table.len() / hidden;
    let mut out = Vec::with_capacity(ids.len() * hidden);
    for &id in ids {
        let id = id as usize;
        if id >= vocab {
            out.extend(std::iter::repeat_n(f64::NAN, hidden));
        } else {
            out.extend(
                table[id * hidden..(id + 1) * hidden]
                    .iter()
                    .map(|v| v.to_f64() * scale),
            );
        }
    }
    out
}

/// Gemma 4 RMSNorm over rows: `x * (mean(x^2) + eps)^-1/2 * weight` (no weight: scale-free).
pub fn rms_norm(
    x: &[f32],
    weight: Option<&[bf16]>,
    eps: f64,
    rows: usize,
    cols: usize,
) -> Vec<f64> {
    let mut out = Vec::with_capacity(rows * cols);
    for r in 0..rows {
        let row = &x[r * cols..(r + 1) * cols];
        let ms = row.iter().map(|&v| (v as f64) * (v as f64)).sum::<f64>() / cols as f64;
        let inv = 1.0 / (ms + eps).sqrt();
        for (i, &v) in row.iter().enumerate() {
            let w = weight.map_or(1.0, |w| w[i].to_f64());
            out.push(v as f64 * inv * w);
        }
    }
    out
}

#[allow(clippy::needless_range_loop)] // index loops mirror the formula
/// RoPE (rotate_half) on `[tokens, heads, head_dim]`: pair `(i, i + head_dim/2)` turns by
/// `positions[t] * inv_freq[i]`.
pub fn rope(
    x: &[f32],
    positions: &[i32],
    inv_freq: &[f32],
    tokens: usize,
    heads: usize,
    head_dim: usize,
) -> Vec<f64> {
    let half = head_dim / 2;
    let mut out: Vec<f64> = x[..tokens * heads * head_dim]
        .iter()
        .map(|&v| v as f64)
        .collect();
    for t in 0..tokens {
        for h in 0..heads {
            let base = (t * heads + h) * head_dim;
            for i in 0..half {
                let ang = positions[t] as f64 * inv_freq[i] as f64;
                let (s, c) = ang.sin_cos();
                let a = x[base + i] as f64;
                let b = x[base + i + half] as f64;
                out[base + i] = a * c - b * s;
                out[base + i + half] = b * c + a * s;
            }
        }
    }
    out
}

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

/// PyTorch's tanh-approximated GELU.
pub fn gelu_tanh(x: f64) -> f64 {
    0.5 * x * (1.0 + ((2.0 / std::f64::consts::PI).sqrt() * (x + 0.044715 * x * x * x)).tanh())
}

/// `out[r, c] = gelu_tanh(gate[r * gate_stride + c]) * up[r * up_stride + c]`.
pub fn geglu(
    gate: &[f32],
    gate_stride: usize,
    up: &[f32],
    up_stride: usize,
    rows: usize,
    n: usize,
) -> Vec<f64> {
    let mut out = Vec::with_capacity(rows * n);
    for r in 0..rows {
        for c in 0..n {
            out.push(gelu_tanh(gate[r * gate_stride + c] as f64) * up[r * up_stride + c] as f64);
        }
    }
    out
}

/// `a + b`.
pub fn add(a: &[f32], b: &[f32]) -> Vec<f64> {
    a.iter()
        .zip(b)
        .map(|(&x, &y)| x as f64 + y as f64)
        .collect()
}

/// `x * s`.
pub fn scale(x: &[f32], s: f64) -> Vec<f64> {
    x.iter().map(|&v| v as f64 * s).collect()
}

/// `tanh(x / cap) * cap`.
pub fn softcap(x: &[f32], cap: f64) -> Vec<f64> {
    x.iter().map(|&v| (v as f64 / cap).tanh() * cap).collect()
}

/// First index of the largest value of each row (NaN counts as largest).
pub fn argmax_rows(x: &[f32], rows: usize, cols: usize) -> Vec<u32> {
    (0..rows)
        .map(|r| {
            let row = &x[r * cols..(r + 1) * cols];
            if let Some(i) = row.iter().position(|v| v.is_nan()) {
                return i as u32;
            }
            let mut best = 0;
            for (i, &v) in row.iter().enumerate() {
                if v > row[best] {
                    best = i;
                }
            }
            best as u32
        })
        .collect()
}

/// `y[m, n] = x[m, k] · w[n, k]ᵀ` in f64 (x as given, unrounded).
pub fn gemm(x: &[f32], w: &[bf16], m: usize, n: usize, k: usize) -> Vec<f64> {
    let wf: Vec<f64> = w[..n * k].iter().map(|v| v.to_f64()).collect();
    let mut y = vec![0.0f64; m * n];
    for i in 0..m {
        let xr: Vec<f64> = x[i * k..(i + 1) * k].iter().map(|&v| v as f64).collect();
        for j in 0..n {
            let wr = &wf[j * k..(j + 1) * k];
            y[i * n + j] = xr.iter().zip(wr).map(|(a, b)| a * b).sum();
        }
    }
    y
}

/// Fused residual add + RMSNorm: `x_new = (x + rmsnorm(o) * w_post) * s` (no `o`: `x * s`); returns
/// `(x_new, rmsnorm(x_new) * w_next)`.
#[allow(clippy::too_many_arguments)]
pub fn residual_rms_norm(
    x: &[f32],
    o: Option<&[f32]>,
    w_post: Option<&[bf16]>,
    s: f64,
    w_next: Option<&[bf16]>,
    rows: usize,
    cols: usize,
    eps: f64,
) -> (Vec<f64>, Vec<f64>) {
    let normed_o = o.map(|o| rms_norm(o, w_post, eps, rows, cols));
    let x_new: Vec<f64> = (0..rows * cols)
        .map(|i| (x[i] as f64 + normed_o.as_ref().map_or(0.0, |n| n[i])) * s)
        .collect();
    let mut out = Vec::with_capacity(rows * cols);
    for r in 0..rows {
        let row = &x_new[r * cols..(r + 1) * cols];
        let inv = 1.0 / (row.iter().map(|v| v * v).sum::<f64>() / cols as f64 + eps).sqrt();
        out.extend(
            row.iter()
                .enumerate()
                .map(|(i, v)| v * inv * w_next.map_or(1.0, |w| w[i].to_f64())),
        );
    }
    (x_new, out)
}

/// Per-layer inputs: `(rmsnorm(proj * proj_scale) * norm_w + table[id] * table_scale) * combine_scale` for
/// each (row, layer) slice of `dim`; an id out of range gives NaN.
#[allow(clippy::too_many_arguments)]
pub fn ple_combine(
    proj: &[f32],
    table: &[bf16],
    ids: &[u32],
    norm_w: &[bf16],
    layers: usize,
    dim: usize,
    scales: [f64; 3],
    eps: f64,
) -> Vec<f64> {
    let width = layers * dim;
    let vocab = table.len() / width;
    let mut out = Vec::with_capacity(ids.len() * width);
    for (r, &id) in ids.iter().enumerate() {
        for l in 0..layers {
            let p: Vec<f64> = proj[r * width + l * dim..r * width + (l + 1) * dim]
                .iter()
                .map(|&v| v as f64 * scales[0])
                .collect();
            let inv = 1.0 / (p.iter().map(|v| v * v).sum::<f64>() / dim as f64 + eps).sqrt();
            for i in 0..dim {
                out.push(if (id as usize) < vocab {
                    let t = table[id as usize * width + l * dim + i].to_f64();
                    (p[i] * inv * norm_w[i].to_f64() + t * scales[1]) * scales[2]
                } else {
                    f64::NAN
                });
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rms_norm_of_constant_row_is_the_weight() {
        let w = [bf16::from_f32(2.0), bf16::from_f32(0.5)];
        let out = rms_norm(&[3.0, 3.0], Some(&w), 0.0, 1, 2);
        assert!((out[0] - 2.0).abs() < 1e-12 && (out[1] - 0.5).abs() < 1e-12);
    }

    #[test]
    fn rope_at_position_zero_is_identity_and_preserves_norm() {
        let x = [1.0f32, 2.0, 3.0, 4.0];
        let f = [1.0f32, 0.5];
        assert_eq!(rope(&x, &[0], &f, 1, 1, 4), vec![1.0, 2.0, 3.0, 4.0]);
        let r = rope(&x, &[7], &f, 1, 1, 4);
        let n0: f64 = x.iter().map(|&v| (v * v) as f64).sum();
        let n1: f64 = r.iter().map(|v| v * v).sum();
        assert!((n0 - n1).abs() < 1e-9);
    }

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

    #[test]
    fn argmax_takes_the_first_of_equal_maxima() {
        assert_eq!(argmax_rows(&[1.0, 3.0, 3.0, 0.0], 1, 4), vec![1]);
        assert_eq!(argmax_rows(&[1.0, f32::NAN, 3.0], 1, 3), vec![1]);
    }

    #[test]
    fn gelu_tanh_matches_known_values() {
        assert_eq!(gelu_tanh(0.0), 0.0);
        assert!((gelu_tanh(1.0) - 0.841_191_990_1).abs() < 1e-9);
    }
}
