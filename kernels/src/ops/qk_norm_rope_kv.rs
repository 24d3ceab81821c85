//! The fused attention prologue after the q|k|v projection: q/k RMSNorm + RoPE, v scale-free norm, bf16
//! KV-cache write (qk_norm_rope_kv.cu): launcher and check (against the norm and rope references).

use crate::check::{bf16_to_f32, poison_f32, CheckReport, Checker};
use crate::device::launch::{int, launched, need, ptr_or_null};
use crate::device::Gpu;
use crate::error::{shape, DriverContext, Result};
use crate::layout::{KvLayout, QkvLayout};
use crate::rope::Rope;
use crate::tolerance::{self as tol, relative_error};
use cudarc::driver::{CudaSlice, DevicePtr, DevicePtrMut, LaunchConfig};
use half::bf16;

/// The attention prologue after a fused q|k|v projection ([`Gpu::qkv_prologue`]'s operands): q/k norms,
/// RoPE and the KV-cache write. `cache` is given exactly when `layout.kv_heads > 0`.
pub struct QkvPrologue<'a> {
    pub layout: QkvLayout,
    /// f32 `[tokens, heads, head_dim]`.
    pub q_out: &'a mut CudaSlice<f32>,
    pub q_norm: &'a CudaSlice<bf16>,
    pub k_norm: Option<&'a CudaSlice<bf16>>,
    pub inv_freq: &'a CudaSlice<f32>,
    pub seq_ids: &'a CudaSlice<i32>,
    pub positions: &'a CudaSlice<i32>,
    pub cache: Option<(KvLayout, &'a mut CudaSlice<bf16>, &'a mut CudaSlice<bf16>)>,
    pub eps: f32,
}

/// A checked [`QkvPrologue`] as kernel arguments: device pointers (0 for absent ones), then row_stride, k_col,
/// v_col, heads, kv_heads, head_dim, capacity.
struct QkvPrologueArgs {
    q_out: u64,
    q_norm: u64,
    k_norm: u64,
    inv_freq: u64,
    seq_ids: u64,
    positions: u64,
    k_cache: u64,
    v_cache: u64,
    ints: [i32; 7],
    eps: f32,
}

impl QkvPrologue<'_> {
    /// Checks the operands for `tokens` tokens and takes their device pointers.
    fn resolve(self, gpu: &Gpu, op: &'static str, tokens: usize) -> Result<QkvPrologueArgs> {
        let layout = self.layout;
        let (h, kvh, hd) = (layout.heads, layout.kv_heads, layout.head_dim);
        if hd == 0 || !hd.is_multiple_of(2) {
            return Err(shape(
                op,
                format!("head_dim {hd} must be even and positive"),
            ));
        }
        if (hd / 2).div_ceil(QKV_MAX_PAIRS) > 1024 {
            return Err(shape(op, format!("head_dim {hd} is too large")));
        }
        if layout.row_stride < h * hd
            || (kvh > 0
                && (layout.k_col + kvh * hd > layout.row_stride
                    || layout.v_col + kvh * hd > layout.row_stride))
        {
            return Err(shape(op, format!("{layout:?} does not fit its row stride")));
        }
        need(op, "q_out", self.q_out.len(), tokens * h * hd)?;
        need(op, "q_norm", self.q_norm.len(), hd)?;
        if let Some(k) = self.k_norm {
            need(op, "k_norm", k.len(), hd)?;
        }
        need(op, "inv_freq", self.inv_freq.len(), hd / 2)?;
        need(op, "seq_ids", self.seq_ids.len(), tokens)?;
        need(op, "positions", self.positions.len(), tokens)?;
        let stream = &gpu.stream;
        let (capacity, k_cache, v_cache) = match self.cache {
            Some((kv, k, v)) if kvh > 0 => {
                if kv.kv_heads != kvh || kv.head_dim != hd || kv.capacity == 0 {
                    return Err(shape(op, format!("cache {kv:?} does not match {layout:?}")));
                }
                need(op, "k_cache", k.len(), kv.elements())?;
                need(op, "v_cache", v.len(), kv.elements())?;
                (
                    kv.capacity,
                    k.device_ptr_mut(stream).0,
                    v.device_ptr_mut(stream).0,
                )
            }
            None if kvh == 0 => (1, 0, 0),
            _ => {
                return Err(shape(
                    op,
                    "a cache is needed exactly when kv_heads > 0".into(),
                ))
            }
        };
        Ok(QkvPrologueArgs {
            q_out: self.q_out.device_ptr_mut(stream).0,
            q_norm: self.q_norm.device_ptr(stream).0,
            k_norm: ptr_or_null(gpu, self.k_norm),
            inv_freq: self.inv_freq.device_ptr(stream).0,
            seq_ids: self.seq_ids.device_ptr(stream).0,
            positions: self.positions.device_ptr(stream).0,
            k_cache,
            v_cache,
            ints: [
                int(op, "row_stride", layout.row_stride)?,
                int(op, "k_col", layout.k_col)?,
                int(op, "v_col", layout.v_col)?,
                int(op, "heads", h)?,
                int(op, "kv_heads", kvh)?,
                int(op, "head_dim", hd)?,
                int(op, "capacity", capacity)?,
            ],
            eps: self.eps,
        })
    }
}

