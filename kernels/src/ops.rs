//! Typed kernel launches. Every op validates its sizes against its buffers first (a
//! [`KernelError::Shape`] names the op and what does not fit), then queues one or two launches
//! on the [`Gpu`]'s stream and returns.
//!
//! Buffers are anything cudarc can hand a device pointer for: a [`CudaSlice`], or a view of one
//! (`buf.slice(a..b)`, `buf.slice_mut(a..b)`). Every buffer must hold at least the elements the
//! op's layout needs; longer ones are fine (only the front is used).

use crate::error::{shape, DriverContext, Result};
use crate::gpu::Gpu;
use cudarc::driver::{CudaSlice, DevicePtr, DevicePtrMut, DeviceRepr, LaunchConfig};
use half::bf16;

/// Geometry of one layer's KV cache: `k` and `v` each bf16 `[num_seqs, capacity, kv_heads, head_dim]`.
/// Position `p` of sequence `s` lives in slot `p % capacity`: with `capacity` at least the longest
/// context the cache is a plain array; a smaller `capacity` makes it a ring, which is correct as
/// long as every key a query needs is still there, i.e. `capacity >= window + new_tokens - 1` for
/// the largest number of tokens of one sequence appended before one attention call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KvLayout {
    pub num_seqs: usize,
    pub capacity: usize,
    pub kv_heads: usize,
    pub head_dim: usize,
}

impl KvLayout {
    /// Elements in each of the K and V buffers.
    pub fn elements(&self) -> usize {
        self.num_seqs * self.capacity * self.kv_heads * self.head_dim
    }
}

/// Columns each block of the argmax's first pass reduces.
pub(crate) const ARGMAX_CHUNK: usize = 4096;

/// Keys per split [`Gpu::attention_with_max_keys`] aims for (8 warps x 4 keys in flight x 2 rounds).
pub const ATTENTION_KEYS_PER_SPLIT: usize = 64;

/// Largest head_dim the attention kernel supports (32 lanes x 16 dims).
pub const MAX_HEAD_DIM: usize = 512;

/// Most key-range splits a query's attention takes (`ATTENTION_MAX_SPLITS` in attention.cu: the merge gives
/// each split one lane of a warp).
pub const ATTENTION_MAX_SPLITS: usize = 32;

/// Which decode attention [`Gpu::attention_with_path`] runs; the default is the per-head kernel with a
/// separate merge launch ([`Gpu::attention_with_max_keys`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AttentionPath {
    /// The last split block merges the partials (no `attention_combine` launch).
    pub merge_in_kernel: bool,
    /// The per-head kernel's online softmax takes a round of keys (the 4 whose K/V loads are in flight) at
    /// once: their scores, one max and one rescale, then their V rows (attention.cu `online_round`), where it
    /// otherwise steps key by key. Head_dim 256 and 512 (the 16-byte path).
    pub softmax_per_round: bool,
}

/// Element types [`Gpu::attention_with_max_keys`] writes: f32, or bf16 (the next projection's operand).
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

pub(crate) fn int(op: &'static str, what: &str, v: usize) -> Result<i32> {
    i32::try_from(v).map_err(|_| shape(op, format!("{what} = {v} does not fit in i32")))
}

pub(crate) fn need(op: &'static str, what: &str, have: usize, want: usize) -> Result<()> {
    if have < want {
        return Err(shape(
            op,
            format!("{what} holds {have} elements, the layout needs {want}"),
        ));
    }
    Ok(())
}

pub(crate) fn launched(op: &'static str) -> impl FnOnce() -> String {
    move || format!("launching {op}")
}

impl Gpu {
    /// Grid for a grid-stride element-wise kernel over `n` elements, 256 threads a block.
    pub(crate) fn elementwise_cfg(&self, n: usize) -> LaunchConfig {
        let blocks = n
            .div_ceil(256)
            .clamp(1, self.multiprocessors() as usize * 16);
        LaunchConfig {
            grid_dim: (blocks as u32, 1, 1),
            block_dim: (256, 1, 1),
            shared_mem_bytes: 0,
        }
    }

