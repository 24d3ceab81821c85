//! Launches of the VKAE decode path's fused and weight-streaming kernels (see each `.cu` file for the
//! exact function). Same conventions as [`crate::ops`]: sizes are checked first, then the work is queued
//! on the [`Gpu`]'s stream. Optional operands are `Option`s (a null pointer for the kernel).

use crate::error::{shape, DriverContext, Result};
use crate::gpu::Gpu;
use crate::ops::{int, launched, need, KvLayout, ARGMAX_CHUNK};
use cudarc::driver::{CudaSlice, DevicePtr, DevicePtrMut, LaunchConfig};
use half::bf16;

/// Largest batch (rows of `x`) the weight-streaming GEMV takes; larger batches go to cuBLAS.
pub const GEMV_MAX_ROWS: usize = 8;

/// Where a GEMV's results go (gemv.cu's epilogues); device pointers, already checked for size.
#[derive(Clone, Copy)]
enum GemvEpilogue {
    Plain { y: u64 },
    GegluWith { z: u64, z_stride: i64, out: u64 },
    GegluHalves { out: u64 },
}

/// The residual step after a projection: `x = (x + rmsnorm(o) * w_post) * s`, then `out_norm =
/// bf16(rmsnorm(x) * w_next)` and `out_x = bf16(x)` where given ([`Gpu::residual_rms_norm`]'s operands, with
/// `o` the projection's output).
pub struct ResidualNorm<'a> {
    /// The residual stream, f32 `[rows, cols]`, updated in place.
    pub x: &'a mut CudaSlice<f32>,
    pub w_post: Option<&'a CudaSlice<bf16>>,
    pub s: f32,
    pub w_next: Option<&'a CudaSlice<bf16>>,
    pub out_norm: Option<&'a mut CudaSlice<bf16>>,
    pub out_x: Option<&'a mut CudaSlice<bf16>>,
    pub eps: f32,
}

impl ResidualNorm<'_> {
    /// Checks every operand against `rows` rows of `cols` values.
    fn check(&self, op: &'static str, rows: usize, cols: usize) -> Result<()> {
        let n = rows * cols;
        need(op, "x", self.x.len(), n)?;
        for (what, w) in [("w_post", self.w_post), ("w_next", self.w_next)] {
            if let Some(w) = w {
                need(op, what, w.len(), cols)?;
            }
        }
        if let Some(b) = &self.out_norm {
            need(op, "out_norm", b.len(), n)?;
        }
        if let Some(b) = &self.out_x {
            need(op, "out_x", b.len(), n)?;
        }
        Ok(())
    }
}

/// The attention prologue after a fused q|k|v projection ([`Gpu::qk_norm_rope_kv`]'s operands): q/k norms,
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

/// Row elements one thread of the residual step holds (`RESID_PER_THREAD` in common.cuh).
const RESID_PER_THREAD: usize = 12;

/// Output rows one GEMV warp computes (`GEMV_R` in gemv.cu).
const GEMV_ROWS_PER_WARP: usize = 4;

/// Rotation pairs one thread of `qk_norm_rope_kv` holds (`QKV_MAX_PAIRS` in qk_norm_rope_kv.cu).
const QKV_MAX_PAIRS: usize = 4;

/// Where the heads of a fused q|k|v projection output sit in each row (f32 columns).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QkvLayout {
    pub heads: usize,
    /// Heads written to the cache; 0 for a layer that reads another layer's cache (q only).
    pub kv_heads: usize,
    pub head_dim: usize,
    /// Columns per row of the projection output.
    pub row_stride: usize,
    /// First column of the k heads.
    pub k_col: usize,
    /// First column of the v heads (equal to `k_col` when values are the raw keys).
    pub v_col: usize,
}

fn ptr_or_null<T>(gpu: &Gpu, s: Option<&CudaSlice<T>>) -> u64 {
    s.map_or(0, |s| s.device_ptr(gpu.stream()).0)
}

