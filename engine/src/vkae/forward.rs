//! The VKAE path's forward pass: the fused launches of prefill and of one decode step, each projection
//! through the kernel the tuner chose for its shape.

use vkae_kernels::{
    AttentionPath, AttentionSpec, CudaSlice, GemmShape, KvCache, PleCombine, QkvPrologue,
    ResidualNorm, Strided, Tokens,
};

use super::buffers::{LayerKv, Work};
use super::tuner::{run_projection, ProjectionKernel};
use super::weights::W;
use super::VkaeModel;
use crate::config::LayerKind;
use crate::error::Result;

impl VkaeModel {
    /// The kernel that runs an `[m, k] x [n, k]ᵀ` projection under the current options.
    fn kernel_for(&self, dims: GemmShape) -> ProjectionKernel {
        let GemmShape { m, n, k } = dims;
        self.tuner.kernel_for(&self.gpu, self.options, m, n, k)
    }

    /// `y[m, n] = x[m, k] · w[n, k]ᵀ` through the kernel chosen for this shape.
    pub(super) fn proj(&self, x: &W, w: &W, dims: GemmShape, y: &mut CudaSlice<f32>) -> Result<()> {
        run_projection(&self.gpu, self.kernel_for(dims), x, w, dims, y)
    }

    /// The MLP's first half: `act = bf16(gelu(x · gateᵀ) * (x · upᵀ))` from the fused `[gate; up]` weight
    /// (`2 * inter` rows), in the GEMV's epilogue where the GEMV runs this shape, else projection + GeGLU.
    #[allow(clippy::too_many_arguments)]
    fn gate_up_geglu(
        &self,
        x: &W,
        gate_up: &W,
        m: usize,
        inter: usize,
        k: usize,
        gu: &mut CudaSlice<f32>,
        act: &mut W,
    ) -> Result<()> {
        let g = &self.gpu;
        let rows = GemmShape { m, n: 2 * inter, k };
        match self.kernel_for(rows) {
            ProjectionKernel::Gemv { kparts } if self.options.ablations().fuse_geglu => {
                let halves = GemmShape { m, n: inter, k };
                g.gemv_bf16_geglu_halves(x, gate_up, halves, kparts, act)?
            }
            kernel => {
                run_projection(&self.gpu, kernel, x, gate_up, rows, gu)?;
                let up = gu.slice(inter..);
                let (gate, up) = (Strided::new(&*gu, 2 * inter), Strided::new(&up, 2 * inter));
                g.geglu_to_bf16(gate, up, m, inter, act)?;
            }
        }
        Ok(())
    }

    /// The fused q|k|v projection, then its attention prologue (`qk_norm_rope_kv`).
    fn proj_qkv(
        &self,
        x: &W,
        w: &W,
        m: usize,
        k: usize,
        qkv: &mut CudaSlice<f32>,
        prologue: QkvPrologue<'_>,
    ) -> Result<()> {
        let n = prologue.layout.row_stride;
        self.proj(x, w, GemmShape { m, n, k }, qkv)?;
        self.gpu.qkv_prologue(qkv, prologue, m)?;
        Ok(())
    }

    /// A projection and the residual step it feeds: `y = x · wᵀ`, then `residual` with `o = y`
    /// (`residual_rms_norm`).
    fn proj_residual(
        &self,
        x: &W,
        w: &W,
        dims: GemmShape,
        y: &mut CudaSlice<f32>,
        residual: ResidualNorm<'_>,
    ) -> Result<()> {
        self.proj(x, w, dims, y)?;
        self.gpu.residual_step(Some(y), residual, dims.m, dims.n)?;
        Ok(())
    }

    /// The per-layer-input gate: `act = bf16(gelu(x · wᵀ) * z)` (`z` rows `z_stride` apart), fused into the
    /// GEMV's epilogue where the GEMV runs this shape, else projection + GeGLU.
    #[allow(clippy::too_many_arguments)]
    fn gate_geglu(
        &self,
        x: &W,
        w: &W,
        m: usize,
        n: usize,
        k: usize,
        z: &vkae_kernels::CudaView<f32>,
        z_stride: usize,
        scratch: &mut CudaSlice<f32>,
        act: &mut W,
    ) -> Result<()> {
        let g = &self.gpu;
        let dims = GemmShape { m, n, k };
        match self.kernel_for(dims) {
            ProjectionKernel::Gemv { kparts } if self.options.ablations().fuse_geglu => {
                let z = Strided::new(z, z_stride);
                g.gemv_bf16_geglu_with(x, w, dims, kparts, z, act)?
            }
            kernel => {
                run_projection(&self.gpu, kernel, x, w, dims, scratch)?;
                g.geglu_to_bf16(
                    Strided::new(&*scratch, n),
                    Strided::new(z, z_stride),
                    m,
                    n,
                    act,
                )?;
            }
        }
        Ok(())
    }

