//! The VKAE kernel path: the generic GPU path's numerics (BF16 weights and projection operands, f32
//! accumulation, f32 residual stream, BF16 KV cache) with fewer, larger launches, and each greedy decode
//! step captured once as a CUDA graph per batch size and replayed per token.
//!
//! What differs from [`crate::gpu`] (one op per launch, no graph):
//! - Weights concatenated at load: q|k|v (q|k on k = v layers, q alone on KV-shared layers) and gate|up,
//!   so a layer runs 5 projections (qkv, o, gate|up, down, and the PLE gate/projection) instead of 7-9.
//! - Fused kernels (vkae-kernels): residual add + post-norm + the next pre-norm + layer scalar in one
//!   launch, writing the next projection's BF16 operand directly (no cast launches); q/k/v norms + RoPE +
//!   KV-cache write in one launch; attention and GeGLU writing the next projection's BF16 operand (the GeGLU
//!   inside the GEMV's epilogue where the GEMV runs the gate|up or per-layer-input gate projection); the
//!   per-layer-input combine in one launch; soft-cap fused into the argmax.
//! - Programmatic dependent launch (Hopper): every kernel of the path may be scheduled while its
//!   predecessor drains and waits for it on the device ([`VkaeOptions::programmatic_launch`]); the
//!   weight-streaming kernels can start pulling their (constant) weights into L2 before that wait
//!   ([`VkaeOptions::prefetch_bytes`]).
//! - Projections with at most 32 rows go to the weight-streaming GEMV (<= 8 rows), the tensor-core skinny
//!   GEMM or cuBLAS, whichever measured fastest for that (rows, out, in) shape when the batch size was first
//!   seen (timed on the model's own weights with CUDA events; [`VkaeModel::projection_choices`] lists the
//!   outcome).
//! - Decode attention split by the cache's context ([`VkaeOptions::context_splits`]); the weight-streaming
//!   kernels' k split chosen by the same measurement ([`VkaeOptions::split_search`]).
//! - The decode step (embedding, every layer, LM head, soft-cap + argmax, then `decode_advance`, which
//!   records the ids and advances the positions on the device) is one CUDA graph per batch size. Token ids,
//!   positions and sequence ids live in fixed device buffers; replaying the graph needs no host work, no
//!   allocation and no synchronisation. Prefill runs the same fused ops eagerly.
//!
//! Not covered: MoE layers (the 26B-A4B's router picks experts on the host); [`VkaeModel::new`] refuses
//! such models with a message naming the generic path.

pub mod bench;

use std::collections::HashMap;
use std::time::Instant;

use vkae_kernels::cudarc::driver::sys::{
    CUevent_flags, CUgraphInstantiate_flags, CUstreamCaptureMode,
};
use vkae_kernels::cudarc::driver::CudaGraph;
use vkae_kernels::half::bf16;
use vkae_kernels::{
    AttentionPath, AttentionSpec, CudaSlice, GemmShape, Gpu, KvCache, KvLayout, PleCombine,
    QkvLayout, QkvPrologue, ResidualNorm, ScratchLimits, Strided, Tokens,
};

use crate::config::{LayerKind, LayerSpec, TextConfig};
use crate::error::{EngineError, Result};
use crate::tensor::Tensor;
use crate::weights::Model;
use crate::{GenerateOutput, GenerateRequest};

type W = CudaSlice<bf16>;

/// How the path runs; the defaults are the measured-best settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VkaeOptions {
    /// Capture each decode step as a CUDA graph and replay it (off: the same launches, issued eagerly).
    pub graphs: bool,
    /// Projection kernel choice for decode batches of at most 32 rows.
    pub projections: ProjectionMode,
    /// Decode attention splits the keys by the context the cache was sized for (~64 keys a split) instead of
    /// by the batch's parallelism alone (fewer splits and no combine launch at short context).
    pub context_splits: bool,
    /// With [`ProjectionMode::Measured`], time the weight-streaming kernels at every k split (1, 2, 4, 8 of a
    /// block's warps) rather than only their default split.
    pub split_search: bool,
    /// Programmatic dependent launch (Hopper and later): each of the path's kernels may be scheduled while
    /// the one before it drains, and waits on it on the device ([`Gpu::set_programmatic_launch`]).
    pub programmatic_launch: bool,
    /// Bytes of its weight rows each weight-streaming block asks L2 for before that wait (0: none).
    pub prefetch_bytes: u32,
    /// Where the GEMV runs the MLP's gate|up projection or the per-layer-input gate, apply the GeGLU in its
    /// epilogue instead of a launch of its own.
    pub fuse_geglu: bool,
    /// The last split block of each query merges the attention partials (`AttentionPath::merge_in_kernel`)
    /// instead of a merge launch: one launch a layer fewer. On: measured faster on the H200 at every batch
    /// and at 16k of context (docs/benchmarks/vkae-path.md).
    pub merge_attention: bool,
    /// Decode attention's online softmax takes each round of 4 keys at once (their scores, one max and one
    /// rescale; `AttentionPath::softmax_per_round`) instead of key by key: a shorter dependent chain per key,
    /// aimed at the 16k row, where the per-head kernel moves 1.03 TB/s. On: measured no slower at any batch
    /// and faster at 16k on the H200 (16k, batch 1: 244.8 against 241.7 tok/s; docs/benchmarks/vkae-path.md).
    pub attention_softmax_per_round: bool,
    /// With [`ProjectionMode::Measured`], also time the algorithms cuBLASLt's heuristic lists for each shape
    /// (up to 8; `Gpu::gemm_bf16_lt`) beside the GEMV, the skinny GEMM and cuBLAS, each first checked against
    /// cuBLAS's output on the model's own weights. Aimed at batch 8 and 32, where cuBLAS's one choice runs the
    /// big projections (gate|up, down, the LM head) at 2.7-3.9 TB/s. Off until measured on the H200.
    pub cublaslt_candidates: bool,
}