impl Gpu {
    /// Fused residual add + RMSNorm (residual_norm.cu), `rows` rows of `cols`:
    /// `x = (x + rmsnorm(o) * w_post) * s` (no `o`: `x *= s`), then `out_norm = bf16(rmsnorm(x) * w_next)`
    /// and `out_x = bf16(x)` where given. Weights `None` are scale-free norms.
    #[allow(clippy::too_many_arguments)]
    pub fn residual_rms_norm(
        &self,
        x: &mut CudaSlice<f32>,
        o: Option<&CudaSlice<f32>>,
        w_post: Option<&CudaSlice<bf16>>,
        s: f32,
        w_next: Option<&CudaSlice<bf16>>,
        out_norm: Option<&mut CudaSlice<bf16>>,
        out_x: Option<&mut CudaSlice<bf16>>,
        rows: usize,
        cols: usize,
        eps: f32,
    ) -> Result<()> {
        let step = ResidualNorm {
            x,
            w_post,
            s,
            w_next,
            out_norm,
            out_x,
            eps,
        };
        self.residual_step(o, step, rows, cols)
    }

    /// [`Gpu::residual_rms_norm`] with its operands in a [`ResidualNorm`].
    pub fn residual_step(
        &self,
        o: Option<&CudaSlice<f32>>,
        step: ResidualNorm<'_>,
        rows: usize,
        cols: usize,
    ) -> Result<()> {
        const OP: &str = "residual_rms_norm";
        if cols == 0 {
            return Err(shape(OP, "cols must be positive".into()));
        }
        step.check(OP, rows, cols)?;
        if let Some(o) = o {
            need(OP, "o", o.len(), rows * cols)?;
        }
        if rows == 0 {
            return Ok(());
        }
        let cols_i = int(OP, "cols", cols)?;
        let (xp, _gx) = step.x.device_ptr_mut(&self.stream);
        let op = ptr_or_null(self, o);
        let wp = ptr_or_null(self, step.w_post);
        let wn = ptr_or_null(self, step.w_next);
        let onp = step
            .out_norm
            .map_or(0, |b| b.device_ptr_mut(&self.stream).0);
        let oxp = step.out_x.map_or(0, |b| b.device_ptr_mut(&self.stream).0);
        let threads = (cols / 8).next_power_of_two().clamp(32, 1024);
        if cols > threads * RESID_PER_THREAD {
            return Err(shape(
                OP,
                format!("cols {cols} is more than {}", 1024 * RESID_PER_THREAD),
            ));
        }
        let cfg = LaunchConfig {
            grid_dim: (int(OP, "rows", rows)? as u32, 1, 1),
            block_dim: (threads as u32, 1, 1),
            shared_mem_bytes: 0,
        };
        let mut b = self.launcher("residual_rms_norm");
        b.arg(&xp)
            .arg(&op)
            .arg(&wp)
            .arg(&step.s)
            .arg(&wn)
            .arg(&onp)
            .arg(&oxp);
        b.arg(&cols_i).arg(&step.eps);
        unsafe { b.launch(cfg) }.ctx(launched(OP))?;
        Ok(())
    }

    /// Fused attention prologue (qk_norm_rope_kv.cu): from the q|k|v projection output `qkv`
    /// (f32 `[tokens, layout.row_stride]`), writes `q_out` (f32 `[tokens, heads, head_dim]`) =
    /// rope(rmsnorm(q) * q_norm) and, when `layout.kv_heads > 0`, the cache entries of every token:
    /// K = rope(rmsnorm(k) * k_norm), V = rmsnorm(v) (no scale), in bf16 at slot `pos % capacity`.
    #[allow(clippy::too_many_arguments)]
    pub fn qk_norm_rope_kv(
        &self,
        qkv: &CudaSlice<f32>,
        layout: QkvLayout,
        q_out: &mut CudaSlice<f32>,
        q_norm: &CudaSlice<bf16>,
        k_norm: Option<&CudaSlice<bf16>>,
        inv_freq: &CudaSlice<f32>,
        seq_ids: &CudaSlice<i32>,
        positions: &CudaSlice<i32>,
        tokens: usize,
        cache: Option<(KvLayout, &mut CudaSlice<bf16>, &mut CudaSlice<bf16>)>,
        eps: f32,
    ) -> Result<()> {
        let prologue = QkvPrologue {
            layout,
            q_out,
            q_norm,
            k_norm,
            inv_freq,
            seq_ids,
            positions,
            cache,
            eps,
        };
        self.qkv_prologue(qkv, prologue, tokens)
    }

    /// [`Gpu::qk_norm_rope_kv`] with its operands in a [`QkvPrologue`].
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