    /// `rows` tokens (ids, positions, sequence ids already in `w`) through the decoder, appending to `kv`;
    /// leaves the final-normed hidden of the rows `select` (all rows when `None`) projected to soft-capped
    /// logits in `w.logits`, and their greedy ids in `w.ids[..selected]`. Queues work only: nothing here
    /// allocates or waits (with `select: None` it can be captured into a graph).
    pub(super) fn forward(
        &self,
        w: &mut Work,
        kv: &mut [Option<LayerKv>],
        rows: usize,
        select: Option<&[usize]>,
    ) -> Result<usize> {
        let c = &self.config;
        let g = &self.gpu;
        let (h, n) = (c.hidden_size, rows);
        let eps = c.rms_norm_eps as f32;
        let nh = c.num_attention_heads;
        let ablations = self.options.ablations();
        g.embed(
            &self.weights.embed,
            &w.ids,
            n,
            h,
            (h as f64).sqrt() as f32,
            &mut w.x,
        )?;
        let first_norm = self
            .weights
            .layers
            .first()
            .map_or(&self.weights.final_norm, |l| &l.input_norm);
        let first = ResidualNorm {
            x: &mut w.x,
            w_post: None,
            s: 1.0,
            w_next: Some(first_norm),
            out_norm: Some(&mut w.a),
            out_x: self.weights.ple.is_some().then_some(&mut w.xb),
            eps,
        };
        g.residual_step(None, first, n, h)?;
        let (pd, nl) = (c.hidden_size_per_layer_input, c.num_hidden_layers);
        if let Some(p) = &self.weights.ple {
            let dims = GemmShape {
                m: n,
                n: nl * pd,
                k: h,
            };
            self.proj(&w.xb, &p.model_projection, dims, &mut w.ple_proj)?;
            let combine = PleCombine {
                table: &p.table,
                ids: &w.ids,
                norm_w: &p.projection_norm,
                layers: nl,
                dim: pd,
                scales: [
                    (h as f64).powf(-0.5) as f32,
                    (pd as f64).sqrt() as f32,
                    2f64.powf(-0.5) as f32,
                ],
                eps,
            };
            g.ple_combine(&w.ple_proj, combine, n, &mut w.ple)?;
        }
        for (li, l) in self.weights.layers.iter().enumerate() {
            let s = &l.spec;
            let hd = s.head_dim;
            let inv_freq = match s.kind {
                LayerKind::Sliding => &self.weights.inv_freq_sliding,
                LayerKind::Full => &self.weights.inv_freq_full,
            };
            let next_norm = self
                .weights
                .layers
                .get(li + 1)
                .map_or(&self.weights.final_norm, |n| &n.input_norm);
            // Attention: one projection, one prologue (norms, rope, cache write), attention, o.
            let cache = if s.kv_source.is_none() {
                let lk = kv[li].as_mut().expect("owner has a cache");
                Some((lk.layout, &mut lk.k, &mut lk.v))
            } else {
                None
            };
            let prologue = QkvPrologue {
                layout: l.qkv_layout,
                q_out: &mut w.q,
                q_norm: &l.q_norm,
                k_norm: l.k_norm.as_ref(),
                inv_freq,
                seq_ids: &w.seq,
                positions: &w.pos,
                cache,
                eps,
            };
            self.proj_qkv(&w.a, &l.qkv, n, h, &mut w.qkv, prologue)?;
            let cache = kv[s.kv_source.unwrap_or(li)]
                .as_ref()
                .expect("owner has a cache");
            let window = (s.kind == LayerKind::Sliding).then_some(s.window);
            // No query sees more keys than the cache holds (or the window): the split count follows the
            // context the cache was sized for instead of only the batch's parallelism.
            let max_keys = ablations
                .context_splits
                .then(|| window.map_or(cache.layout.capacity, |w| w.min(cache.layout.capacity)));
            // Attention writes the o projection's bf16 operand directly (no cast launch).
            let path = AttentionPath {
                merge_in_kernel: ablations.merge_attention,
                softmax_per_round: ablations.attention_softmax_per_round,
            };
            let spec = AttentionSpec {
                heads: nh,
                window,
                scale: 1.0,
                max_keys,
                path,
            };
            let cache = KvCache::new(&cache.k, &cache.v, cache.layout);
            let tokens = Tokens::new(&w.seq, &w.pos, n);
            g.attention(&w.q, cache, tokens, spec, &mut w.att_b)?;
            // o = att · o_projᵀ; x += post_attn_norm(o); a = pre_ff_norm(x).
            self.proj_residual(
                &w.att_b,
                &l.o_proj,
                GemmShape {
                    m: n,
                    n: h,
                    k: nh * hd,
                },
                &mut w.o,
                ResidualNorm {
                    x: &mut w.x,
                    w_post: Some(&l.post_attn_norm),
                    s: 1.0,
                    w_next: Some(&l.pre_ff_norm),
                    out_norm: Some(&mut w.a),
                    out_x: None,
                    eps,
                },
            )?;
            // Feed-forward: gate|up in one projection, GeGLU to BF16, down.
            let inter = s.intermediate_size;
            self.gate_up_geglu(&w.a, &l.gate_up, n, inter, h, &mut w.gu, &mut w.act)?;
            // With per-layer inputs: x += post_ff_norm(o); xb = bf16(x) for the per-layer-input gate. Without:
            // x = (x + post_ff_norm(o)) * layer_scalar; a = next input norm (or the final norm).
            let after_down = match &l.ple {
                Some(_) => ResidualNorm {
                    x: &mut w.x,
                    w_post: Some(&l.post_ff_norm),
                    s: 1.0,
                    w_next: None,
                    out_norm: None,
                    out_x: Some(&mut w.xb),
                    eps,
                },
                None => ResidualNorm {
                    x: &mut w.x,
                    w_post: Some(&l.post_ff_norm),
                    s: l.layer_scalar,
                    w_next: Some(next_norm),
                    out_norm: Some(&mut w.a),
                    out_x: None,
                    eps,
                },
            };
            let down = GemmShape {
                m: n,
                n: h,
                k: inter,
            };
            self.proj_residual(&w.act, &l.down, down, &mut w.o, after_down)?;
            if let Some(p) = &l.ple {
                self.gate_geglu(
                    &w.xb,
                    &p.gate,
                    n,
                    pd,
                    h,
                    &w.ple.slice(li * pd..),
                    nl * pd,
                    &mut w.pg,
                    &mut w.pact,
                )?;
                // x = (x + post_norm(o)) * layer_scalar; a = next input norm (or the final norm).
                self.proj_residual(
                    &w.pact,
                    &p.projection,
                    GemmShape { m: n, n: h, k: pd },
                    &mut w.o,
                    ResidualNorm {
                        x: &mut w.x,
                        w_post: Some(&p.post_norm),
                        s: l.layer_scalar,
                        w_next: Some(next_norm),
                        out_norm: Some(&mut w.a),
                        out_x: None,
                        eps,
                    },
                )?;
            }
        }
        // LM head on the selected rows of the final-normed hidden (already in `a`), soft-cap + argmax.
        let head = self.weights.head();
        let nsel = match select {
            None => {
                let dims = GemmShape {
                    m: n,
                    n: c.vocab_size,
                    k: h,
                };
                self.proj(&w.a, head, dims, &mut w.logits)?;
                n
            }
            Some(sel) => {
                for (i, &r) in sel.iter().enumerate() {
                    g.copy(
                        &w.a.slice(r * h..(r + 1) * h),
                        &mut w.hsel.slice_mut(i * h..(i + 1) * h),
                    )?;
                }
                let dims = GemmShape {
                    m: sel.len(),
                    n: c.vocab_size,
                    k: h,
                };
                self.proj(&w.hsel, head, dims, &mut w.logits)?;
                sel.len()
            }
        };
        match c.final_logit_softcapping {
            Some(cap) => g.softcap_argmax(
                &mut w.logits,
                nsel,
                c.vocab_size,
                cap as f32,
                true,
                &mut w.ids,
            )?,
            None => g.argmax_rows(&w.logits, nsel, c.vocab_size, &mut w.ids)?,
        }
        Ok(nsel)
    }
}