impl Default for VkaeOptions {
    /// The settings verified on the H200 (docs/benchmarks/vkae-path.md).
    fn default() -> Self {
        Self {
            graphs: true,
            projections: ProjectionMode::Measured,
            context_splits: true,
            split_search: true,
            programmatic_launch: true,
            prefetch_bytes: 0,
            fuse_geglu: true,
            merge_attention: true,
            attention_softmax_per_round: true,
            cublaslt_candidates: false,
        }
    }
}

/// Which kernel runs a decode projection of at most 32 rows (larger row counts, i.e. prefill, use cuBLAS).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProjectionMode {
    /// Time the candidates on each shape when a batch size is first seen (the GEMV for <= 8 rows, the
    /// tensor-core skinny GEMM for <= 32 rows, cuBLAS); use the fastest.
    Measured,
    /// cuBLAS everywhere.
    Cublas,
    /// The weight-streaming GEMV wherever it applies (<= 8 rows), cuBLAS elsewhere.
    Gemv,
    /// The tensor-core skinny GEMM wherever it applies (<= 32 rows, k a multiple of 32), cuBLAS elsewhere.
    Skinny,
}

impl ProjectionMode {
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "measured" => Ok(Self::Measured),
            "cublas" => Ok(Self::Cublas),
            "gemv" => Ok(Self::Gemv),
            "skinny" => Ok(Self::Skinny),
            other => Err(EngineError::Input(format!(
                "unknown projection mode {other:?} (expected measured, cublas, gemv or skinny)"
            ))),
        }
    }
}

/// The kernel that runs one projection shape.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub enum ProjectionKernel {
    /// The weight-streaming GEMV (gemv.cu) with k split over this many of a block's warps.
    Gemv {
        kparts: usize,
    },
    /// The tensor-core skinny GEMM (gemm_skinny.cu) with k split over this many of a block's warps.
    Skinny {
        kparts: usize,
    },
    Cublas,
    /// cuBLASLt with the algorithm of this index among those its heuristic lists for the shape.
    CublasLt {
        algo: usize,
    },
}

impl ProjectionKernel {
    pub fn name(&self) -> &'static str {
        match self {
            Self::Gemv { .. } => "GEMV",
            Self::Skinny { .. } => "skinny",
            Self::Cublas => "cuBLAS",
            Self::CublasLt { .. } => "cuBLASLt",
        }
    }
}

/// One projection shape's measurement: mean microseconds per matrix over a pass through every weight of that
/// shape in the model (best of 6 passes, CUDA events, launched as the decode step launches them), for each
/// candidate kernel at its best k split (`None` where the kernel does not take the shape), and the choice.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize)]
pub struct ProjectionTiming {
    pub rows: usize,
    pub out: usize,
    pub inner: usize,
    pub gemv_us: Option<f64>,
    pub gemv_kparts: Option<usize>,
    pub skinny_us: Option<f64>,
    pub skinny_kparts: Option<usize>,
    pub cublas_us: f64,
    /// The fastest cuBLASLt algorithm (with `VkaeOptions::cublaslt_candidates`) and its index.
    pub cublaslt_us: Option<f64>,
    pub cublaslt_algo: Option<usize>,
    pub chosen: ProjectionKernel,
}

struct Layer {
    spec: LayerSpec,
    input_norm: W,
    post_attn_norm: W,
    pre_ff_norm: W,
    post_ff_norm: W,
    layer_scalar: f32,
    /// q|k|v rows concatenated (see [`QkvLayout`]).
    qkv: W,
    qkv_layout: QkvLayout,
    q_norm: W,
    k_norm: Option<W>,
    o_proj: W,
    /// gate rows then up rows: `[2 * intermediate, hidden]`.
    gate_up: W,
    down: W,
    ple: Option<PleLayer>,
}

struct PleLayer {
    gate: W,
    projection: W,
    post_norm: W,
}

struct Ple {
    table: W,
    model_projection: W,
    projection_norm: W,
}

/// Activation buffers for `rows` tokens.
struct Work {
    rows: usize,
    x: CudaSlice<f32>,
    /// The next projection's BF16 operand (a normed residual).
    a: W,
    /// The plain residual in BF16 (the PLE gate's and the model projection's operand).
    xb: W,
    qkv: CudaSlice<f32>,
    q: CudaSlice<f32>,
    att_b: W,
    o: CudaSlice<f32>,
    gu: CudaSlice<f32>,
    act: W,
    ple_proj: CudaSlice<f32>,
    ple: CudaSlice<f32>,
    pg: CudaSlice<f32>,
    pact: W,
    hsel: W,
    logits: CudaSlice<f32>,
    ids: CudaSlice<u32>,
    pos: CudaSlice<i32>,
    seq: CudaSlice<i32>,
}

struct LayerKv {
    k: W,
    v: W,
    layout: KvLayout,
}