    /// Gemma 4's per-layer inputs after the model projection (ple_combine.cu):
    /// `out[r, l, :] = (rmsnorm(proj[r, l, :] * proj_scale) * norm_w + table[ids[r], l, :] * table_scale) *
    /// combine_scale`, with `proj`, `out`: f32 `[rows, layers * dim]` and `table`: bf16 `[vocab, layers * dim]`.
    #[allow(clippy::too_many_arguments)]
    pub fn ple_combine(
        &self,
        proj: &CudaSlice<f32>,
        table: &CudaSlice<bf16>,
        ids: &CudaSlice<u32>,
        norm_w: &CudaSlice<bf16>,
        rows: usize,
        layers: usize,
        dim: usize,
        scales: [f32; 3],
        eps: f32,
        out: &mut CudaSlice<f32>,
    ) -> Result<()> {
        const OP: &str = "ple_combine";
        let width = layers * dim;
        if width == 0 || !table.len().is_multiple_of(width) {
            return Err(shape(
                OP,
                format!("table of {} elements is not [vocab, {width}]", table.len()),
            ));
        }
        let vocab = u32::try_from(table.len() / width)
            .map_err(|_| shape(OP, "vocab does not fit in u32".into()))?;
        need(OP, "proj", proj.len(), rows * width)?;
        need(OP, "ids", ids.len(), rows)?;
        need(OP, "norm_w", norm_w.len(), dim)?;
        need(OP, "out", out.len(), rows * width)?;
        if rows == 0 {
            return Ok(());
        }
        let (layers_i, dim_i) = (int(OP, "layers", layers)?, int(OP, "dim", dim)?);
        let (pp, _g1) = proj.device_ptr(&self.stream);
        let (tp, _g2) = table.device_ptr(&self.stream);
        let (ip, _g3) = ids.device_ptr(&self.stream);
        let (np, _g4) = norm_w.device_ptr(&self.stream);
        let (op, _g5) = out.device_ptr_mut(&self.stream);
        let cfg = LaunchConfig {
            grid_dim: (int(OP, "rows * layers", rows * layers)? as u32, 1, 1),
            block_dim: (dim.div_ceil(32).clamp(1, 8) as u32 * 32, 1, 1),
            shared_mem_bytes: 0,
        };
        let mut b = self.launcher("ple_combine");
        b.arg(&pp).arg(&tp).arg(&ip).arg(&np).arg(&op);
        b.arg(&layers_i).arg(&dim_i).arg(&vocab);
        b.arg(&scales[0]).arg(&scales[1]).arg(&scales[2]).arg(&eps);
        unsafe { b.launch(cfg) }.ctx(launched(OP))?;
        Ok(())
    }

    /// Soft-cap then greedy argmax in two launches (softcap_argmax.cu + argmax_final): `ids[r]` = the
    /// first index of the largest `tanh(x / cap) * cap` of row `r`; with `write_back` the capped
    /// values replace `x` (the logits a caller may still want), otherwise `x` is only read.
    pub fn softcap_argmax(
        &self,
        x: &mut CudaSlice<f32>,
        rows: usize,
        cols: usize,
        cap: f32,
        write_back: bool,
        ids: &mut CudaSlice<u32>,
    ) -> Result<()> {
        const OP: &str = "softcap_argmax";
        need(OP, "x", x.len(), rows * cols)?;
        need(OP, "ids", ids.len(), rows)?;
        if cols == 0 {
            return Err(shape(OP, "cols must be positive".into()));
        }
        if cap.is_nan() || cap <= 0.0 {
            return Err(shape(OP, format!("cap must be positive, got {cap}")));
        }
        if rows == 0 {
            return Ok(());
        }
        let cols_i = int(OP, "cols", cols)?;
        let chunks = cols.div_ceil(ARGMAX_CHUNK);
        let (chunks_i, chunk_i) = (chunks as i32, ARGMAX_CHUNK as i32);
        let mut scratch = self.scratch_argmax.lock().expect("scratch lock");
        if scratch.as_ref().is_none_or(|s| s.len() < rows * chunks) {
            *scratch = Some(self.alloc::<u64>(rows * chunks)?);
        }
        let partial = scratch.as_mut().expect("allocated above");
        let (xp, _g1) = x.device_ptr_mut(&self.stream);
        let out = if write_back { xp } else { 0u64 };
        let (pp, _g2) = partial.device_ptr_mut(&self.stream);
        let (ip, _g3) = ids.device_ptr_mut(&self.stream);
        let cfg = LaunchConfig {
            grid_dim: (chunks as u32, int(OP, "rows", rows)? as u32, 1),
            block_dim: (256, 1, 1),
            shared_mem_bytes: 0,
        };
        let mut l = self.launcher("softcap_argmax_partial");
        l.arg(&xp)
            .arg(&out)
            .arg(&pp)
            .arg(&cols_i)
            .arg(&chunk_i)
            .arg(&cap);
        unsafe { l.launch(cfg) }.ctx(launched(OP))?;
        let cfg = LaunchConfig {
            grid_dim: (rows as u32, 1, 1),
            block_dim: (128, 1, 1),
            shared_mem_bytes: 0,
        };
        let mut l = self.launcher("argmax_final");
        l.arg(&pp).arg(&ip).arg(&chunks_i);
        unsafe { l.launch(cfg) }.ctx(launched(OP))?;
        Ok(())
    }