/// Rotation pairs one thread of `qk_norm_rope_kv` holds (`QKV_MAX_PAIRS` in qk_norm_rope_kv.cu).
const QKV_MAX_PAIRS: usize = 4;

impl Gpu {
    /// Fused attention prologue (qk_norm_rope_kv.cu): from the q|k|v projection output `qkv`
    /// (f32 `[tokens, layout.row_stride]`), writes `q_out` (f32 `[tokens, heads, head_dim]`) =
    /// rope(rmsnorm(q) * q_norm) and, when `layout.kv_heads > 0`, the cache entries of every token:
    /// K = rope(rmsnorm(k) * k_norm), V = rmsnorm(v) (no scale), in bf16 at slot `pos % capacity`.
    pub fn qkv_prologue(
        &self,
        qkv: &CudaSlice<f32>,
        prologue: QkvPrologue<'_>,
        tokens: usize,
    ) -> Result<()> {
        const OP: &str = "qk_norm_rope_kv";
        let layout = prologue.layout;
        need(OP, "qkv", qkv.len(), tokens * layout.row_stride)?;
        let p = prologue.resolve(self, OP, tokens)?;
        let hd = layout.head_dim;
        let threads = (hd / 2).div_ceil(QKV_MAX_PAIRS).div_ceil(32) * 32;
        let threads = threads.max((hd / 2).min(256).div_ceil(32) * 32);
        if tokens == 0 {
            return Ok(());
        }
        let (qp, _g1) = qkv.device_ptr(&self.stream);
        let cfg = LaunchConfig {
            grid_dim: (
                int(OP, "tokens", tokens)? as u32,
                (layout.heads + 2 * layout.kv_heads) as u32,
                1,
            ),
            block_dim: (threads as u32, 1, 1),
            shared_mem_bytes: 0,
        };
        let mut b = self.launcher("qk_norm_rope_kv");
        b.arg(&qp).arg(&p.ints[0]).arg(&p.ints[1]).arg(&p.ints[2]);
        b.arg(&p.q_out)
            .arg(&p.q_norm)
            .arg(&p.k_norm)
            .arg(&p.inv_freq)
            .arg(&p.seq_ids)
            .arg(&p.positions)
            .arg(&p.k_cache)
            .arg(&p.v_cache);
        b.arg(&p.ints[3])
            .arg(&p.ints[4])
            .arg(&p.ints[5])
            .arg(&p.ints[6])
            .arg(&p.eps);
        unsafe { b.launch(cfg) }.ctx(launched(OP))?;
        Ok(())
    }
}

impl Checker<'_> {
    /// Fused q/k/v norms + RoPE + KV write. `values`: `Some(true)` separate v heads, `Some(false)` values
    /// are the raw keys (k = v), `None` a KV-shared layer (q only, no cache written).
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
        let prologue = QkvPrologue {
            layout,
            q_out: &mut q_out,
            q_norm: &dqn,
            k_norm: Some(&dkn),
            inv_freq: &df,
            seq_ids: &ds,
            positions: &dp,
            cache: (kvh > 0).then_some((kv, &mut kc, &mut vc)),
            eps,
        };
        g.qkv_prologue(&dqkv, prologue, tokens)?;
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
        let q_n = crate::ops::norm::reference::rms_norm(
            &gather(0, heads),
            Some(&q_norm),
            eps as f64,
            tokens * heads,
            hd,
        );
        let q_n: Vec<f32> = q_n.iter().map(|&v| v as f32).collect();
        let want_q =
            crate::ops::rope::reference::rope(&q_n, &positions, &inv_freq, tokens, heads, hd);
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
            let k_n = crate::ops::norm::reference::rms_norm(
                &gather(layout.k_col, kvh),
                Some(&k_norm),
                eps as f64,
                tokens * kvh,
                hd,
            );
            let k_n: Vec<f32> = k_n.iter().map(|&v| v as f32).collect();
            let want_k =
                crate::ops::rope::reference::rope(&k_n, &positions, &inv_freq, tokens, kvh, hd);
            let want_v = crate::ops::norm::reference::rms_norm(
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
}
