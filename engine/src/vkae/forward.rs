//! The VKAE path's forward pass: the fused launches of prefill and of one decode step, each projection
//! through the kernel the tuner chose for its shape.

use vkae_kernels::{AttentionPath, CudaSlice, QkvPrologue, ResidualNorm};

use super::buffers::{LayerKv, Work};
use super::tuner::{run_projection, ProjectionKernel};
use super::weights::W;
use super::VkaeModel;
use crate::config::LayerKind;
use crate::error::Result;

impl VkaeModel {
    /// The kernel that runs an `[m, k] x [n, k]ᵀ` projection under the current options.
    fn kernel_for(&self, m: usize, n: usize, k: usize) -> ProjectionKernel {
        self.tuner.kernel_for(&self.gpu, self.options, m, n, k)
    }

    /// `y[m, n] = x[m, k] · w[n, k]ᵀ` through the kernel chosen for this shape.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn proj(
        &self,
        x: &W,
        w: &W,
        m: usize,
        n: usize,
        k: usize,
        y: &mut CudaSlice<f32>,
    ) -> Result<()> {
        run_projection(&self.gpu, self.kernel_for(m, n, k), x, w, m, n, k, y)
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
        match self.kernel_for(m, 2 * inter, k) {
            ProjectionKernel::Gemv { kparts } if self.options.ablations().fuse_geglu => {
                g.gemv_bf16_geglu_halves(x, gate_up, m, inter, k, kparts, act)?
            }
            kernel => {
                run_projection(&self.gpu, kernel, x, gate_up, m, 2 * inter, k, gu)?;
                g.geglu_to_bf16(gu, 2 * inter, &gu.slice(inter..), 2 * inter, m, inter, act)?;
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
        run_projection(&self.gpu, self.kernel_for(m, n, k), x, w, m, n, k, qkv)?;
        self.gpu.qkv_prologue(qkv, prologue, m)?;
        Ok(())
    }

    /// A projection and the residual step it feeds: `y = x · wᵀ`, then `residual` with `o = y`
    /// (`residual_rms_norm`).
    #[allow(clippy::too_many_arguments)]
    fn proj_residual(
        &self,
        x: &W,
        w: &W,
        m: usize,
        n: usize,
        k: usize,
        y: &mut CudaSlice<f32>,
        residual: ResidualNorm<'_>,
    ) -> Result<()> {
        run_projection(&self.gpu, self.kernel_for(m, n, k), x, w, m, n, k, y)?;
        self.gpu.residual_step(Some(y), residual, m, n)?;
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
        match self.kernel_for(m, n, k) {
            ProjectionKernel::Gemv { kparts } if self.options.ablations().fuse_geglu => {
                g.gemv_bf16_geglu_with(x, w, m, n, k, kparts, z, z_stride, act)?
            }
            kernel => {
                run_projection(&self.gpu, kernel, x, w, m, n, k, scratch)?;
                g.geglu_to_bf16(scratch, n, z, z_stride, m, n, act)?;
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
        g.residual_rms_norm(
            &mut w.x,
            None,
            None,
            1.0,
            Some(first_norm),
            Some(&mut w.a),
            self.weights.ple.is_some().then_some(&mut w.xb),
            n,
            h,
            eps,
        )?;
        let (pd, nl) = (c.hidden_size_per_layer_input, c.num_hidden_layers);
        if let Some(p) = &self.weights.ple {
            self.proj(&w.xb, &p.model_projection, n, nl * pd, h, &mut w.ple_proj)?;
            g.ple_combine(
                &w.ple_proj,
                &p.table,
                &w.ids,
                &p.projection_norm,
                n,
                nl,
                pd,
                [
                    (h as f64).powf(-0.5) as f32,
                    (pd as f64).sqrt() as f32,
                    2f64.powf(-0.5) as f32,
                ],
                eps,
                &mut w.ple,
            )?;
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
            g.attention_with_path(
                &w.q,
                &cache.k,
                &cache.v,
                &w.seq,
                &w.pos,
                n,
                nh,
                cache.layout,
                window,
                1.0,
                max_keys,
                path,
                &mut w.att_b,
            )?;
            // o = att · o_projᵀ; x += post_attn_norm(o); a = pre_ff_norm(x).
            self.proj_residual(
                &w.att_b,
                &l.o_proj,
                n,
                h,
                nh * hd,
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
            self.proj_residual(&w.act, &l.down, n, h, inter, &mut w.o, after_down)?;
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
                    n,
                    h,
                    pd,
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
                self.proj(&w.a, head, n, c.vocab_size, h, &mut w.logits)?;
                n
            }
            Some(sel) => {
                for (i, &r) in sel.iter().enumerate() {
                    g.copy(
                        &w.a.slice(r * h..(r + 1) * h),
                        &mut w.hsel.slice_mut(i * h..(i + 1) * h),
                    )?;
                }
                self.proj(&w.hsel, head, sel.len(), c.vocab_size, h, &mut w.logits)?;
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