    /// The end of a captured greedy decode step (decode_step.cu): `history[*step, :] = ids`, every
    /// position + 1, `*step += 1`, all on the device. `history`: u32 `[capacity_steps, batch]`.
    pub fn decode_advance(
        &self,
        ids: &CudaSlice<u32>,
        history: &mut CudaSlice<u32>,
        step: &mut CudaSlice<i32>,
        positions: &mut CudaSlice<i32>,
        batch: usize,
    ) -> Result<()> {
        const OP: &str = "decode_advance";
        need(OP, "ids", ids.len(), batch)?;
        need(OP, "positions", positions.len(), batch)?;
        need(OP, "step", step.len(), 1)?;
        if batch == 0 {
            return Ok(());
        }
        let cap_steps = int(OP, "capacity steps", history.len() / batch)?;
        let batch_i = int(OP, "batch", batch)?;
        let (ip, _g1) = ids.device_ptr(&self.stream);
        let (hp, _g2) = history.device_ptr_mut(&self.stream);
        let (sp, _g3) = step.device_ptr_mut(&self.stream);
        let (pp, _g4) = positions.device_ptr_mut(&self.stream);
        let cfg = LaunchConfig {
            grid_dim: (1, 1, 1),
            block_dim: (batch.div_ceil(32).clamp(1, 32) as u32 * 32, 1, 1),
            shared_mem_bytes: 0,
        };
        let mut l = self.launcher("decode_advance");
        l.arg(&ip)
            .arg(&hp)
            .arg(&cap_steps)
            .arg(&sp)
            .arg(&pp)
            .arg(&batch_i);
        unsafe { l.launch(cfg) }.ctx(launched(OP))?;
        Ok(())
    }

    /// GeGLU with a bf16 output (geglu.cu `geglu_f32_to_bf16`); arguments as [`Gpu::geglu`].
    #[allow(clippy::too_many_arguments)]
    pub fn geglu_to_bf16(
        &self,
        gate: &impl DevicePtr<f32>,
        gate_stride: usize,
        up: &impl DevicePtr<f32>,
        up_stride: usize,
        rows: usize,
        n: usize,
        out: &mut impl DevicePtrMut<bf16>,
    ) -> Result<()> {
        const OP: &str = "geglu_to_bf16";
        if gate_stride < n || up_stride < n {
            return Err(shape(
                OP,
                format!("strides {gate_stride}, {up_stride} must be >= n = {n}"),
            ));
        }
        if rows == 0 || n == 0 {
            return Ok(());
        }
        need(OP, "gate", gate.len(), (rows - 1) * gate_stride + n)?;
        need(OP, "up", up.len(), (rows - 1) * up_stride + n)?;
        need(OP, "out", out.len(), rows * n)?;
        let rows_i = int(OP, "rows", rows)?;
        let n_i = int(OP, "n", n)?;
        let (gs, us) = (gate_stride as i64, up_stride as i64);
        let (gp, _g1) = gate.device_ptr(&self.stream);
        let (upp, _g2) = up.device_ptr(&self.stream);
        let (op, _g3) = out.device_ptr_mut(&self.stream);
        let mut b = self.launcher("geglu_f32_to_bf16");
        b.arg(&gp)
            .arg(&upp)
            .arg(&op)
            .arg(&rows_i)
            .arg(&n_i)
            .arg(&gs)
            .arg(&us);
        unsafe { b.launch(self.elementwise_cfg(rows * n)) }.ctx(launched(OP))?;
        Ok(())
    }

    /// Whether [`Gpu::gemv_bf16`] takes this shape: `1 <= m <= 8` and `k` a multiple of 8.
    pub fn gemv_supports(m: usize, k: usize) -> bool {
        (1..=GEMV_MAX_ROWS).contains(&m) && k.is_multiple_of(8) && k > 0
    }

