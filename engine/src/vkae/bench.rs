//! The VKAE-vs-generic decode benchmark: one process, one set of weights, one prompt; the generic path and
//! each VKAE variant decode the same greedy request at each batch size, through [`crate::bench::measure`]:
//! warm-up runs (module load, graph capture, projection timing) excluded, each repetition's tokens/s counting
//! the decode steps after the first token, median with min/max over the repetitions. Achieved bandwidth = bytes a step must stream x
//! steps per second, where the bytes are the weights read once per step (everything but the PLE table,
//! plus the batch's PLE rows) and the KV cache the step's attention reads (each cached entry once).

use serde::Serialize;

use super::{Ablations, ProjectionMode, VkaeModel, VkaeOptions};
use crate::bench::{bench_prompt, measure, Summary};
use crate::error::Result;
use crate::stats::{bytes_per_step, mean_decode_depth, model_stats};
use crate::{generic::GenericModel, GenerateRequest, Model};

/// What to run.
#[derive(Clone, Debug)]
pub struct VkaeBenchSettings {
    pub prompt_len: usize,
    /// Tokens generated per sequence (the first from prefill; `max_new - 1` decode steps are timed).
    pub max_new: usize,
    pub batches: Vec<usize>,
    pub reps: usize,
    pub warmup: usize,
    pub prompt_seed: u64,
    /// Also time the generic path (the comparison the report is for).
    pub generic: bool,
    /// VKAE variants, each `(label, options)`.
    pub variants: Vec<(String, VkaeOptions)>,
}

impl Default for VkaeBenchSettings {
    fn default() -> Self {
        Self {
            prompt_len: 128,
            max_new: 65,
            batches: vec![1, 8, 32],
            reps: 3,
            warmup: 1,
            prompt_seed: 1,
            generic: true,
            variants: Self::all_variants(),
        }
    }
}

impl VkaeBenchSettings {
    /// Each step of the path on its own, so the report attributes the gain: the fused launches issued
    /// eagerly with cuBLAS, then captured as a graph, then the measured GEMV/cuBLAS choice (the default).
    /// The default and the steps that led to it, each one change apart, so one run shows what each bought.
    pub fn all_variants() -> Vec<(String, VkaeOptions)> {
        let d = VkaeOptions::default();
        let no_pdl = VkaeOptions {
            programmatic_launch: false,
            ablations: Ablations {
                prefetch_bytes: 0,
                ..d.ablations
            },
            ..d
        };
        let mut variants = vec![
            (
                "vkae graph, cuBLAS, no PDL".to_string(),
                VkaeOptions {
                    projections: ProjectionMode::Cublas,
                    ..no_pdl
                },
            ),
            ("vkae default without PDL".into(), no_pdl),
            (
                "vkae default without GeGLU fusion".into(),
                VkaeOptions {
                    ablations: Ablations {
                        fuse_geglu: false,
                        ..d.ablations
                    },
                    ..d
                },
            ),
            (
                "vkae default without k-split search".into(),
                VkaeOptions {
                    ablations: Ablations {
                        split_search: false,
                        ..d.ablations
                    },
                    ..d
                },
            ),
        ];
        // The default, then the options built but not yet on by default.
        variants.extend(Self::candidate_variants());
        variants.push((
            "vkae default, skinny GEMM wherever it applies".into(),
            VkaeOptions {
                projections: ProjectionMode::Skinny,
                ..d
            },
        ));
        variants
    }