/// One batch size's decode state: its buffers, KV cache, token history and captured step.
struct Bucket {
    work: Work,
    kv: Vec<Option<LayerKv>>,
    capacity: usize,
    /// `[capacity, batch]` generated ids, row `i` = the `i`-th generated token of every sequence.
    history: CudaSlice<u32>,
    /// The next history row (device-side step counter).
    step: CudaSlice<i32>,
    /// Declared after the buffers it points into, so it is dropped first.
    graph: Option<CudaGraph>,
}

/// A model resident on the GPU, run by the VKAE path.
pub struct VkaeModel {
    gpu: Gpu,
    config: TextConfig,
    options: VkaeOptions,
    embed: W,
    lm_head: Option<W>,
    final_norm: W,
    ple: Option<Ple>,
    layers: Vec<Layer>,
    inv_freq_sliding: CudaSlice<f32>,
    inv_freq_full: CudaSlice<f32>,
    prefill: Option<Work>,
    buckets: HashMap<usize, Bucket>,
    /// Batch rows the kernels' internal scratch buffers were reserved for (growing them frees the old
    /// buffers, which invalidates every captured graph).
    scratch_rows: usize,
    /// `(rows, out, in)` -> the kernel measured fastest for that shape.
    choices: HashMap<(usize, usize, usize), ProjectionKernel>,
    /// What the measurement saw per shape (see [`VkaeModel::projection_choices`]).
    timings: Vec<ProjectionTiming>,
}

fn bf16_bytes(v: &[u16]) -> &[u8] {
    // SAFETY: a u16 slice viewed as its little-endian bytes.
    unsafe { std::slice::from_raw_parts(v.as_ptr() as *const u8, v.len() * 2) }
}

fn upload(gpu: &Gpu, t: &Tensor) -> Result<W> {
    Ok(gpu.upload_bf16_bytes(bf16_bytes(&t.to_bf16()))?)
}

/// Uploads tensors with the same row length as one matrix, rows in the order given.
fn upload_concat(gpu: &Gpu, parts: &[&Tensor]) -> Result<W> {
    let mut all: Vec<u16> = Vec::with_capacity(parts.iter().map(|t| t.numel()).sum());
    for t in parts {
        all.extend_from_slice(&t.to_bf16());
    }
    Ok(gpu.upload_bf16_bytes(bf16_bytes(&all))?)
}

