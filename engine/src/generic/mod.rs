//! The generic CUDA path: BF16 weights on the device, cuBLAS projections (`vkae-kernels` `linear`: f32
//! activations cast to BF16, f32 accumulation), `vkae-kernels` ops for everything else, a BF16 KV cache,
//! greedy decode with the argmax feeding the next step on the device. One op per launch: no fusion, no graphs
//! (that is the kernel path's job). The MoE router's top-k runs on the host (a sync per MoE layer).
//!
//! The residual stream and all activations are f32; the embedding scale is the f32 sqrt(hidden), as in the
//! CPU reference (transformers in BF16 rounds it to BF16 first).

pub(crate) mod slots;

use std::time::Instant;

use vkae_kernels::{
    AttentionPath, AttentionSpec, CudaSlice, Gpu, KvCache, KvCacheMut, Strided, Tokens,
};

use crate::config::{LayerKind, LayerSpec, TextConfig};
use crate::cpu;
use crate::device::{new_kv, upload, LayerKv, W};
use crate::error::Result;
use crate::session::pack::{
    batched_output, EosTracker, GenerateOutput, GenerateRequest, PackedRows,
};
use crate::tensor::Tensor;
use crate::weights::Model;

/// Whether a CUDA device can be used here; `Err` says why not (for tests that skip).
pub fn available() -> std::result::Result<(), String> {
    vkae_kernels::cuda_libraries_present()?;
    Gpu::new().map(|_| ()).map_err(|e| e.to_string())
}

struct Attn {
    q_proj: W,
    q_norm: W,
    k_proj: Option<W>,
    k_norm: Option<W>,
    v_proj: Option<W>,
    o_proj: W,
}

struct PleLayer {
    gate: W,
    projection: W,
    post_norm: W,
}

struct Moe {
    router_proj: W,
    router_scale: W,
    per_expert_scale: Vec<f32>,
    gate_up: W,
    down: W,
    post_ff_norm_1: W,
    post_ff_norm_2: W,
    pre_ff_norm_2: W,
}

struct Layer {
    spec: LayerSpec,
    input_norm: W,
    post_attn_norm: W,
    pre_ff_norm: W,
    post_ff_norm: W,
    layer_scalar: f32,
    attn: Attn,
    gate: W,
    up: W,
    down: W,
    ple: Option<PleLayer>,
    moe: Option<Moe>,
}

struct Ple {
    table: W,
    model_projection: W,
    projection_norm: W,
}

/// Activation buffers for up to `rows` tokens per forward call (grown on demand).
struct Work {
    rows: usize,
    x: CudaSlice<f32>,
    a: CudaSlice<f32>,
    q: CudaSlice<f32>,
    k: CudaSlice<f32>,
    v: CudaSlice<f32>,
    att: CudaSlice<f32>,
    o: CudaSlice<f32>,
    g: CudaSlice<f32>,
    u: CudaSlice<f32>,
    act: CudaSlice<f32>,
    ple_tab: CudaSlice<f32>,
    ple: CudaSlice<f32>,
    pg: CudaSlice<f32>,
    pact: CudaSlice<f32>,
    moe_out: CudaSlice<f32>,
    moe_x: CudaSlice<f32>,
    router: CudaSlice<f32>,
    gu: CudaSlice<f32>,
    eact: CudaSlice<f32>,
    ey: CudaSlice<f32>,
    hsel: CudaSlice<f32>,
    logits: CudaSlice<f32>,
    ids: CudaSlice<u32>,
    pos: CudaSlice<i32>,
    seq: CudaSlice<i32>,
}

/// A model resident on the GPU.
pub struct GenericModel {
    gpu: Gpu,
    config: TextConfig,
    embed: W,
    lm_head: Option<W>,
    final_norm: W,
    ple: Option<Ple>,
    layers: Vec<Layer>,
    inv_freq_sliding: CudaSlice<f32>,
    inv_freq_full: CudaSlice<f32>,
    work: Option<Work>,
}