    /// Embedding gather with scale: `out[r, :] = f32(table[ids[r], :]) * scale`.
    ///
    /// `table`: bf16 `[vocab, hidden]` (vocab = table.len() / hidden); `ids`: u32 `[rows]`;
    /// `out`: f32 `[rows, hidden]`. An id >= vocab fills its row with NaN. Gemma scales by
    /// sqrt(hidden); transformers rounds that scale to bf16 first, so pass the value you mean.
    pub fn embed(
        &self,
        table: &impl DevicePtr<bf16>,
        ids: &impl DevicePtr<u32>,
        rows: usize,
        hidden: usize,
        scale: f32,
        out: &mut impl DevicePtrMut<f32>,
    ) -> Result<()> {
        const OP: &str = "embed";
        if hidden == 0 || table.len() % hidden != 0 {
            return Err(shape(
                OP,
                format!("table of {} elements is not [vocab, {hidden}]", table.len()),
            ));
        }
        let vocab = u32::try_from(table.len() / hidden)
            .map_err(|_| shape(OP, "vocab does not fit in u32".into()))?;
        need(OP, "ids", ids.len(), rows)?;
        need(OP, "out", out.len(), rows * hidden)?;
        if rows == 0 {
            return Ok(());
        }
        let hidden_i = int(OP, "hidden", hidden)?;
        let (t, _gt) = table.device_ptr(&self.stream);
        let (i, _gi) = ids.device_ptr(&self.stream);
        let (o, _go) = out.device_ptr_mut(&self.stream);
        let cfg = LaunchConfig {
            grid_dim: (int(OP, "rows", rows)? as u32, 1, 1),
            block_dim: (256, 1, 1),
            shared_mem_bytes: 0,
        };
        let mut b = self.launcher("embed_gather_bf16");
        b.arg(&t)
            .arg(&i)
            .arg(&o)
            .arg(&hidden_i)
            .arg(&vocab)
            .arg(&scale);
        unsafe { b.launch(cfg) }.ctx(launched(OP))?;
        Ok(())
    }

    fn rms_norm_raw(
        &self,
        x: u64,
        weight: Option<&CudaSlice<bf16>>,
        out: u64,
        eps: f32,
        rows: usize,
        cols: usize,
    ) -> Result<()> {
        const OP: &str = "rms_norm";
        if let Some(w) = weight {
            need(OP, "weight", w.len(), cols)?;
        }
        if rows == 0 {
            return Ok(());
        }
        if cols == 0 {
            return Err(shape(OP, "cols must be positive".into()));
        }
        let cols_i = int(OP, "cols", cols)?;
        let threads = (cols / 8).next_power_of_two().clamp(32, 1024) as u32;
        let (w, _gw) = match weight {
            Some(w) => {
                let (p, g) = w.device_ptr(&self.stream);
                (p, Some(g))
            }
            None => (0u64, None),
        };
        let cfg = LaunchConfig {
            grid_dim: (int(OP, "rows", rows)? as u32, 1, 1),
            block_dim: (threads, 1, 1),
            shared_mem_bytes: 0,
        };
        let mut b = self.launcher("rms_norm_f32");
        b.arg(&x).arg(&w).arg(&out).arg(&cols_i).arg(&eps);
        unsafe { b.launch(cfg) }.ctx(launched(OP))?;
        Ok(())
    }

    /// RMSNorm over rows, Gemma 4 convention: `out = x * rsqrt(mean(x^2) + eps) * weight`
    /// (`weight: None` is the scale-free variant). `x`, `out`: f32 `[rows, cols]`; `weight`: bf16
    /// `[cols]`. Use `rows = tokens * heads, cols = head_dim` for the per-head q/k/v norms.
    pub fn rms_norm(
        &self,
        x: &impl DevicePtr<f32>,
        weight: Option<&CudaSlice<bf16>>,
        eps: f32,
        rows: usize,
        cols: usize,
        out: &mut impl DevicePtrMut<f32>,
    ) -> Result<()> {
        need("rms_norm", "x", x.len(), rows * cols)?;
        need("rms_norm", "out", out.len(), rows * cols)?;
        let (xp, _gx) = x.device_ptr(&self.stream);
        let (op, _go) = out.device_ptr_mut(&self.stream);
        self.rms_norm_raw(xp, weight, op, eps, rows, cols)
    }

    /// [`Gpu::rms_norm`] in place on `x`.
    pub fn rms_norm_inplace(
        &self,
        x: &mut impl DevicePtrMut<f32>,
        weight: Option<&CudaSlice<bf16>>,
        eps: f32,
        rows: usize,
        cols: usize,
    ) -> Result<()> {
        need("rms_norm", "x", x.len(), rows * cols)?;
        let (xp, _gx) = x.device_ptr_mut(&self.stream);
        self.rms_norm_raw(xp, weight, xp, eps, rows, cols)
    }