    /// Weight-streaming skinny GEMM (gemv.cu): `y[m, n] = x[m, k] · w[n, k]ᵀ`, bf16 operands, f32
    /// accumulation and output, for `m <= 8`. `x` and `w` must start 16-byte aligned.
    pub fn gemv_bf16(
        &self,
        x: &impl DevicePtr<bf16>,
        w: &impl DevicePtr<bf16>,
        m: usize,
        n: usize,
        k: usize,
        y: &mut impl DevicePtrMut<f32>,
    ) -> Result<()> {
        let kparts = Self::gemv_kparts(self.multiprocessors() as usize, n);
        self.gemv_bf16_split(x, w, m, n, k, kparts, y)
    }

    /// [`Gpu::gemv_bf16`] with the split of k across a block's 8 warps given (1, 2, 4 or 8; more parts mean
    /// more, shorter blocks): for callers that time the choices on their own shapes.
    #[allow(clippy::too_many_arguments)]
    pub fn gemv_bf16_split(
        &self,
        x: &impl DevicePtr<bf16>,
        w: &impl DevicePtr<bf16>,
        m: usize,
        n: usize,
        k: usize,
        kparts: usize,
        y: &mut impl DevicePtrMut<f32>,
    ) -> Result<()> {
        need("gemv_bf16", "y", y.len(), m * n)?;
        let (yp, _g) = y.device_ptr_mut(&self.stream);
        self.gemv_launch(x, w, m, n, k, kparts, GemvEpilogue::Plain { y: yp })
    }

    /// The GEMV with GeGLU fused into its epilogue (gemv.cu `GEMV_GEGLU_WITH`): `out[m, j] =
    /// bf16(gelu_tanh((x · wᵀ)[m, j]) * z[m * z_stride + j])` for `j < n`; `z` f32 (the per-layer input), `out`
    /// bf16 `[m, n]`. Saves the GeGLU launch after the per-layer-input gate.
    #[allow(clippy::too_many_arguments)]
    pub fn gemv_bf16_geglu_with(
        &self,
        x: &impl DevicePtr<bf16>,
        w: &impl DevicePtr<bf16>,
        m: usize,
        n: usize,
        k: usize,
        kparts: usize,
        z: &impl DevicePtr<f32>,
        z_stride: usize,
        out: &mut impl DevicePtrMut<bf16>,
    ) -> Result<()> {
        const OP: &str = "gemv_bf16_geglu_with";
        if z_stride < n {
            return Err(shape(OP, format!("z_stride {z_stride} must be >= n = {n}")));
        }
        if m > 0 && n > 0 {
            need(OP, "z", z.len(), (m - 1) * z_stride + n)?;
        }
        need(OP, "out", out.len(), m * n)?;
        let (zp, _g1) = z.device_ptr(&self.stream);
        let (op, _g2) = out.device_ptr_mut(&self.stream);
        self.gemv_launch(
            x,
            w,
            m,
            n,
            k,
            kparts,
            GemvEpilogue::GegluWith {
                z: zp,
                z_stride: z_stride as i64,
                out: op,
            },
        )
    }

    /// The GEMV over a fused `[gate; up]` weight of `2 * h` rows with GeGLU in its epilogue (gemv.cu
    /// `GEMV_GEGLU_HALVES`): `out[m, j] = bf16(gelu_tanh(gate_j) * up_j)` for `j < h`, where gate_j and up_j are
    /// rows `j` and `h + j` of `x · wᵀ`; `out` bf16 `[m, h]`. The MLP's gate|up projection and its GeGLU in one
    /// launch.
    #[allow(clippy::too_many_arguments)]
    pub fn gemv_bf16_geglu_halves(
        &self,
        x: &impl DevicePtr<bf16>,
        w: &impl DevicePtr<bf16>,
        m: usize,
        h: usize,
        k: usize,
        kparts: usize,
        out: &mut impl DevicePtrMut<bf16>,
    ) -> Result<()> {
        need("gemv_bf16_geglu_halves", "out", out.len(), m * h)?;
        let (op, _g) = out.device_ptr_mut(&self.stream);
        self.gemv_launch(
            x,
            w,
            m,
            2 * h,
            k,
            kparts,
            GemvEpilogue::GegluHalves { out: op },
        )
    }