impl GenericModel {
    /// Opens device 0 (compiling the kernels) and uploads the model's weights as BF16.
    pub fn new(model: &Model) -> Result<Self> {
        let gpu = Gpu::new()?;
        let c = model.config.clone();
        let mut layers = Vec::new();
        for l in &model.layers {
            let opt = |t: &Option<Tensor>| -> Result<Option<W>> {
                t.as_ref().map(|t| upload(&gpu, t)).transpose()
            };
            layers.push(Layer {
                spec: l.spec.clone(),
                input_norm: upload(&gpu, &l.input_norm)?,
                post_attn_norm: upload(&gpu, &l.post_attn_norm)?,
                pre_ff_norm: upload(&gpu, &l.pre_ff_norm)?,
                post_ff_norm: upload(&gpu, &l.post_ff_norm)?,
                layer_scalar: l.layer_scalar,
                attn: Attn {
                    q_proj: upload(&gpu, &l.attn.q_proj)?,
                    q_norm: upload(&gpu, &l.attn.q_norm)?,
                    k_proj: opt(&l.attn.k_proj)?,
                    k_norm: opt(&l.attn.k_norm)?,
                    v_proj: opt(&l.attn.v_proj)?,
                    o_proj: upload(&gpu, &l.attn.o_proj)?,
                },
                gate: upload(&gpu, &l.gate)?,
                up: upload(&gpu, &l.up)?,
                down: upload(&gpu, &l.down)?,
                ple: match &l.ple {
                    Some(p) => Some(PleLayer {
                        gate: upload(&gpu, &p.gate)?,
                        projection: upload(&gpu, &p.projection)?,
                        post_norm: upload(&gpu, &p.post_norm)?,
                    }),
                    None => None,
                },
                moe: match &l.moe {
                    Some(m) => Some(Moe {
                        router_proj: upload(&gpu, &m.router_proj)?,
                        router_scale: upload(&gpu, &m.router_scale)?,
                        per_expert_scale: m.per_expert_scale.to_f32().into_owned(),
                        gate_up: upload(&gpu, &m.gate_up)?,
                        down: upload(&gpu, &m.down)?,
                        post_ff_norm_1: upload(&gpu, &m.post_ff_norm_1)?,
                        post_ff_norm_2: upload(&gpu, &m.post_ff_norm_2)?,
                        pre_ff_norm_2: upload(&gpu, &m.pre_ff_norm_2)?,
                    }),
                    None => None,
                },
            });
        }
        let ple = match &model.ple {
            Some(p) => Some(Ple {
                table: upload(&gpu, &p.table)?,
                model_projection: upload(&gpu, &p.model_projection)?,
                projection_norm: upload(&gpu, &p.projection_norm)?,
            }),
            None => None,
        };
        let inv_freq_sliding = gpu.upload(&c.rope_sliding.inv_freq(c.head_dim))?;
        let inv_freq_full = gpu.upload(&c.rope_full.inv_freq(c.global_head_dim))?;
        let m = GenericModel {
            embed: upload(&gpu, &model.embed)?,
            lm_head: model
                .lm_head
                .as_ref()
                .map(|t| upload(&gpu, t))
                .transpose()?,
            final_norm: upload(&gpu, &model.final_norm)?,
            ple,
            layers,
            inv_freq_sliding,
            inv_freq_full,
            work: None,
            config: c,
            gpu,
        };
        m.gpu.synchronize()?;
        Ok(m)
    }

    pub fn config(&self) -> &TextConfig {
        &self.config
    }

    pub fn device_name(&self) -> &str {
        self.gpu.device_name()
    }