    /// RoPE in place, rotate_half convention: pair `(i, i + head_dim/2)` of every head of token `t`
    /// turns by `positions[t] * inv_freq[i]`. `x`: f32 `[tokens, heads, head_dim]`; `positions`: i32
    /// `[tokens]` (each token's own position, so a batch may mix sequences at different depths);
    /// `inv_freq`: f32 `[head_dim / 2]`, from [`crate::rope::Rope::inv_freq`] (zero entries leave
    /// their pair unrotated, as proportional rope does).
    pub fn rope(
        &self,
        x: &mut impl DevicePtrMut<f32>,
        positions: &impl DevicePtr<i32>,
        inv_freq: &impl DevicePtr<f32>,
        tokens: usize,
        heads: usize,
        head_dim: usize,
    ) -> Result<()> {
        const OP: &str = "rope";
        if !head_dim.is_multiple_of(2) || head_dim == 0 {
            return Err(shape(
                OP,
                format!("head_dim {head_dim} must be even and positive"),
            ));
        }
        need(OP, "x", x.len(), tokens * heads * head_dim)?;
        need(OP, "positions", positions.len(), tokens)?;
        need(OP, "inv_freq", inv_freq.len(), head_dim / 2)?;
        if tokens == 0 {
            return Ok(());
        }
        let heads_i = int(OP, "heads", heads)?;
        let hd_i = int(OP, "head_dim", head_dim)?;
        let threads = ((head_dim / 2).div_ceil(32) * 32).min(256) as u32;
        let (xp, _gx) = x.device_ptr_mut(&self.stream);
        let (pp, _gp) = positions.device_ptr(&self.stream);
        let (fp, _gf) = inv_freq.device_ptr(&self.stream);
        let cfg = LaunchConfig {
            grid_dim: (int(OP, "tokens", tokens)? as u32, 1, 1),
            block_dim: (threads, 1, 1),
            shared_mem_bytes: 0,
        };
        let mut b = self.launcher("rope_inplace_f32");
        b.arg(&xp).arg(&pp).arg(&fp).arg(&heads_i).arg(&hd_i);
        unsafe { b.launch(cfg) }.ctx(launched(OP))?;
        Ok(())
    }