    /// The checks the weight-streaming kernels (the GEMV, the skinny GEMM) share: the k split, the operand sizes
    /// and 16-byte alignment. The x and w device pointers, or `None` when there is nothing to compute (`n == 0`).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn weight_streaming_operands(
        &self,
        op: &'static str,
        x: &impl DevicePtr<bf16>,
        w: &impl DevicePtr<bf16>,
        m: usize,
        n: usize,
        k: usize,
        kparts: usize,
    ) -> Result<Option<(u64, u64)>> {
        if ![1, 2, 4, 8].contains(&kparts) {
            return Err(shape(op, format!("kparts = {kparts} must be 1, 2, 4 or 8")));
        }
        need(op, "x", x.len(), m * k)?;
        need(op, "w", w.len(), n * k)?;
        if n == 0 {
            return Ok(None);
        }
        let (xp, _g1) = x.device_ptr(&self.stream);
        let (wp, _g2) = w.device_ptr(&self.stream);
        if xp % 16 != 0 || wp % 16 != 0 {
            return Err(shape(op, "x and w must be 16-byte aligned".into()));
        }
        Ok(Some((xp, wp)))
    }

    /// Checks and launches one GEMV (`n` = rows of `w`).
    #[allow(clippy::too_many_arguments)]
    fn gemv_launch(
        &self,
        x: &impl DevicePtr<bf16>,
        w: &impl DevicePtr<bf16>,
        m: usize,
        n: usize,
        k: usize,
        kparts: usize,
        epilogue: GemvEpilogue,
    ) -> Result<()> {
        const OP: &str = "gemv_bf16";
        if !Self::gemv_supports(m, k) {
            return Err(shape(
                OP,
                format!("m = {m} must be 1..={GEMV_MAX_ROWS} and k = {k} a positive multiple of 8"),
            ));
        }
        let Some((xp, wp)) = self.weight_streaming_operands(OP, x, w, m, n, k, kparts)? else {
            return Ok(());
        };
        let groups = 8 / kparts;
        let (mode, yp, zp, z_stride, op, blocks) = match epilogue {
            GemvEpilogue::Plain { y } => (
                0i32,
                y,
                0u64,
                0i64,
                0u64,
                n.div_ceil(GEMV_ROWS_PER_WARP * groups),
            ),
            GemvEpilogue::GegluWith { z, z_stride, out } => (
                1,
                0,
                z,
                z_stride,
                out,
                n.div_ceil(GEMV_ROWS_PER_WARP * groups),
            ),
            GemvEpilogue::GegluHalves { out } => {
                if !n.is_multiple_of(2) {
                    return Err(shape(
                        OP,
                        format!("a [gate; up] matrix has an even row count, not {n}"),
                    ));
                }
                (2, 0, 0, 0, out, (n / 2).div_ceil(2 * groups))
            }
        };
        let (n_i, k_i, kp_i) = (int(OP, "n", n)?, int(OP, "k", k)?, kparts as i32);
        const PLAIN: [&str; GEMV_MAX_ROWS] = [
            "gemv_bf16_m1",
            "gemv_bf16_m2",
            "gemv_bf16_m3",
            "gemv_bf16_m4",
            "gemv_bf16_m5",
            "gemv_bf16_m6",
            "gemv_bf16_m7",
            "gemv_bf16_m8",
        ];
        let cfg = LaunchConfig {
            grid_dim: (int(OP, "blocks", blocks)? as u32, 1, 1),
            block_dim: (256, 1, 1),
            shared_mem_bytes: 0,
        };
        let prefetch = self.gemv_prefetch_bytes().min(i32::MAX as u32) as i32;
        let mut b = self.launcher(PLAIN[m - 1]);
        b.arg(&xp).arg(&wp).arg(&yp).arg(&n_i).arg(&k_i).arg(&kp_i);
        b.arg(&prefetch).arg(&mode).arg(&zp).arg(&z_stride).arg(&op);
        unsafe { b.launch(cfg) }.ctx(launched(OP))?;
        Ok(())
    }

    /// The k split [`Gpu::gemv_bf16`] uses for `n` outputs on this device.
    pub fn gemv_default_kparts(&self, n: usize) -> usize {
        Self::gemv_kparts(self.multiprocessors() as usize, n)
    }

    /// Split of k across the 8 warps of a GEMV block: the fewest parts (1, 2, 4 or 8) that still give
    /// at least four blocks per multiprocessor, so narrow outputs keep every SM streaming.
    fn gemv_kparts(sms: usize, n: usize) -> usize {
        for kparts in [1usize, 2, 4] {
            let blocks = n.div_ceil(GEMV_ROWS_PER_WARP * (8 / kparts));
            if blocks >= 4 * sms {
                return kparts;
            }
        }
        8
    }
}