    fn ensure_work(&mut self, rows: usize, sel: usize) -> Result<()> {
        if self
            .work
            .as_ref()
            .is_some_and(|w| w.rows >= rows && w.hsel.len() >= sel * self.config.hidden_size)
        {
            return Ok(());
        }
        let c = &self.config;
        let g = &self.gpu;
        let rows = rows.max(self.work.as_ref().map_or(0, |w| w.rows));
        let sel = sel.max(rows.min(64));
        let h = c.hidden_size;
        let hd = c.head_dim.max(c.global_head_dim);
        let qw = c.num_attention_heads * hd;
        let kvw = (c.num_key_value_heads * c.head_dim)
            .max(c.num_global_key_value_heads * c.global_head_dim);
        let inter = c
            .layers()
            .iter()
            .map(|l| l.intermediate_size)
            .max()
            .unwrap_or(0);
        let lp = (c.num_hidden_layers * c.hidden_size_per_layer_input).max(1);
        let pd = c.hidden_size_per_layer_input.max(1);
        let mi = c.moe_intermediate_size.max(1);
        let f = |n: usize| g.alloc::<f32>(n.max(1));
        self.work = Some(Work {
            rows,
            x: f(rows * h)?,
            a: f(rows * h)?,
            q: f(rows * qw)?,
            k: f(rows * kvw)?,
            v: f(rows * kvw)?,
            att: f(rows * qw)?,
            o: f(rows * h)?,
            g: f(rows * inter)?,
            u: f(rows * inter)?,
            act: f(rows * inter)?,
            ple_tab: f(rows * lp)?,
            ple: f(rows * lp)?,
            pg: f(rows * pd)?,
            pact: f(rows * pd)?,
            moe_out: f(if c.enable_moe_block { rows * h } else { 1 })?,
            moe_x: f(if c.enable_moe_block { rows * h } else { 1 })?,
            router: f(if c.enable_moe_block {
                rows * c.num_experts
            } else {
                1
            })?,
            gu: f(2 * mi)?,
            eact: f(mi)?,
            ey: f(h)?,
            hsel: f(sel * h)?,
            logits: f(sel * c.vocab_size)?,
            ids: g.alloc::<u32>(rows.max(1))?,
            pos: g.alloc::<i32>(rows.max(1))?,
            seq: g.alloc::<i32>(rows.max(1))?,
        });
        Ok(())
    }

    fn new_kv(&self, num_seqs: usize, capacity: usize) -> Result<Vec<Option<LayerKv>>> {
        new_kv(
            &self.gpu,
            self.layers.iter().map(|l| &l.spec),
            num_seqs,
            capacity,
        )
    }