    /// The default and the default without each of its two newest steps (attention merged by a launch of its
    /// own; the online softmax key by key), and any option built but off by default: what an H200 call decides
    /// on (`VKAE_BENCH_VARIANTS=candidates`, e.g. at 16k of context).
    pub fn candidate_variants() -> Vec<(String, VkaeOptions)> {
        let d = VkaeOptions::default();
        vec![
            ("vkae (default)".into(), d),
            (
                "vkae default, attention splits merged by a launch of their own".into(),
                VkaeOptions {
                    ablations: Ablations {
                        merge_attention: false,
                        ..d.ablations
                    },
                    ..d
                },
            ),
            (
                "vkae default, attention softmax key by key".into(),
                VkaeOptions {
                    ablations: Ablations {
                        attention_softmax_per_round: false,
                        ..d.ablations
                    },
                    ..d
                },
            ),
            (
                "vkae default + cuBLASLt algorithms in the projection choice".into(),
                VkaeOptions {
                    ablations: Ablations {
                        cublaslt_candidates: true,
                        ..d.ablations
                    },
                    ..d
                },
            ),
        ]
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct PathResult {
    pub path: String,
    pub batch: usize,
    /// Tokens per second (all sequences), one per repetition.
    pub tokens_per_s: Vec<f64>,
    /// Of `tokens_per_s`.
    #[serde(flatten)]
    pub rate: Summary,
    pub ms_per_step: f64,
    /// Bytes one step streams (weights + PLE rows + KV read at the mean decode depth), GB.
    pub gb_per_step: f64,
    /// `gb_per_step` x steps per second (median), GB/s.
    pub achieved_gb_per_s: f64,
    /// Whether every sequence's greedy tokens equal the generic path's (None: generic not run).
    pub tokens_equal_generic: Option<bool>,
    /// The first generated-token index where sequence 0 differs from the generic path's (None: equal or not
    /// run). On random weights near-tied logits make a late divergence expected; an early one is a bug sign.
    pub first_divergence: Option<usize>,
    /// First sequence's tokens (last repetition).
    pub seq0_tokens: Vec<u32>,
}

#[derive(Clone, Debug, Serialize)]
pub struct VkaeBenchReport {
    pub model: String,
    pub device: String,
    pub prompt_len: usize,
    pub max_new: usize,
    pub reps: usize,
    pub weight_bytes_per_step: u64,
    pub kv_bytes_per_token: u64,
    pub results: Vec<PathResult>,
    /// The measured projection choice per shape of the default variant.
    pub projection_timings: Vec<super::ProjectionTiming>,
    pub kernels_sha256: String,
}

fn time_path(
    label: &str,
    run: &mut dyn FnMut(&GenerateRequest) -> Result<crate::GenerateOutput>,
    req: &GenerateRequest,
    s: &VkaeBenchSettings,
    gb_per_step: f64,
) -> Result<(PathResult, Vec<Vec<u32>>)> {
    let outs = measure(s.warmup, s.reps, || run(req))?;
    let rates: Vec<f64> = outs.iter().map(|o| o.tokens_per_s).collect();
    let last = outs.last().map(|o| o.tokens.clone()).unwrap_or_default();
    let rate = Summary::of_runs(&rates, label)?;
    let b = req.prompts.len();
    let med = rate.median;
    let steps_per_s = med / b as f64;
    eprintln!(
        "{label:<46} batch {b:>2}: {med:>9.1} tok/s (min {:.1}, max {:.1}), {:.3} ms/step, {:.0} GB/s",
        rate.min,
        rate.max,
        1000.0 / steps_per_s,
        gb_per_step * steps_per_s / 1e9
    );
    Ok((
        PathResult {
            path: label.to_string(),
            batch: b,
            rate,
            ms_per_step: 1000.0 / steps_per_s,
            gb_per_step: gb_per_step / 1e9,
            achieved_gb_per_s: gb_per_step * steps_per_s / 1e9,
            tokens_equal_generic: None,
            first_divergence: None,
            seq0_tokens: last.first().cloned().unwrap_or_default(),
            tokens_per_s: rates,
        },
        last,
    ))
}

/// Runs the generic path and every VKAE variant on `model` (see the module docs).
pub fn run_vkae_bench(model: &Model, s: &VkaeBenchSettings) -> Result<VkaeBenchReport> {
    let cfg = model.config.clone();
    let prompt = bench_prompt(cfg.vocab_size, s.prompt_len, s.prompt_seed);
    let mut results = vec![];
    let mut generic_tokens: Vec<Vec<Vec<u32>>> = vec![];
    let mut device = String::new();
    if s.generic {
        let mut g = GenericModel::new(model)?;
        device = g.device_name().to_string();
        for &b in &s.batches {
            let req = GenerateRequest {
                prompts: vec![prompt.clone(); b],
                max_new: s.max_new,
                stop_at_eos: false,
            };
            let gb = bytes_per_step(&cfg, b, mean_decode_depth(s.prompt_len, s.max_new));
            let (r, toks) = time_path(
                "generic (one launch per op, cuBLAS)",
                &mut |q| g.generate(q),
                &req,
                s,
                gb,
            )?;
            results.push(r);
            generic_tokens.push(toks);
        }
    }
    let mut projection_timings = vec![];
    if !s.variants.is_empty() {
        let mut v = VkaeModel::new(model, s.variants[0].1)?;
        device = v.device_name().to_string();
        for (label, options) in &s.variants {
            v.set_options(*options)?;
            for (bi, &b) in s.batches.iter().enumerate() {
                let req = GenerateRequest {
                    prompts: vec![prompt.clone(); b],
                    max_new: s.max_new,
                    stop_at_eos: false,
                };
                let gb = bytes_per_step(&cfg, b, mean_decode_depth(s.prompt_len, s.max_new));
                let (mut r, toks) = time_path(label, &mut |q| v.generate(q), &req, s, gb)?;
                r.tokens_equal_generic = generic_tokens.get(bi).map(|g| *g == toks);
                r.first_divergence = generic_tokens
                    .get(bi)
                    .and_then(|g| g[0].iter().zip(&toks[0]).position(|(a, b)| a != b));
                results.push(r);
            }
            // The cuBLASLt variant's choice times every candidate the default's does and cuBLASLt's algorithms
            // besides, so its table (when run) is the one reported; otherwise the default's.
            if options.cublaslt_candidates()
                || (*options == VkaeOptions::default() && projection_timings.is_empty())
            {
                projection_timings = v.projection_timings().to_vec();
            }
        }
    }
    let st = model_stats(&cfg);
    Ok(VkaeBenchReport {
        model: model.source.clone(),
        device,
        prompt_len: s.prompt_len,
        max_new: s.max_new,
        reps: s.reps,
        weight_bytes_per_step: st.bytes_streamed_per_token,
        kv_bytes_per_token: st.kv_bytes_per_token,
        results,
        projection_timings,
        kernels_sha256: vkae_kernels::kernels_sha256(),
    })
}

/// The report as a Markdown table (path x batch), generic first.
pub fn markdown(r: &VkaeBenchReport) -> String {
    let mut out = format!(
        "model {}, device {}, prompt {}, {} new tokens ({} timed steps), {} reps, kernels sha256 {}\n\n\
         | path | batch | tok/s median | min | max | ms/step | GB/step | achieved GB/s | tokens = generic (seq 0 first differs at) |\n\
         |---|---|---|---|---|---|---|---|---|\n",
        r.model,
        r.device,
        r.prompt_len,
        r.max_new,
        r.max_new.saturating_sub(1),
        r.reps,
        r.kernels_sha256
    );
    for p in &r.results {
        out.push_str(&format!(
            "| {} | {} | {:.1} | {:.1} | {:.1} | {:.3} | {:.2} | {:.0} | {} |\n",
            p.path,
            p.batch,
            p.rate.median,
            p.rate.min,
            p.rate.max,
            p.ms_per_step,
            p.gb_per_step,
            p.achieved_gb_per_s,
            match (p.tokens_equal_generic, p.first_divergence) {
                (Some(true), _) => "yes".to_string(),
                (Some(false), Some(i)) => format!("no ({i})"),
                (Some(false), None) => "no (other seqs)".to_string(),
                (None, _) => "-".to_string(),
            }
        ));
    }
    if !r.projection_timings.is_empty() {
        out.push_str(
            "\nProjection choice (per shape, mean us per matrix over the model's weights of that shape, best k split or \
             cuBLASLt algorithm in parentheses; - where the kernel does not take the shape or was not timed):\n\n\
             | rows | out | in | GEMV us | skinny us | cuBLAS us | cuBLASLt us (algorithm) | chosen |\n|---|---|---|---|---|---|---|---|\n",
        );
        let cell = |us: Option<f64>, kp: Option<usize>| match (us, kp) {
            (Some(us), Some(kp)) => format!("{us:.2} ({kp})"),
            _ => "-".to_string(),
        };
        for t in &r.projection_timings {
            out.push_str(&format!(
                "| {} | {} | {} | {} | {} | {:.2} | {} | {} |\n",
                t.rows,
                t.out,
                t.inner,
                cell(t.gemv_us, t.gemv_kparts),
                cell(t.skinny_us, t.skinny_kparts),
                t.cublas_us,
                cell(t.cublaslt_us, t.cublaslt_algo),
                t.chosen.name()
            ));
        }
    }
    out
}