    /// Writes new keys and values into a layer's bf16 KV cache: token `t`'s `k_new[t]`/`v_new[t]`
    /// (f32 `[tokens, kv_heads, head_dim]`) go to sequence `seq_ids[t]` at position `positions[t]`
    /// (slot `positions[t] % capacity`). `seq_ids`, `positions`: i32 `[tokens]`.
    #[allow(clippy::too_many_arguments)]
    pub fn kv_append(
        &self,
        k_new: &impl DevicePtr<f32>,
        v_new: &impl DevicePtr<f32>,
        seq_ids: &impl DevicePtr<i32>,
        positions: &impl DevicePtr<i32>,
        tokens: usize,
        layout: KvLayout,
        k_cache: &mut impl DevicePtrMut<bf16>,
        v_cache: &mut impl DevicePtrMut<bf16>,
    ) -> Result<()> {
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

    /// Causal attention of `tokens` queries against a layer's KV cache (prefill and decode alike).
    ///
    /// `q`: f32 `[tokens, heads, head_dim]`; `out`: f32 `[tokens, heads, head_dim]`; query `t`
    /// belongs to sequence `seq_ids[t]` at position `positions[t]` and attends to that sequence's
    /// cached keys at positions `max(0, pos - window + 1) ..= pos` (`window: None` for full
    /// attention), which [`Gpu::kv_append`] must have written first. GQA: head `h` uses kv head
    /// `h / (heads / kv_heads)`. Scores are `scale * q.k` (Gemma 4: scale 1.0), softmax in f32.
    /// `head_dim <= 512`.
    ///
    /// Split-KV: each query's key range is cut into [`Gpu::attention_splits`] parts processed by
    /// separate blocks and merged by a second launch (one launch when the batch alone fills the
    /// GPU); the partials live in a scratch buffer this `Gpu` keeps.
    #[allow(clippy::too_many_arguments)]
    pub fn attention(
        &self,
        q: &impl DevicePtr<f32>,
        k_cache: &impl DevicePtr<bf16>,
        v_cache: &impl DevicePtr<bf16>,
        seq_ids: &impl DevicePtr<i32>,
        positions: &impl DevicePtr<i32>,
        tokens: usize,
        heads: usize,
        layout: KvLayout,
        window: Option<usize>,
        scale: f32,
        out: &mut impl DevicePtrMut<f32>,
    ) -> Result<()> {
        self.attention_with_max_keys(
            q, k_cache, v_cache, seq_ids, positions, tokens, heads, layout, window, scale, None,
            out,
        )
    }

    /// [`Gpu::attention`] with a bound on the keys any query sees (the caller knows the context length):
    /// the split count is then also capped at `ceil(max_keys / ATTENTION_KEYS_PER_SPLIT)`, so a short context
    /// runs few splits (or one, with no combine launch). Never more splits than [`Gpu::attention_splits`],
    /// so the scratch reserved by [`Gpu::reserve_scratch`] always suffices. Correct for any bound: it only
    /// sets the parallelism. The output is f32, or bf16 (rounded to nearest even: the o projection's operand,
    /// without a cast launch) when `out` holds bf16.
    #[allow(clippy::too_many_arguments)]
    pub fn attention_with_max_keys<T: AttentionOutput>(
        &self,
        q: &impl DevicePtr<f32>,
        k_cache: &impl DevicePtr<bf16>,
        v_cache: &impl DevicePtr<bf16>,
        seq_ids: &impl DevicePtr<i32>,
        positions: &impl DevicePtr<i32>,
        tokens: usize,
        heads: usize,
        layout: KvLayout,
        window: Option<usize>,
        scale: f32,
        max_keys: Option<usize>,
        out: &mut impl DevicePtrMut<T>,
    ) -> Result<()> {
        self.attention_with_path(
            q,
            k_cache,
            v_cache,
            seq_ids,
            positions,
            tokens,
            heads,
            layout,
            window,
            scale,
            max_keys,
            AttentionPath::default(),
            out,
        )
    }

    /// [`Gpu::attention_with_max_keys`] on the path `path` says (both choices are results-equal up to f32
    /// reduction order):
    /// - `merge_in_kernel`: the last split block of each query merges the partials itself, counted
    ///   on device counters this `Gpu` keeps, instead of a second launch (`attention_combine`).
    /// - `softmax_per_round`: the per-head kernel updates its online softmax once per round of keys
    ///   (`attention_rounds_epl8/16`, head_dim 256 or 512) instead of once per key.
    #[allow(clippy::too_many_arguments)]
    pub fn attention_with_path<T: AttentionOutput>(
        &self,
        q: &impl DevicePtr<f32>,
        k_cache: &impl DevicePtr<bf16>,
        v_cache: &impl DevicePtr<bf16>,
        seq_ids: &impl DevicePtr<i32>,
        positions: &impl DevicePtr<i32>,
        tokens: usize,
        heads: usize,
        layout: KvLayout,
        window: Option<usize>,
        scale: f32,
        max_keys: Option<usize>,
        path: AttentionPath,
        out: &mut impl DevicePtrMut<T>,
    ) -> Result<()> {
        const OP: &str = "attention";
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
        let mut counters = self
            .scratch_attention_counters
            .lock()
            .expect("scratch lock");
        let queries = tokens * heads;
        if merge_in_kernel && counters.as_ref().is_none_or(|c| c.len() < queries) {
            *counters = Some(self.alloc::<u32>(queries)?);
        }
        let counters_ptr = match counters.as_mut() {
            Some(c) if merge_in_kernel => c.device_ptr_mut(&self.stream).0,
            _ => 0u64,
        };
        let mut scratch = self.scratch_attention.lock().expect("scratch lock");
        let part_len = if splits > 1 {
            tokens * heads * splits * (hd + 2)
        } else {
            1
        };
        if scratch.as_ref().is_none_or(|s| s.len() < part_len) {
            *scratch = Some(self.alloc::<f32>(part_len)?);
        }
        let part = scratch.as_mut().expect("allocated above");
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

    /// How many parts [`Gpu::attention`] splits each query's key range into: enough blocks for
    /// two waves over the multiprocessors, at most 32, and 1 (no combine pass) once
    /// `tokens * heads` fills the GPU by itself.
    pub fn attention_splits(&self, tokens: usize, heads: usize) -> usize {
        let blocks = (tokens * heads).max(1);
        (2 * self.multiprocessors() as usize)
            .div_ceil(blocks)
            .clamp(1, ATTENTION_MAX_SPLITS)
    }

    /// GeGLU: `out[r, c] = gelu_tanh(gate[r * gate_stride + c]) * up[r * up_stride + c]` for
    /// `r < rows, c < n`; `out`: f32 `[rows, n]`. With a fused gate/up projection output
    /// `gu: [rows, 2n]` pass `gate = gu.slice(..)`, `up = gu.slice(n..)`, both strides `2n`.
    #[allow(clippy::too_many_arguments)]
    pub fn geglu(
        &self,
        gate: &impl DevicePtr<f32>,
        gate_stride: usize,
        up: &impl DevicePtr<f32>,
        up_stride: usize,
        rows: usize,
        n: usize,
        out: &mut impl DevicePtrMut<f32>,
    ) -> Result<()> {
        const OP: &str = "geglu";
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
        let mut b = self.launcher("geglu_f32");
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

    fn add_raw(&self, a: u64, b: u64, out: u64, n: usize) -> Result<()> {
        let n_i = n as i64;
        let mut l = self.launcher("add_f32");
        l.arg(&a).arg(&b).arg(&out).arg(&n_i);
        unsafe { l.launch(self.elementwise_cfg(n)) }.ctx(launched("add"))?;
        Ok(())
    }

    /// `out = a + b` over `n` f32 elements.
    pub fn add(
        &self,
        a: &impl DevicePtr<f32>,
        b: &impl DevicePtr<f32>,
        n: usize,
        out: &mut impl DevicePtrMut<f32>,
    ) -> Result<()> {
        need("add", "a", a.len(), n)?;
        need("add", "b", b.len(), n)?;
        need("add", "out", out.len(), n)?;
        if n == 0 {
            return Ok(());
        }
        let (ap, _g1) = a.device_ptr(&self.stream);
        let (bp, _g2) = b.device_ptr(&self.stream);
        let (op, _g3) = out.device_ptr_mut(&self.stream);
        self.add_raw(ap, bp, op, n)
    }

    /// `acc += b` over `n` f32 elements (the residual add).
    pub fn add_inplace(
        &self,
        acc: &mut impl DevicePtrMut<f32>,
        b: &impl DevicePtr<f32>,
        n: usize,
    ) -> Result<()> {
        need("add", "acc", acc.len(), n)?;
        need("add", "b", b.len(), n)?;
        if n == 0 {
            return Ok(());
        }
        let (ap, _g1) = acc.device_ptr_mut(&self.stream);
        let (bp, _g2) = b.device_ptr(&self.stream);
        self.add_raw(ap, bp, ap, n)
    }

    fn scale_raw(&self, x: u64, out: u64, n: usize, s: f32) -> Result<()> {
        let n_i = n as i64;
        let mut l = self.launcher("scale_f32");
        l.arg(&x).arg(&out).arg(&n_i).arg(&s);
        unsafe { l.launch(self.elementwise_cfg(n)) }.ctx(launched("scale"))?;
        Ok(())
    }

    /// `out = x * s` over `n` f32 elements.
    pub fn scale(
        &self,
        x: &impl DevicePtr<f32>,
        s: f32,
        n: usize,
        out: &mut impl DevicePtrMut<f32>,
    ) -> Result<()> {
        need("scale", "x", x.len(), n)?;
        need("scale", "out", out.len(), n)?;
        if n == 0 {
            return Ok(());
        }
        let (xp, _g1) = x.device_ptr(&self.stream);
        let (op, _g2) = out.device_ptr_mut(&self.stream);
        self.scale_raw(xp, op, n, s)
    }

    /// `x *= s` over `n` f32 elements (e.g. Gemma's `layer_scalar`).
    pub fn scale_inplace(&self, x: &mut impl DevicePtrMut<f32>, s: f32, n: usize) -> Result<()> {
        need("scale", "x", x.len(), n)?;
        if n == 0 {
            return Ok(());
        }
        let (xp, _g1) = x.device_ptr_mut(&self.stream);
        self.scale_raw(xp, xp, n, s)
    }

    /// Logit soft-capping in place: `x = tanh(x / cap) * cap` over `n` f32 elements (Gemma 4's final
    /// logits: cap 30).
    pub fn softcap_inplace(
        &self,
        x: &mut impl DevicePtrMut<f32>,
        cap: f32,
        n: usize,
    ) -> Result<()> {
        const OP: &str = "softcap";
        need(OP, "x", x.len(), n)?;
        if cap.is_nan() || cap <= 0.0 {
            return Err(shape(OP, format!("cap must be positive, got {cap}")));
        }
        if n == 0 {
            return Ok(());
        }
        let n_i = n as i64;
        let (xp, _g1) = x.device_ptr_mut(&self.stream);
        let mut l = self.launcher("softcap_f32");
        l.arg(&xp).arg(&xp).arg(&n_i).arg(&cap);
        unsafe { l.launch(self.elementwise_cfg(n)) }.ctx(launched(OP))?;
        Ok(())
    }

    /// Greedy argmax over rows: `out[r]` = the first index of the largest value of `x[r, :cols]`
    /// (NaN counts as largest, as in torch.argmax). `x`: f32 `[rows, cols]`; `out`: u32 `[rows]`.
    pub fn argmax_rows(
        &self,
        x: &impl DevicePtr<f32>,
        rows: usize,
        cols: usize,
        out: &mut impl DevicePtrMut<u32>,
    ) -> Result<()> {
        const OP: &str = "argmax_rows";
        const CHUNK: usize = ARGMAX_CHUNK;
        need(OP, "x", x.len(), rows * cols)?;
        need(OP, "out", out.len(), rows)?;
        if cols == 0 {
            return Err(shape(OP, "cols must be positive".into()));
        }
        if rows == 0 {
            return Ok(());
        }
        let cols_i = int(OP, "cols", cols)?;
        let chunks = cols.div_ceil(CHUNK);
        let chunks_i = chunks as i32;
        let chunk_i = CHUNK as i32;
        let mut scratch = self.scratch_argmax.lock().expect("scratch lock");
        if scratch.as_ref().is_none_or(|s| s.len() < rows * chunks) {
            *scratch = Some(self.alloc::<u64>(rows * chunks)?);
        }
        let partial = scratch.as_mut().expect("allocated above");
        let (xp, _g1) = x.device_ptr(&self.stream);
        let (pp, _g2) = partial.device_ptr_mut(&self.stream);
        let (op, _g3) = out.device_ptr_mut(&self.stream);
        let cfg = LaunchConfig {
            grid_dim: (chunks as u32, int(OP, "rows", rows)? as u32, 1),
            block_dim: (256, 1, 1),
            shared_mem_bytes: 0,
        };
        let mut l = self.launcher("argmax_partial");
        l.arg(&xp).arg(&pp).arg(&cols_i).arg(&chunk_i);
        unsafe { l.launch(cfg) }.ctx(launched(OP))?;
        let cfg = LaunchConfig {
            grid_dim: (rows as u32, 1, 1),
            block_dim: (128, 1, 1),
            shared_mem_bytes: 0,
        };
        let mut l = self.launcher("argmax_final");
        l.arg(&pp).arg(&op).arg(&chunks_i);
        unsafe { l.launch(cfg) }.ctx(launched(OP))?;
        Ok(())
    }

    /// Casts `n` f32 values to bf16 (round to nearest even; NaN stays NaN).
    pub fn cast_f32_to_bf16(
        &self,
        x: &impl DevicePtr<f32>,
        n: usize,
        out: &mut impl DevicePtrMut<bf16>,
    ) -> Result<()> {
        need("cast_f32_to_bf16", "x", x.len(), n)?;
        need("cast_f32_to_bf16", "out", out.len(), n)?;
        if n == 0 {
            return Ok(());
        }
        let n_i = n as i64;
        let (xp, _g1) = x.device_ptr(&self.stream);
        let (op, _g2) = out.device_ptr_mut(&self.stream);
        let mut l = self.launcher("cast_f32_to_bf16");
        l.arg(&xp).arg(&op).arg(&n_i);
        unsafe { l.launch(self.elementwise_cfg(n)) }.ctx(launched("cast_f32_to_bf16"))?;
        Ok(())
    }

    /// Casts `n` bf16 values to f32 (exact).
    pub fn cast_bf16_to_f32(
        &self,
        x: &impl DevicePtr<bf16>,
        n: usize,
        out: &mut impl DevicePtrMut<f32>,
    ) -> Result<()> {
        need("cast_bf16_to_f32", "x", x.len(), n)?;
        need("cast_bf16_to_f32", "out", out.len(), n)?;
        if n == 0 {
            return Ok(());
        }
        let n_i = n as i64;
        let (xp, _g1) = x.device_ptr(&self.stream);
        let (op, _g2) = out.device_ptr_mut(&self.stream);
        let mut l = self.launcher("cast_bf16_to_f32");
        l.arg(&xp).arg(&op).arg(&n_i);
        unsafe { l.launch(self.elementwise_cfg(n)) }.ctx(launched("cast_bf16_to_f32"))?;
        Ok(())
    }
}