    /// Runs `rows` tokens (ids already in `work.ids`, positions and sequence ids in `work.pos` / `work.seq`)
    /// through the decoder, appending to `kv`, and leaves soft-capped logits of the rows `select` (or of every
    /// row when `None`) in `work.logits` (`[selected, vocab]`).
    fn forward(
        &mut self,
        kv: &mut [Option<LayerKv>],
        rows: usize,
        select: Option<&[usize]>,
    ) -> Result<usize> {
        let c = self.config.clone();
        let g = &self.gpu;
        let w = self.work.as_mut().expect("ensure_work first");
        let (h, n) = (c.hidden_size, rows);
        let eps = c.rms_norm_eps as f32;
        g.embed(
            &self.embed,
            &w.ids,
            n,
            h,
            (h as f64).sqrt() as f32,
            &mut w.x,
        )?;
        // Per-layer inputs: (rmsnorm(proj(x) / sqrt(h)) + table[id] * sqrt(P)) / sqrt(2).
        if let Some(p) = &self.ple {
            let (pd, nl) = (c.hidden_size_per_layer_input, c.num_hidden_layers);
            g.embed(
                &p.table,
                &w.ids,
                n,
                nl * pd,
                (pd as f64).sqrt() as f32,
                &mut w.ple_tab,
            )?;
            g.linear(&w.x, &p.model_projection, n, nl * pd, h, &mut w.ple)?;
            g.scale_inplace(&mut w.ple, (h as f64).powf(-0.5) as f32, n * nl * pd)?;
            g.rms_norm_inplace(&mut w.ple, Some(&p.projection_norm), eps, n * nl, pd)?;
            g.add_inplace(&mut w.ple, &w.ple_tab, n * nl * pd)?;
            g.scale_inplace(&mut w.ple, 2f64.powf(-0.5) as f32, n * nl * pd)?;
        }
        for (li, l) in self.layers.iter().enumerate() {
            let s = &l.spec;
            let (hd, nh, kvh) = (s.head_dim, c.num_attention_heads, s.kv_heads);
            let inv_freq = match s.kind {
                LayerKind::Sliding => &self.inv_freq_sliding,
                LayerKind::Full => &self.inv_freq_full,
            };
            // Attention.
            g.rms_norm(&w.x, Some(&l.input_norm), eps, n, h, &mut w.a)?;
            g.linear(&w.a, &l.attn.q_proj, n, nh * hd, h, &mut w.q)?;
            g.rms_norm_inplace(&mut w.q, Some(&l.attn.q_norm), eps, n * nh, hd)?;
            g.rope(&mut w.q, &w.pos, inv_freq, n, nh, hd)?;
            if s.kv_source.is_none() {
                let kp = l.attn.k_proj.as_ref().expect("owner has k_proj");
                g.linear(&w.a, kp, n, kvh * hd, h, &mut w.k)?;
                match &l.attn.v_proj {
                    Some(vp) => g.linear(&w.a, vp, n, kvh * hd, h, &mut w.v)?,
                    // k = v: values are the raw key projection (before k_norm and rope).
                    None => g.copy(&w.k.slice(..n * kvh * hd), &mut w.v)?,
                }
                g.rms_norm_inplace(&mut w.k, l.attn.k_norm.as_ref(), eps, n * kvh, hd)?;
                g.rope(&mut w.k, &w.pos, inv_freq, n, kvh, hd)?;
                g.rms_norm_inplace(&mut w.v, None, eps, n * kvh, hd)?;
                let cache = kv[li].as_mut().expect("owner has a cache");
                let tokens = Tokens::new(&w.seq, &w.pos, n);
                let cache = KvCacheMut::new(&mut cache.k, &mut cache.v, cache.layout);
                g.kv_append(&w.k, &w.v, tokens, cache)?;
            }
            let cache = kv[s.kv_source.unwrap_or(li)]
                .as_ref()
                .expect("owner has a cache");
            let window = (s.kind == LayerKind::Sliding).then_some(s.window);
            let spec = AttentionSpec {
                heads: nh,
                window,
                scale: 1.0,
                max_keys: None,
                path: AttentionPath::default(),
            };
            let cache = KvCache::new(&cache.k, &cache.v, cache.layout);
            let tokens = Tokens::new(&w.seq, &w.pos, n);
            g.attention(&w.q, cache, tokens, spec, &mut w.att)?;
            g.linear(&w.att, &l.attn.o_proj, n, h, nh * hd, &mut w.o)?;
            g.rms_norm_inplace(&mut w.o, Some(&l.post_attn_norm), eps, n, h)?;
            g.add_inplace(&mut w.x, &w.o, n * h)?;
            // Feed-forward.
            let inter = s.intermediate_size;
            g.rms_norm(&w.x, Some(&l.pre_ff_norm), eps, n, h, &mut w.a)?;
            g.linear(&w.a, &l.gate, n, inter, h, &mut w.g)?;
            g.linear(&w.a, &l.up, n, inter, h, &mut w.u)?;
            g.geglu(
                Strided::new(&w.g, inter),
                Strided::new(&w.u, inter),
                n,
                inter,
                &mut w.act,
            )?;
            g.linear(&w.act, &l.down, n, h, inter, &mut w.o)?;
            if let Some(m) = &l.moe {
                g.rms_norm_inplace(&mut w.o, Some(&m.post_ff_norm_1), eps, n, h)?;
                moe_block(g, &c, m, w, n, eps)?;
                g.add_inplace(&mut w.o, &w.moe_out, n * h)?;
            }
            g.rms_norm_inplace(&mut w.o, Some(&l.post_ff_norm), eps, n, h)?;
            g.add_inplace(&mut w.x, &w.o, n * h)?;
            // Per-layer input branch.
            if let Some(p) = &l.ple {
                let (pd, nl) = (c.hidden_size_per_layer_input, c.num_hidden_layers);
                g.linear(&w.x, &p.gate, n, pd, h, &mut w.pg)?;
                g.geglu(
                    Strided::new(&w.pg, pd),
                    Strided::new(&w.ple.slice(li * pd..), nl * pd),
                    n,
                    pd,
                    &mut w.pact,
                )?;
                g.linear(&w.pact, &p.projection, n, h, pd, &mut w.o)?;
                g.rms_norm_inplace(&mut w.o, Some(&p.post_norm), eps, n, h)?;
                g.add_inplace(&mut w.x, &w.o, n * h)?;
            }
            g.scale_inplace(&mut w.x, l.layer_scalar, n * h)?;
        }
        // Final norm, LM head on the selected rows, soft-cap.
        g.rms_norm(&w.x, Some(&self.final_norm), eps, n, h, &mut w.a)?;
        let nsel = match select {
            None => {
                g.copy(&w.a.slice(..n * h), &mut w.hsel)?;
                n
            }
            Some(rows) => {
                for (i, &r) in rows.iter().enumerate() {
                    g.copy(
                        &w.a.slice(r * h..(r + 1) * h),
                        &mut w.hsel.slice_mut(i * h..(i + 1) * h),
                    )?;
                }
                rows.len()
            }
        };
        let head = self.lm_head.as_ref().unwrap_or(&self.embed);
        g.linear(&w.hsel, head, nsel, c.vocab_size, h, &mut w.logits)?;
        if let Some(cap) = c.final_logit_softcapping {
            g.softcap_inplace(&mut w.logits, cap as f32, nsel * c.vocab_size)?;
        }
        Ok(nsel)
    }