impl VkaeModel {
    /// Opens device 0 (compiling the kernels) and uploads the weights in the path's fused layout.
    pub fn new(model: &Model, options: VkaeOptions) -> Result<Self> {
        let c = model.config.clone();
        if c.enable_moe_block {
            return Err(EngineError::Input(
                "the VKAE path does not cover MoE layers yet (the router runs on the host); use --device cuda"
                    .into(),
            ));
        }
        let gpu = Gpu::new()?;
        Self::apply_launch_options(&gpu, options)?;
        let mut layers = Vec::with_capacity(model.layers.len());
        for l in &model.layers {
            let s = &l.spec;
            let hd = s.head_dim;
            let nh = c.num_attention_heads;
            let a = &l.attn;
            let (qkv, qkv_layout) = match (&a.k_proj, &a.v_proj) {
                (Some(k), Some(v)) => (
                    upload_concat(&gpu, &[&a.q_proj, k, v])?,
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
                    upload_concat(&gpu, &[&a.q_proj, k])?,
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
                    upload(&gpu, &a.q_proj)?,
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
                input_norm: upload(&gpu, &l.input_norm)?,
                post_attn_norm: upload(&gpu, &l.post_attn_norm)?,
                pre_ff_norm: upload(&gpu, &l.pre_ff_norm)?,
                post_ff_norm: upload(&gpu, &l.post_ff_norm)?,
                layer_scalar: l.layer_scalar,
                qkv,
                qkv_layout,
                q_norm: upload(&gpu, &a.q_norm)?,
                k_norm: a.k_norm.as_ref().map(|t| upload(&gpu, t)).transpose()?,
                o_proj: upload(&gpu, &a.o_proj)?,
                gate_up: upload_concat(&gpu, &[&l.gate, &l.up])?,
                down: upload(&gpu, &l.down)?,
                ple: match &l.ple {
                    Some(p) => Some(PleLayer {
                        gate: upload(&gpu, &p.gate)?,
                        projection: upload(&gpu, &p.projection)?,
                        post_norm: upload(&gpu, &p.post_norm)?,
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
        let mut m = VkaeModel {
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
            prefill: None,
            buckets: HashMap::new(),
            scratch_rows: 0,
            choices: HashMap::new(),
            timings: vec![],
            options,
            config: c,
            gpu,
        };
        m.ensure_scratch(32)?;
        m.gpu.synchronize()?;
        Ok(m)
    }

    pub fn config(&self) -> &TextConfig {
        &self.config
    }

    pub fn device_name(&self) -> &str {
        self.gpu.device_name()
    }

    pub fn options(&self) -> VkaeOptions {
        self.options
    }

    /// Switches options; captured graphs are dropped (they hold the old choices).
    pub fn set_options(&mut self, options: VkaeOptions) -> Result<()> {
        self.gpu.synchronize()?;
        for b in self.buckets.values_mut() {
            b.graph = None;
        }
        Self::apply_launch_options(&self.gpu, options)?;
        // The kernel choices were timed under the old launch settings and among the old candidates; time them
        // again when either changes.
        let o = self.options;
        if (
            o.programmatic_launch,
            o.prefetch_bytes,
            o.split_search,
            o.cublaslt_candidates,
        ) != (
            options.programmatic_launch,
            options.prefetch_bytes,
            options.split_search,
            options.cublaslt_candidates,
        ) {
            self.timings.clear();
            self.choices.clear();
        }
        self.options = options;
        Ok(())
    }

    /// Programmatic launch where the device has it (compute capability 9.0+); elsewhere the option is
    /// ignored, since launches without it are the same work in the same order.
    fn apply_launch_options(gpu: &Gpu, options: VkaeOptions) -> Result<()> {
        let programmatic = options.programmatic_launch && gpu.compute_capability().0 >= 9;
        gpu.set_programmatic_launch(programmatic)?;
        gpu.set_gemv_prefetch_bytes(if programmatic {
            options.prefetch_bytes
        } else {
            0
        });
        Ok(())
    }

    /// The measured projection choices so far, in the order measured (see [`ProjectionTiming`]).
    pub fn projection_choices(&self) -> Vec<ProjectionTiming> {
        self.timings.clone()
    }

    /// The same measurements, borrowed.
    pub fn projection_timings(&self) -> &[ProjectionTiming] {
        &self.timings
    }

    /// Reserves the kernels' internal scratch for `rows` rows of argmax (decode rows, or prefill rows whose
    /// logits are wanted) and for every attention call the model can make; growing it drops every captured
    /// graph (they point at the old buffers).
    fn ensure_scratch(&mut self, rows: usize) -> Result<()> {
        if rows <= self.scratch_rows {
            return Ok(());
        }
        let c = &self.config;
        // Attention's scratch is reserved at its bound for any token count (Gpu::attention_scratch_bound), so no
        // later call grows it and a captured step keeps valid pointers.
        self.gpu.reserve_scratch(ScratchLimits {
            linear_elements: 0,
            argmax_rows: rows,
            argmax_cols: c.vocab_size,
            attention_tokens: rows,
            attention_heads: c.num_attention_heads.max(1),
            attention_head_dim: c.head_dim.max(c.global_head_dim),
        })?;
        for b in self.buckets.values_mut() {
            b.graph = None;
        }
        self.scratch_rows = rows;
        Ok(())
    }

    fn new_work(&self, rows: usize, sel: usize) -> Result<Work> {
        let c = &self.config;
        let g = &self.gpu;
        let h = c.hidden_size;
        let hd = c.head_dim.max(c.global_head_dim);
        let qw = c.num_attention_heads * hd;
        let qkvw = self
            .layers
            .iter()
            .map(|l| l.qkv_layout.row_stride)
            .max()
            .unwrap_or(1);
        let inter = self
            .layers
            .iter()
            .map(|l| l.spec.intermediate_size)
            .max()
            .unwrap_or(1);
        let lp = (c.num_hidden_layers * c.hidden_size_per_layer_input).max(1);
        let pd = c.hidden_size_per_layer_input.max(1);
        let f = |n: usize| g.alloc::<f32>(n.max(1));
        let b = |n: usize| g.alloc::<bf16>(n.max(1));
        Ok(Work {
            rows,
            x: f(rows * h)?,
            a: b(rows * h)?,
            xb: b(rows * h)?,
            qkv: f(rows * qkvw)?,
            q: f(rows * qw)?,
            att_b: b(rows * qw)?,
            o: f(rows * h)?,
            gu: f(rows * 2 * inter)?,
            act: b(rows * inter)?,
            ple_proj: f(rows * lp)?,
            ple: f(rows * lp)?,
            pg: f(rows * pd)?,
            pact: b(rows * pd)?,
            hsel: b(sel * h)?,
            logits: f(sel * c.vocab_size)?,
            ids: g.alloc::<u32>(rows.max(1))?,
            pos: g.alloc::<i32>(rows.max(1))?,
            seq: g.alloc::<i32>(rows.max(1))?,
        })
    }

    fn new_kv(&self, num_seqs: usize, capacity: usize) -> Result<Vec<Option<LayerKv>>> {
        self.layers
            .iter()
            .map(|l| {
                if l.spec.kv_source.is_some() {
                    return Ok(None);
                }
                let layout = KvLayout {
                    num_seqs,
                    capacity,
                    kv_heads: l.spec.kv_heads,
                    head_dim: l.spec.head_dim,
                };
                Ok(Some(LayerKv {
                    k: self.gpu.alloc(layout.elements())?,
                    v: self.gpu.alloc(layout.elements())?,
                    layout,
                }))
            })
            .collect()
    }

    /// Every projection shape of a decode step with its weights: `(out, in, weights)`.
    fn projection_shapes(&self) -> Vec<(usize, usize, Vec<&W>)> {
        fn add<'a>(by: &mut Vec<(usize, usize, Vec<&'a W>)>, n: usize, k: usize, w: &'a W) {
            match by.iter_mut().find(|(bn, bk, _)| *bn == n && *bk == k) {
                Some((_, _, ws)) => ws.push(w),
                None => by.push((n, k, vec![w])),
            }
        }
        let c = &self.config;
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
        let head = self.lm_head.as_ref().unwrap_or(&self.embed);
        add(&mut by, c.vocab_size, h, head);
        by
    }

    /// Times the candidate kernels on every projection shape of a `rows`-row step (one pass over all the
    /// model's weights of that shape, candidates taking turns, best of 6 passes after a warm-up pass, CUDA
    /// events) and records the fastest per shape. The passes launch as the decode step does (programmatic
    /// launch as the options say), so a kernel that overlaps its predecessor is credited for it.
    fn measure_projections(&mut self, rows: usize) -> Result<()> {
        if rows > vkae_kernels::SKINNY_MAX_ROWS
            || self.options.projections != ProjectionMode::Measured
        {
            return Ok(());
        }
        let split_search = self.options.split_search;
        let gpu_err = |e: vkae_kernels::cudarc::driver::DriverError| {
            EngineError::Gpu(format!("timing projections: {e}"))
        };
        let results = {
            let shapes = self.projection_shapes();
            let max_in = shapes.iter().map(|s| s.1).max().unwrap_or(1);
            let max_out = shapes.iter().map(|s| s.0).max().unwrap_or(1);
            let g = &self.gpu;
            let mut rng = vkae_kernels::rng::Rng::new(0x5eed ^ rows as u64);
            let x = g.upload(&rng.normal_bf16(rows * max_in, 1.0))?;
            let mut y = g.alloc::<f32>(rows * max_out)?;
            let ev = || {
                g.context()
                    .new_event(Some(CUevent_flags::CU_EVENT_DEFAULT))
                    .map_err(gpu_err)
            };
            let (start, end) = (ev()?, ev()?);
            let mut results = vec![];
            for (n, k, ws) in &shapes {
                let splits = |default: usize| {
                    if split_search {
                        vec![1, 2, 4, 8]
                    } else {
                        vec![default]
                    }
                };
                let mut candidates: Vec<ProjectionKernel> = vec![];
                if Gpu::gemv_supports(rows, *k) {
                    for kparts in splits(g.gemv_default_kparts(*n)) {
                        candidates.push(ProjectionKernel::Gemv { kparts });
                    }
                }
                if Gpu::skinny_supports(rows, *k) {
                    for kparts in splits(g.skinny_default_kparts(rows, *n)) {
                        candidates.push(ProjectionKernel::Skinny { kparts });
                    }
                }
                if candidates.is_empty() {
                    continue;
                }
                candidates.push(ProjectionKernel::Cublas);
                if self.options.cublaslt_candidates {
                    candidates.extend(self.checked_lt_algorithms(rows, *n, *k, &x, ws[0])?);
                }
                let mut best = vec![f64::INFINITY; candidates.len()];
                for round in 0..7 {
                    for (kernel, slot) in candidates.iter().zip(best.iter_mut()) {
                        start.record(g.stream()).map_err(gpu_err)?;
                        for &w in ws {
                            self.run_projection(*kernel, &x, w, rows, *n, *k, &mut y)?;
                        }
                        end.record(g.stream()).map_err(gpu_err)?;
                        g.synchronize()?;
                        let us =
                            start.elapsed_ms(&end).map_err(gpu_err)? as f64 * 1e3 / ws.len() as f64;
                        if round > 0 {
                            // round 0 warms every candidate up
                            *slot = slot.min(us);
                        }
                    }
                }
                let best_of = |pick: fn(&ProjectionKernel) -> Option<usize>| {
                    candidates
                        .iter()
                        .zip(&best)
                        .filter_map(|(c, &t)| pick(c).map(|kp| (kp, t)))
                        .fold(None, |a: Option<(usize, f64)>, (kp, t)| match a {
                            Some((_, bt)) if bt <= t => a,
                            _ => Some((kp, t)),
                        })
                };
                let gemv = best_of(|c| match c {
                    ProjectionKernel::Gemv { kparts } => Some(*kparts),
                    _ => None,
                });
                let skinny = best_of(|c| match c {
                    ProjectionKernel::Skinny { kparts } => Some(*kparts),
                    _ => None,
                });
                let lt = best_of(|c| match c {
                    ProjectionKernel::CublasLt { algo } => Some(*algo),
                    _ => None,
                });
                let cublas = candidates
                    .iter()
                    .position(|c| *c == ProjectionKernel::Cublas)
                    .expect("cuBLAS is a candidate");
                let (ci, _) = best
                    .iter()
                    .enumerate()
                    .fold(
                        (0, f64::INFINITY),
                        |a, (i, &t)| if t < a.1 { (i, t) } else { a },
                    );
                results.push(ProjectionTiming {
                    rows,
                    out: *n,
                    inner: *k,
                    gemv_us: gemv.map(|g| g.1),
                    gemv_kparts: gemv.map(|g| g.0),
                    skinny_us: skinny.map(|s| s.1),
                    skinny_kparts: skinny.map(|s| s.0),
                    cublas_us: best[cublas],
                    cublaslt_us: lt.map(|l| l.1),
                    cublaslt_algo: lt.map(|l| l.0),
                    chosen: candidates[ci],
                });
            }
            results
        };
        for r in results {
            self.choices.insert((r.rows, r.out, r.inner), r.chosen);
            self.timings.push(r);
        }
        Ok(())
    }

    /// The cuBLASLt algorithms listed for `[rows, k] x [n, k]ᵀ` whose output on `x` and the weight `w` matches
    /// cuBLAS's within the tolerance the reference checks give a tensor-core product with f32 accumulation: an
    /// algorithm is timed only once it has computed this shape correctly here.
    fn checked_lt_algorithms(
        &self,
        rows: usize,
        n: usize,
        k: usize,
        x: &W,
        w: &W,
    ) -> Result<Vec<ProjectionKernel>> {
        let g = &self.gpu;
        let algos = g.gemm_lt_algorithms(rows, n, k)?;
        let mut want = g.alloc::<f32>(rows * n)?;
        g.gemm_bf16(x, w, rows, n, k, &mut want)?;
        let want: Vec<f64> = g.download(&want)?.into_iter().map(f64::from).collect();
        let mut got = g.alloc::<f32>(rows * n)?;
        let mut passed = vec![];
        for algo in 0..algos {
            g.gemm_bf16_lt(x, w, GemmShape { m: rows, n, k }, algo, &mut got)?;
            let e = vkae_kernels::tolerance::relative_error(&g.download(&got)?, &want);
            if e <= vkae_kernels::tolerance::MMA_F32_ACCUMULATION {
                passed.push(ProjectionKernel::CublasLt { algo });
            }
        }
        Ok(passed)
    }

    #[allow(clippy::too_many_arguments)]
    fn run_projection(
        &self,
        kernel: ProjectionKernel,
        x: &W,
        w: &W,
        m: usize,
        n: usize,
        k: usize,
        y: &mut CudaSlice<f32>,
    ) -> Result<()> {
        let g = &self.gpu;
        match kernel {
            ProjectionKernel::Gemv { kparts } => {
                g.gemv_bf16_split(x, w, GemmShape { m, n, k }, kparts, y)?
            }
            ProjectionKernel::Skinny { kparts } => {
                g.skinny_gemm_bf16_split(x, w, GemmShape { m, n, k }, kparts, y)?
            }
            ProjectionKernel::Cublas => g.gemm_bf16(x, w, m, n, k, y)?,
            ProjectionKernel::CublasLt { algo } => {
                g.gemm_bf16_lt(x, w, GemmShape { m, n, k }, algo, y)?
            }
        }
        Ok(())
    }

    /// The kernel that runs an `[m, k] x [n, k]ᵀ` projection under the current options.
    fn kernel_for(&self, m: usize, n: usize, k: usize) -> ProjectionKernel {
        let g = &self.gpu;
        match self.options.projections {
            ProjectionMode::Gemv if Gpu::gemv_supports(m, k) => ProjectionKernel::Gemv {
                kparts: g.gemv_default_kparts(n),
            },
            ProjectionMode::Skinny if Gpu::skinny_supports(m, k) => ProjectionKernel::Skinny {
                kparts: g.skinny_default_kparts(m, n),
            },
            ProjectionMode::Measured => self
                .choices
                .get(&(m, n, k))
                .copied()
                .unwrap_or(ProjectionKernel::Cublas),
            _ => ProjectionKernel::Cublas,
        }
    }

    /// `y[m, n] = x[m, k] · w[n, k]ᵀ` through the kernel chosen for this shape.
    #[allow(clippy::too_many_arguments)]
    fn proj(
        &self,
        x: &W,
        w: &W,
        m: usize,
        n: usize,
        k: usize,
        y: &mut CudaSlice<f32>,
    ) -> Result<()> {
        self.run_projection(self.kernel_for(m, n, k), x, w, m, n, k, y)
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
            ProjectionKernel::Gemv { kparts } if self.options.fuse_geglu => {
                let halves = GemmShape { m, n: inter, k };
                g.gemv_bf16_geglu_halves(x, gate_up, halves, kparts, act)?
            }
            kernel => {
                self.run_projection(kernel, x, gate_up, m, 2 * inter, k, gu)?;
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
        self.run_projection(self.kernel_for(m, n, k), x, w, m, n, k, qkv)?;
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
        self.run_projection(self.kernel_for(m, n, k), x, w, m, n, k, y)?;
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
            ProjectionKernel::Gemv { kparts } if self.options.fuse_geglu => {
                let z = Strided::new(z, z_stride);
                g.gemv_bf16_geglu_with(x, w, GemmShape { m, n, k }, kparts, z, act)?
            }
            kernel => {
                self.run_projection(kernel, x, w, m, n, k, scratch)?;
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
    fn forward(
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
        g.embed(
            &self.embed,
            &w.ids,
            n,
            h,
            (h as f64).sqrt() as f32,
            &mut w.x,
        )?;
        let first_norm = self
            .layers
            .first()
            .map_or(&self.final_norm, |l| &l.input_norm);
        let first = ResidualNorm {
            x: &mut w.x,
            w_post: None,
            s: 1.0,
            w_next: Some(first_norm),
            out_norm: Some(&mut w.a),
            out_x: self.ple.is_some().then_some(&mut w.xb),
            eps,
        };
        g.residual_step(None, first, n, h)?;
        let (pd, nl) = (c.hidden_size_per_layer_input, c.num_hidden_layers);
        if let Some(p) = &self.ple {
            self.proj(&w.xb, &p.model_projection, n, nl * pd, h, &mut w.ple_proj)?;
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
        for (li, l) in self.layers.iter().enumerate() {
            let s = &l.spec;
            let hd = s.head_dim;
            let inv_freq = match s.kind {
                LayerKind::Sliding => &self.inv_freq_sliding,
                LayerKind::Full => &self.inv_freq_full,
            };
            let next_norm = self
                .layers
                .get(li + 1)
                .map_or(&self.final_norm, |n| &n.input_norm);
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
            let max_keys = self
                .options
                .context_splits
                .then(|| window.map_or(cache.layout.capacity, |w| w.min(cache.layout.capacity)));
            // Attention writes the o projection's bf16 operand directly (no cast launch).
            let path = AttentionPath {
                merge_in_kernel: self.options.merge_attention,
                softmax_per_round: self.options.attention_softmax_per_round,
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
        let head = self.lm_head.as_ref().unwrap_or(&self.embed);
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

    fn prefill_work(&mut self, rows: usize, sel: usize) -> Result<Work> {
        match self.prefill.take() {
            Some(w) if w.rows >= rows && w.hsel.len() >= sel * self.config.hidden_size => Ok(w),
            _ => self.new_work(rows, sel.max(1)),
        }
    }

    /// The bucket for `b` sequences with room for `capacity` positions each (taken out of the map; put it
    /// back with `self.buckets.insert`).
    fn take_bucket(&mut self, b: usize, capacity: usize) -> Result<Bucket> {
        self.ensure_scratch(b)?;
        if !self.timings.iter().any(|t| t.rows == b) {
            self.measure_projections(b)?;
        }
        match self.buckets.remove(&b) {
            Some(mut bk) if bk.capacity >= capacity => {
                if bk.work.hsel.len() < b * self.config.hidden_size {
                    bk.graph = None;
                }
                Ok(bk)
            }
            old => {
                drop(old);
                // Rounded up generously so requests of similar length reuse the cache and its graph.
                let capacity = capacity.next_multiple_of(1024);
                Ok(Bucket {
                    work: self.new_work(b, b)?,
                    kv: self.new_kv(b, capacity)?,
                    capacity,
                    history: self.gpu.alloc::<u32>(b * capacity)?,
                    step: self.gpu.alloc::<i32>(1)?,
                    graph: None,
                })
            }
        }
    }

    /// Prefills every prompt into the bucket's cache and leaves the first generated ids in
    /// `bucket.work.ids`, each sequence's next position in `bucket.work.pos`, history row 0 written and the
    /// device step counter at 1.
    fn prefill_into(&mut self, bk: &mut Bucket, prompts: &[Vec<u32>]) -> Result<()> {
        let b = prompts.len();
        let (mut ids, mut pos, mut seq, mut last) = (vec![], vec![], vec![], vec![]);
        for (s, p) in prompts.iter().enumerate() {
            for (i, &t) in p.iter().enumerate() {
                ids.push(t);
                pos.push(i as i32);
                seq.push(s as i32);
            }
            last.push(ids.len() - 1);
        }
        self.ensure_scratch(b)?;
        let mut pw = self.prefill_work(ids.len(), b)?;
        let g = &self.gpu;
        g.upload_into(&ids, &mut pw.ids)?;
        g.upload_into(&pos, &mut pw.pos)?;
        g.upload_into(&seq, &mut pw.seq)?;
        let r = self.forward(&mut pw, &mut bk.kv, ids.len(), Some(&last));
        let g = &self.gpu;
        let r = r.and_then(|_| {
            g.copy(&pw.ids.slice(..b), &mut bk.work.ids)?;
            g.copy(&pw.ids.slice(..b), &mut bk.history.slice_mut(..b))?;
            let next: Vec<i32> = prompts.iter().map(|p| p.len() as i32).collect();
            g.upload_into(&next, &mut bk.work.pos)?;
            g.upload_into(&(0..b as i32).collect::<Vec<_>>(), &mut bk.work.seq)?;
            g.upload_into(&[1i32], &mut bk.step)?;
            // The first token's capped logits, for callers that want them.
            g.copy(
                &pw.logits.slice(..b * self.config.vocab_size),
                &mut bk.work.logits,
            )?;
            Ok(())
        });
        self.prefill = Some(pw);
        r
    }

    /// Queues one decode step of the bucket: its graph's replay (captured on first use) or the same
    /// launches issued eagerly.
    fn decode_step(&self, bk: &mut Bucket, b: usize) -> Result<()> {
        let g = &self.gpu;
        if !self.options.graphs {
            self.forward(&mut bk.work, &mut bk.kv, b, None)?;
            return Ok(g.decode_advance(
                &bk.work.ids,
                &mut bk.history,
                &mut bk.step,
                &mut bk.work.pos,
                b,
            )?);
        }
        self.ensure_graph(bk, b)?;
        bk.graph
            .as_ref()
            .expect("captured above")
            .launch()
            .map_err(|e| EngineError::Gpu(format!("replaying the decode step: {e}")))
    }

    /// Captures the bucket's decode step if it has no graph yet (graphs on). Capturing runs nothing, so it can
    /// happen before the timed decode loop.
    fn ensure_graph(&self, bk: &mut Bucket, b: usize) -> Result<()> {
        let g = &self.gpu;
        if self.options.graphs && bk.graph.is_none() {
            g.synchronize()?;
            g.stream()
                .begin_capture(CUstreamCaptureMode::CU_STREAM_CAPTURE_MODE_THREAD_LOCAL)
                .map_err(|e| EngineError::Gpu(format!("beginning the decode-step capture: {e}")))?;
            let queued = self
                .forward(&mut bk.work, &mut bk.kv, b, None)
                .and_then(|_| {
                    Ok(g.decode_advance(
                        &bk.work.ids,
                        &mut bk.history,
                        &mut bk.step,
                        &mut bk.work.pos,
                        b,
                    )?)
                });
            let ended = g.stream().end_capture(CUgraphInstantiate_flags(0));
            queued?;
            let graph = ended
                .map_err(|e| EngineError::Gpu(format!("ending the decode-step capture: {e}")))?
                .ok_or_else(|| EngineError::Gpu("the decode-step capture is empty".into()))?;
            bk.graph = Some(graph);
        }
        Ok(())
    }

    /// Batched greedy generation: all prompts prefilled together, then one graph replay per token for the
    /// whole batch. Tokens/s counts the timed decode steps (everything after the first token).
    pub fn generate(&mut self, req: &GenerateRequest) -> Result<GenerateOutput> {
        let b = req.prompts.len();
        let longest = req.prompts.iter().map(|p| p.len()).max().unwrap_or(0);
        let mut bk = self.take_bucket(b, longest + req.max_new)?;
        let r = self.generate_in(&mut bk, req);
        self.buckets.insert(b, bk);
        r
    }

    fn generate_in(&mut self, bk: &mut Bucket, req: &GenerateRequest) -> Result<GenerateOutput> {
        let b = req.prompts.len();
        self.gpu.synchronize()?;
        let t0 = Instant::now();
        self.prefill_into(bk, &req.prompts)?;
        self.gpu.synchronize()?;
        let prefill_s = t0.elapsed().as_secs_f64();
        // A first use of this bucket captures its step here, outside the timed decode.
        self.ensure_graph(bk, b)?;
        self.gpu.synchronize()?;
        let t1 = Instant::now();
        let mut steps = 0;
        for step in 1..req.max_new {
            if req.stop_at_eos {
                let h = self.gpu.download(&bk.history.slice(..step * b))?;
                let done = (0..b)
                    .all(|s| (0..step).any(|i| self.config.eos_token_ids.contains(&h[i * b + s])));
                if done {
                    break;
                }
            }
            self.decode_step(bk, b)?;
            steps += 1;
        }
        let produced = steps + 1;
        let flat = self.gpu.download(&bk.history.slice(..produced * b))?; // synchronizes
        let decode_s = t1.elapsed().as_secs_f64();
        let mut tokens: Vec<Vec<u32>> = (0..b)
            .map(|s| (0..produced).map(|i| flat[i * b + s]).collect())
            .collect();
        if req.stop_at_eos {
            for t in tokens.iter_mut() {
                if let Some(p) = t.iter().position(|x| self.config.eos_token_ids.contains(x)) {
                    t.truncate(p + 1);
                }
            }
        }
        Ok(GenerateOutput {
            tokens,
            prefill_s,
            decode_s,
            decode_steps: steps,
            tokens_per_s: if decode_s > 0.0 {
                (steps * b) as f64 / decode_s
            } else {
                0.0
            },
        })
    }

    /// Greedy generation of one sequence through the same captured decode step, returning each step's
    /// soft-capped logits (for checks against the generic path and the CPU reference).
    pub fn generate_with_logits(
        &mut self,
        prompt: &[u32],
        max_new: usize,
    ) -> Result<(Vec<u32>, Vec<Vec<f32>>)> {
        let vsz = self.config.vocab_size;
        let mut bk = self.take_bucket(1, prompt.len() + max_new)?;
        let r = (|| {
            self.prefill_into(&mut bk, &[prompt.to_vec()])?;
            let mut all = vec![self.gpu.download(&bk.work.logits.slice(..vsz))?];
            for _ in 1..max_new {
                self.decode_step(&mut bk, 1)?;
                all.push(self.gpu.download(&bk.work.logits.slice(..vsz))?);
            }
            let toks = self.gpu.download(&bk.history.slice(..max_new))?;
            Ok((toks, all))
        })();
        self.buckets.insert(1, bk);
        r
    }

    /// Teacher-forced decode through the same decode step (graph or eager, as the options say), for checks:
    /// prefills `prompt`, then feeds each of `forced` as the next input token (written into the step's id
    /// buffer before the step runs) and returns the soft-capped logits of the prefill and of every step, so a
    /// decode step can be compared with a prefill over the same tokens without greedy ties steering it.
    pub fn decode_forced(&mut self, prompt: &[u32], forced: &[u32]) -> Result<Vec<Vec<f32>>> {
        let vsz = self.config.vocab_size;
        if let Some(&bad) = forced.iter().find(|&&t| t as usize >= vsz) {
            return Err(EngineError::Input(format!(
                "forced token {bad} is outside the vocabulary (size {vsz})"
            )));
        }
        let mut bk = self.take_bucket(1, prompt.len() + forced.len() + 1)?;
        let r = (|| {
            self.prefill_into(&mut bk, &[prompt.to_vec()])?;
            let mut all = vec![self.gpu.download(&bk.work.logits.slice(..vsz))?];
            for &t in forced {
                self.gpu.upload_into(&[t], &mut bk.work.ids)?;
                self.decode_step(&mut bk, 1)?;
                all.push(self.gpu.download(&bk.work.logits.slice(..vsz))?);
            }
            Ok(all)
        })();
        self.buckets.insert(1, bk);
        r
    }

    /// Soft-capped logits of every position of one sequence (`[len, vocab]`), from one eager prefill.
    pub fn prefill_logits(&mut self, ids: &[u32]) -> Result<Vec<f32>> {
        let n = ids.len();
        self.ensure_scratch(n)?;
        let mut pw = self.prefill_work(n, n)?;
        let mut kv = self.new_kv(1, n)?;
        let g = &self.gpu;
        g.upload_into(ids, &mut pw.ids)?;
        g.upload_into(&(0..n as i32).collect::<Vec<_>>(), &mut pw.pos)?;
        g.upload_into(&vec![0i32; n], &mut pw.seq)?;
        let all: Vec<usize> = (0..n).collect();
        let r = self
            .forward(&mut pw, &mut kv, n, Some(&all))
            .and_then(|nsel| {
                Ok(self
                    .gpu
                    .download(&pw.logits.slice(..nsel * self.config.vocab_size))?)
            });
        self.prefill = Some(pw);
        r
    }
}
