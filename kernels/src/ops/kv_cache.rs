//! Appending new keys and values to a layer's bf16 KV cache (kv_cache.cu): launcher and check (the reference
//! is the slot arithmetic itself).

use crate::check::{CheckReport, Checker};
use crate::device::launch::{int, launched, need};
use crate::device::Gpu;
use crate::error::{shape, DriverContext, Result};
use crate::layout::{KvCacheMut, KvLayout, Tokens};
use crate::tolerance::{self as tol, relative_error};
use cudarc::driver::{DevicePtr, DevicePtrMut, LaunchConfig};
use half::bf16;

impl Gpu {
    /// Writes new keys and values into a layer's bf16 KV cache: token `t`'s `k_new[t]`/`v_new[t]`
    /// (f32 `[tokens, kv_heads, head_dim]`) go to sequence `seq_ids[t]` at position `positions[t]`
    /// (slot `positions[t] % capacity`).
    pub fn kv_append<P, C>(
        &self,
        k_new: &impl DevicePtr<f32>,
        v_new: &impl DevicePtr<f32>,
        tokens: Tokens<'_, P>,
        cache: KvCacheMut<'_, C>,
    ) -> Result<()>
    where
        P: DevicePtr<i32>,
        C: DevicePtrMut<bf16>,
    {
        let Tokens {
            seq_ids,
            positions,
            count: tokens,
        } = tokens;
        let KvCacheMut {
            k: k_cache,
            v: v_cache,
            layout,
        } = cache;
        const OP: &str = "kv_append";
        let width = layout.kv_heads * layout.head_dim;
        need(OP, "k_new", k_new.len(), tokens * width)?;
        need(OP, "v_new", v_new.len(), tokens * width)?;
        need(OP, "seq_ids", seq_ids.len(), tokens)?;
        need(OP, "positions", positions.len(), tokens)?;
        need(OP, "k_cache", k_cache.len(), layout.elements())?;
        need(OP, "v_cache", v_cache.len(), layout.elements())?;
        if layout.capacity == 0 {
            return Err(shape(OP, "capacity must be positive".into()));
        }
        if tokens == 0 {
            return Ok(());
        }
        let kvh = int(OP, "kv_heads", layout.kv_heads)?;
        let hd = int(OP, "head_dim", layout.head_dim)?;
        let cap = int(OP, "capacity", layout.capacity)?;
        let (kn, _g1) = k_new.device_ptr(&self.stream);
        let (vn, _g2) = v_new.device_ptr(&self.stream);
        let (si, _g3) = seq_ids.device_ptr(&self.stream);
        let (po, _g4) = positions.device_ptr(&self.stream);
        let (kc, _g5) = k_cache.device_ptr_mut(&self.stream);
        let (vc, _g6) = v_cache.device_ptr_mut(&self.stream);
        let cfg = LaunchConfig {
            grid_dim: (int(OP, "tokens", tokens)? as u32, 1, 1),
            block_dim: (256, 1, 1),
            shared_mem_bytes: 0,
        };
        let mut b = self.launcher("kv_append_bf16");
        b.arg(&kn).arg(&vn).arg(&si).arg(&po).arg(&kc).arg(&vc);
        b.arg(&kvh).arg(&hd).arg(&cap);
        unsafe { b.launch(cfg) }.ctx(launched(OP))?;
        Ok(())
    }
}

impl Checker<'_> {
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
        let places = Tokens::new(&ds, &dp, tokens);
        let cache = KvCacheMut::new(&mut kc, &mut vc, layout);
        g.kv_append(&dk, &dv, places, cache)?;
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
}