    fn set_rows(&mut self, ids: Option<&[u32]>, pos: &[i32], seq: &[i32]) -> Result<()> {
        let w = self.work.as_mut().expect("ensure_work first");
        if let Some(ids) = ids {
            self.gpu.upload_into(ids, &mut w.ids)?;
        }
        self.gpu.upload_into(pos, &mut w.pos)?;
        self.gpu.upload_into(seq, &mut w.seq)?;
        Ok(())
    }

    /// Soft-capped logits of every position of one sequence (`[len, vocab]`).
    pub fn prefill_logits(&mut self, ids: &[u32]) -> Result<Vec<f32>> {
        let n = ids.len();
        self.ensure_work(n, n)?;
        let mut kv = self.new_kv(1, n)?;
        let pos: Vec<i32> = (0..n as i32).collect();
        self.set_rows(Some(ids), &pos, &vec![0; n])?;
        let nsel = self.forward(&mut kv, n, None)?;
        let w = self.work.as_ref().expect("work");
        let v = self
            .gpu
            .download(&w.logits.slice(..nsel * self.config.vocab_size))?;
        Ok(v)
    }

    /// Greedy generation of one sequence, returning each step's logits (for checks against the CPU).
    pub fn generate_with_logits(
        &mut self,
        prompt: &[u32],
        max_new: usize,
    ) -> Result<(Vec<u32>, Vec<Vec<f32>>)> {
        let n = prompt.len();
        let vsz = self.config.vocab_size;
        self.ensure_work(n, 1)?;
        let mut kv = self.new_kv(1, n + max_new)?;
        let pos: Vec<i32> = (0..n as i32).collect();
        self.set_rows(Some(prompt), &pos, &vec![0; n])?;
        self.forward(&mut kv, n, Some(&[n - 1]))?;
        let (mut toks, mut all) = (vec![], vec![]);
        for step in 0..max_new {
            let logits = self
                .gpu
                .download(&self.work.as_ref().expect("work").logits.slice(..vsz))?;
            let t = cpu::argmax(&logits);
            toks.push(t);
            all.push(logits);
            if step + 1 == max_new {
                break;
            }
            self.set_rows(Some(&[t]), &[(n + step) as i32], &[0])?;
            self.forward(&mut kv, 1, None)?;
        }
        Ok((toks, all))
    }

    /// Batched greedy generation: all prompts prefilled together, then one decode step per token for the
    /// whole batch; the argmax writes the next ids on the device. Tokens/s counts the timed decode steps
    /// (everything after the first token) over all sequences.
    pub fn generate(&mut self, req: &GenerateRequest) -> Result<GenerateOutput> {
        let b = req.prompts.len();
        let vsz = self.config.vocab_size;
        let rows = PackedRows::prompts(&req.prompts);
        let longest = req.prompts.iter().map(|p| p.len()).max().unwrap_or(0);
        self.ensure_work(rows.len().max(b), b)?;
        let mut kv = self.new_kv(b, longest + req.max_new)?;
        let mut history = self.gpu.alloc::<u32>(b * req.max_new)?;
        self.gpu.synchronize()?;
        let t0 = Instant::now();
        self.set_rows(Some(&rows.ids), &rows.pos, &rows.seq)?;
        self.forward(&mut kv, rows.len(), Some(&rows.last))?;
        {
            let w = self.work.as_mut().expect("work");
            self.gpu.argmax_rows(&w.logits, b, vsz, &mut w.ids)?;
            self.gpu
                .copy(&w.ids.slice(..b), &mut history.slice_mut(..b))?;
        }
        self.gpu.synchronize()?;
        let prefill_s = t0.elapsed().as_secs_f64();
        let seqs: Vec<i32> = (0..b as i32).collect();
        let t1 = Instant::now();
        let mut steps = 0;
        let mut eos = EosTracker::new(&self.config, b);
        for step in 1..req.max_new {
            if req.stop_at_eos && eos.observe_on_device(&self.gpu, &history, step, b)? {
                break;
            }
            let positions: Vec<i32> = req
                .prompts
                .iter()
                .map(|p| (p.len() + step - 1) as i32)
                .collect();
            self.set_rows(None, &positions, &seqs)?;
            self.forward(&mut kv, b, None)?;
            let w = self.work.as_mut().expect("work");
            self.gpu.argmax_rows(&w.logits, b, vsz, &mut w.ids)?;
            self.gpu.copy(
                &w.ids.slice(..b),
                &mut history.slice_mut(step * b..(step + 1) * b),
            )?;
            steps += 1;
        }
        let flat = self.gpu.download(&history)?; // synchronizes
        let decode_s = t1.elapsed().as_secs_f64();
        let c = &self.config;
        Ok(batched_output(req, c, &flat, steps, prefill_s, decode_s))
    }
}

