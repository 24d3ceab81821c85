//! The VKAE path's weights on the device, in its fused layout: q|k|v (q|k on k = v layers, q alone on
//! KV-shared layers) and gate|up concatenated at load, everything in BF16.

use vkae_kernels::{CudaSlice, Gpu, QkvLayout};

use crate::config::{LayerSpec, TextConfig};
use crate::error::{EngineError, Result};
use crate::weights::Model;

pub(super) use crate::device::W;
use crate::device::{upload, upload_concat};

pub(super) struct Layer {
    pub(super) spec: LayerSpec,
    pub(super) input_norm: W,
    pub(super) post_attn_norm: W,
    pub(super) pre_ff_norm: W,
    pub(super) post_ff_norm: W,
    pub(super) layer_scalar: f32,
    /// q|k|v rows concatenated (see [`QkvLayout`]).
    pub(super) qkv: W,
    pub(super) qkv_layout: QkvLayout,
    pub(super) q_norm: W,
    pub(super) k_norm: Option<W>,
    pub(super) o_proj: W,
    /// gate rows then up rows: `[2 * intermediate, hidden]`.
    pub(super) gate_up: W,
    pub(super) down: W,
    pub(super) ple: Option<PleLayer>,
}

pub(super) struct PleLayer {
    pub(super) gate: W,
    pub(super) projection: W,
    pub(super) post_norm: W,
}

pub(super) struct Ple {
    pub(super) table: W,
    pub(super) model_projection: W,
    pub(super) projection_norm: W,
}

/// Every weight the path reads, resident on the device.
pub(super) struct FusedWeights {
    pub(super) embed: W,
    pub(super) lm_head: Option<W>,
    pub(super) final_norm: W,
    pub(super) ple: Option<Ple>,
    pub(super) layers: Vec<Layer>,
    pub(super) inv_freq_sliding: CudaSlice<f32>,
    pub(super) inv_freq_full: CudaSlice<f32>,
}

impl FusedWeights {
    /// Uploads `model` in the fused layout.
    pub(super) fn upload(gpu: &Gpu, model: &Model) -> Result<Self> {
        let c = &model.config;
        let mut layers = Vec::with_capacity(model.layers.len());
        for l in &model.layers {
            let s = &l.spec;
            let hd = s.head_dim;
            let nh = c.num_attention_heads;
            let a = &l.attn;
            let (qkv, qkv_layout) = match (&a.k_proj, &a.v_proj) {
                (Some(k), Some(v)) => (
                    upload_concat(gpu, &[&a.q_proj, k, v])?,
                    QkvLayout {
                        heads: nh,
                        kv_heads: s.kv_heads,
                        head_dim: hd,
                        row_stride: (nh + 2 * s.kv_heads) * hd,
                        k_col: nh * hd,
                        v_col: (nh + s.kv_heads) * hd,
                    },
                ),
                // k = v: values are the raw key projection.
                (Some(k), None) => (
                    upload_concat(gpu, &[&a.q_proj, k])?,
                    QkvLayout {
                        heads: nh,
                        kv_heads: s.kv_heads,
                        head_dim: hd,
                        row_stride: (nh + s.kv_heads) * hd,
                        k_col: nh * hd,
                        v_col: nh * hd,
                    },
                ),
                // KV-shared: q only.
                _ => (
                    upload(gpu, &a.q_proj)?,
                    QkvLayout {
                        heads: nh,
                        kv_heads: 0,
                        head_dim: hd,
                        row_stride: nh * hd,
                        k_col: 0,
                        v_col: 0,
                    },
                ),
            };
            if (qkv_layout.kv_heads > 0) != s.kv_source.is_none() {
                return Err(EngineError::Config(format!(
                    "layer {}: k/v projections present = {} but KV source = {:?}",
                    s.index,
                    qkv_layout.kv_heads > 0,
                    s.kv_source
                )));
            }
            layers.push(Layer {
                spec: s.clone(),
                input_norm: upload(gpu, &l.input_norm)?,
                post_attn_norm: upload(gpu, &l.post_attn_norm)?,
                pre_ff_norm: upload(gpu, &l.pre_ff_norm)?,
                post_ff_norm: upload(gpu, &l.post_ff_norm)?,
                layer_scalar: l.layer_scalar,
                qkv,
                qkv_layout,
                q_norm: upload(gpu, &a.q_norm)?,
                k_norm: a.k_norm.as_ref().map(|t| upload(gpu, t)).transpose()?,
                o_proj: upload(gpu, &a.o_proj)?,
                gate_up: upload_concat(gpu, &[&l.gate, &l.up])?,
                down: upload(gpu, &l.down)?,
                ple: match &l.ple {
                    Some(p) => Some(PleLayer {
                        gate: upload(gpu, &p.gate)?,
                        projection: upload(gpu, &p.projection)?,
                        post_norm: upload(gpu, &p.post_norm)?,
                    }),
                    None => None,
                },
            });
        }
        let ple = match &model.ple {
            Some(p) => Some(Ple {
                table: upload(gpu, &p.table)?,
                model_projection: upload(gpu, &p.model_projection)?,
                projection_norm: upload(gpu, &p.projection_norm)?,
            }),
            None => None,
        };
        let inv_freq_sliding = gpu.upload(&c.rope_sliding.inv_freq(c.head_dim))?;
        let inv_freq_full = gpu.upload(&c.rope_full.inv_freq(c.global_head_dim))?;
        Ok(FusedWeights {
            embed: upload(gpu, &model.embed)?,
            lm_head: model.lm_head.as_ref().map(|t| upload(gpu, t)).transpose()?,
            final_norm: upload(gpu, &model.final_norm)?,
            ple,
            layers,
            inv_freq_sliding,
            inv_freq_full,
        })
    }

    /// The LM head (the tied embedding when the checkpoint has none).
    pub(super) fn head(&self) -> &W {
        self.lm_head.as_ref().unwrap_or(&self.embed)
    }

    /// Every projection shape of a decode step with its weights: `(out, in, weights)`.
    pub(super) fn projection_shapes(&self, c: &TextConfig) -> Vec<(usize, usize, Vec<&W>)> {
        fn add<'a>(by: &mut Vec<(usize, usize, Vec<&'a W>)>, n: usize, k: usize, w: &'a W) {
            match by.iter_mut().find(|(bn, bk, _)| *bn == n && *bk == k) {
                Some((_, _, ws)) => ws.push(w),
                None => by.push((n, k, vec![w])),
            }
        }
        let (h, nh, pd) = (
            c.hidden_size,
            c.num_attention_heads,
            c.hidden_size_per_layer_input,
        );
        let mut by = vec![];
        for l in &self.layers {
            let (hd, inter) = (l.spec.head_dim, l.spec.intermediate_size);
            add(&mut by, l.qkv_layout.row_stride, h, &l.qkv);
            add(&mut by, h, nh * hd, &l.o_proj);
            add(&mut by, 2 * inter, h, &l.gate_up);
            add(&mut by, h, inter, &l.down);
            if let Some(p) = &l.ple {
                add(&mut by, pd, h, &p.gate);
                add(&mut by, h, pd, &p.projection);
            }
        }
        if let Some(p) = &self.ple {
            add(&mut by, c.num_hidden_layers * pd, h, &p.model_projection);
        }
        add(&mut by, c.vocab_size, h, self.head());
        by
    }
}