/// The routed experts on the GPU: router logits to the host, softmax/top-k/renormalise there, then one
/// m=1 projection chain per (token, expert) pair, weighted and summed into `w.moe_out`, then
/// post_feedforward_layernorm_2.
fn moe_block(g: &Gpu, c: &TextConfig, m: &Moe, w: &mut Work, n: usize, eps: f32) -> Result<()> {
    let (h, ne, k, mi) = (
        c.hidden_size,
        c.num_experts,
        c.top_k_experts,
        c.moe_intermediate_size,
    );
    // Router input: rmsnorm(residual) * scale * h^-0.5 (the residual is w.x before the MLP's add).
    g.rms_norm(&w.x, Some(&m.router_scale), eps, n, h, &mut w.moe_x)?;
    g.scale_inplace(&mut w.moe_x, (h as f64).powf(-0.5) as f32, n * h)?;
    g.linear(&w.moe_x, &m.router_proj, n, ne, h, &mut w.router)?;
    let scores = g.download(&w.router.slice(..n * ne))?;
    g.rms_norm(&w.x, Some(&m.pre_ff_norm_2), eps, n, h, &mut w.moe_x)?;
    g.scale_inplace(&mut w.moe_out, 0.0, n * h)?;
    for t in 0..n {
        let s = &scores[t * ne..(t + 1) * ne];
        let mx = s.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
        let e: Vec<f32> = s.iter().map(|v| (v - mx).exp()).collect();
        let sum: f32 = e.iter().sum();
        let p: Vec<f32> = e.iter().map(|v| v / sum).collect();
        let mut order: Vec<usize> = (0..ne).collect();
        order.sort_by(|&a, &b| {
            p[b].partial_cmp(&p[a])
                .unwrap_or(std::cmp::Ordering::Equal)
                .then(a.cmp(&b))
        });
        let tsum: f32 = order[..k].iter().map(|&i| p[i]).sum();
        for &ex in &order[..k] {
            let weight = p[ex] / tsum * m.per_expert_scale[ex];
            let xin = w.moe_x.slice(t * h..(t + 1) * h);
            g.linear(
                &xin,
                &m.gate_up.slice(ex * 2 * mi * h..(ex + 1) * 2 * mi * h),
                1,
                2 * mi,
                h,
                &mut w.gu,
            )?;
            g.geglu(
                Strided::new(&w.gu, 2 * mi),
                Strided::new(&w.gu.slice(mi..), 2 * mi),
                1,
                mi,
                &mut w.eact,
            )?;
            g.linear(
                &w.eact,
                &m.down.slice(ex * h * mi..(ex + 1) * h * mi),
                1,
                h,
                mi,
                &mut w.ey,
            )?;
            g.scale_inplace(&mut w.ey, weight, h)?;
            g.add_inplace(&mut w.moe_out.slice_mut(t * h..(t + 1) * h), &w.ey, h)?;
        }
    }
    g.rms_norm_inplace(&mut w.moe_out, Some(&m.post_ff_norm_2), eps, n, h)?;
    Ok(())
}
