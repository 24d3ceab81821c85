//! `vkae-engine qualify`: the qualification harness. One command measures, on one machine and the same
//! weights and tokens, the declared baseline (Hugging Face transformers eager `generate`, in a Python child
//! process on the same checkpoint files), a peer (transformers with a static cache + torch.compile, in its own
//! child with a time limit), the engine's generic path and its VKAE path; runs the quality guard (a seeded
//! token stream teacher-forced through the reference and the VKAE path); and writes one signed `vkae.run.v1`
//! record per batch size, optionally ingesting it into an evidence store.
//!
//! ## Contract
//! - Decode rate of a repetition = tokens of the timed decode steps / their wall time: every sequence generates
//!   `output_tokens`, the first from prefill, the other `output_tokens - 1` timed (the engine times them
//!   directly; transformers as time(N new) - time(1 new), see engine/bench/hf_generate.py). Warm-up runs are
//!   not timed.
//! - `tokens_generated` is counted from the sequences each timed repetition returned; EOS cannot stop a
//!   sequence early on either side, so it equals batch x output_tokens x reps unless something is wrong, and a
//!   mismatch is printed and recorded as counted (the store's benchmark lane then fails it).
//! - A path that produced no number (a failed or timed-out peer) is listed under `unavailable_paths` with the
//!   reason; it never gets a number.
//! - `--baseline cpu-reference` replaces transformers by the engine's f32 CPU reference (no Python); the record
//!   names that path `cpu-reference` so it cannot pass for the declared baseline.
//! - The VKAE path is the kernel path ([`crate::vkae::VkaeModel`]) where it covers the model on CUDA; elsewhere
//!   (CPU, MoE, `--vkae-path generic`, or a kernel-path failure, which is also listed under `unavailable_paths`)
//!   the generic path is measured in its place and the path's `detail` says why. The quality guard scores the
//!   VKAE path's logits.
//! - Warm-ups are whole repetitions, discarded; the engine runs first (fail fast), then the reference side gets
//!   the GPU to itself.
//! - Every record is checked by `vkae-record`'s parser and its signature verified before it is written.

pub mod child;
pub mod progress;
pub mod provenance;
pub mod quality;
pub mod record;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use clap::Args;
use serde_json::json;
use vkae_record::{Role, RunRecord, Timestamp, UnavailablePath};

use crate::bench::bench_prompt;
use crate::config::Family;
use crate::stats::model_stats;
use crate::{Backend, Engine, GenerateOutput, GenerateRequest, Model};
use progress::Phase;
use quality::{Comparison, Logits};
use record::Measured;

/// Path names as they appear in records.
pub const HF_EAGER: &str = "hf-transformers-eager";
pub const HF_STATIC_COMPILE: &str = "hf-transformers-static-compile";
pub const CPU_REFERENCE: &str = "cpu-reference";
pub const ENGINE_GENERIC: &str = "vkae-engine-generic";
pub const VKAE: &str = "vkae";

#[derive(Args, Debug, Clone)]
pub struct QualifyArgs {
    /// A Hugging Face checkpoint folder (config.json + safetensors).
    #[arg(long, conflicts_with = "synthetic")]
    pub model: Option<PathBuf>,
    /// Random weights at a family's shape (e2b, e4b, 12b, 26b-a4b, 31b), written as a checkpoint first so both
    /// sides load identical files.
    #[arg(long)]
    pub synthetic: Option<String>,
    /// Seed of the synthetic weights.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Catalog family of the record (E2B, E4B, 12B, 26B-A4B, 31B); inferred from --synthetic or the config.
    #[arg(long)]
    pub family: Option<String>,
    /// Hugging Face repo of the record; default google/gemma-4-FAMILY (synthetic weights reproduce its shape).
    #[arg(long)]
    pub repo: Option<String>,
    /// Batch size, or several comma-separated (one record each; --out then needs "{batch}").
    #[arg(long, default_value = "1")]
    pub batch: String,
    #[arg(long, default_value_t = 128)]
    pub prompt_tokens: usize,
    /// Tokens generated per sequence (the first from prefill, the rest timed).
    #[arg(long, default_value_t = 128)]
    pub output_tokens: usize,
    /// Timed repetitions per path and batch.
    #[arg(long, default_value_t = 3)]
    pub reps: usize,
    /// Untimed warm-up runs per path and batch.
    #[arg(long, default_value_t = 1)]
    pub warmup: usize,
    /// Tokens scored by the quality guard (the stream is one longer).
    #[arg(long, default_value_t = 2048)]
    pub quality_tokens: usize,
    /// Seed of the prompt ids.
    #[arg(long, default_value_t = 1)]
    pub prompt_seed: u64,
    /// Seed of the quality stream's ids.
    #[arg(long, default_value_t = 2048)]
    pub quality_seed: u64,
    /// Where the engine paths run: cuda or cpu.
    #[arg(long, default_value = "cuda")]
    pub device: String,
    /// The baseline: hf (transformers, needs Python with torch + transformers) or cpu-reference.
    #[arg(long, default_value = "hf")]
    pub baseline: String,
    /// Python interpreter for the transformers child processes.
    #[arg(long, default_value = "python3")]
    pub python: PathBuf,
    /// Time limit of the baseline child, seconds.
    #[arg(long, default_value_t = 900)]
    pub baseline_time_limit: u64,
    /// Time limit of the static-cache + torch.compile peer child, seconds (0: do not try it).
    #[arg(long, default_value_t = 180)]
    pub peer_time_limit: u64,
    /// The quality guard's reference: f32 (transformers computing the same BF16 weights in float32; the BF16
    /// forward is then scored against it too, as the honest-BF16 calibration) or bf16 (transformers' BF16 forward).
    #[arg(long, default_value = "f32")]
    pub quality_reference: String,
    /// The VKAE path: kernels (the kernel path: fused kernels, CUDA graphs; CUDA only, no MoE) or generic
    /// (measure the generic path in its place, said so in the record).
    #[arg(long, default_value = "kernels")]
    pub vkae_path: String,
    /// Where synthetic weights are written as a checkpoint (reused when already complete).
    #[arg(long)]
    pub checkpoint_dir: Option<PathBuf>,
    /// Scratch folder for plans, child logs and logits files (default: a fresh temporary folder, removed after).
    #[arg(long)]
    pub work_dir: Option<PathBuf>,
    /// Secret key file of the lane (from `vkae-engine keygen`).
    #[arg(long)]
    pub lane_key: PathBuf,
    /// Name the key is registered under in the store (default: the key file's name without extension).
    #[arg(long)]
    pub lane_key_name: Option<String>,
    /// Record file; with several batches it must contain "{batch}".
    #[arg(long)]
    pub out: PathBuf,
    /// Also write a JSON report (every figure, the calibration, child logs) here.
    #[arg(long)]
    pub report: Option<PathBuf>,
    /// POST each record to this evidence store (e.g. http://127.0.0.1:8080; plain HTTP).
    #[arg(long)]
    pub ingest: Option<String>,
    /// Ingest token (or the VKAE_INGEST_TOKEN environment variable).
    #[arg(long)]
    pub token: Option<String>,
    /// Engine commit to record (default: baked in at build time, else git rev-parse HEAD).
    #[arg(long)]
    pub engine_commit: Option<String>,
    /// Plain log lines instead of progress bars.
    #[arg(long)]
    pub no_progress: bool,
}

#[derive(Args, Debug, Clone)]
pub struct KeygenArgs {
    /// Secret key file to create (mode 0600); the public key goes to FILE.pub.
    #[arg(long)]
    pub out: PathBuf,
}

/// Which baseline a run measures.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BaselineKind {
    /// transformers eager `generate` in a Python child (the declared baseline).
    Transformers,
    /// The engine's f32 CPU reference (tests, machines without Python).
    CpuReference,
}

impl BaselineKind {
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "hf" | "transformers" => Ok(Self::Transformers),
            "cpu-reference" => Ok(Self::CpuReference),
            other => bail!("--baseline {other:?}: expected hf or cpu-reference"),
        }
    }
}

/// Where the weights come from.
#[derive(Clone, Debug)]
pub enum WeightsSource {
    Dir(PathBuf),
    Synthetic { family: Family, seed: u64 },
}

/// Typed, validated settings of one qualification run.
#[derive(Clone, Debug)]
pub struct Settings {
    pub weights: WeightsSource,
    pub family: Option<String>,
    pub repo: Option<String>,
    pub batches: Vec<usize>,
    pub prompt_tokens: usize,
    pub output_tokens: usize,
    pub reps: usize,
    pub warmup: usize,
    pub quality_tokens: usize,
    pub prompt_seed: u64,
    pub quality_seed: u64,
    pub backend: Backend,
    pub baseline: BaselineKind,
    pub python: PathBuf,
    pub baseline_time_limit: Duration,
    /// None: the peer is not tried.
    pub peer_time_limit: Option<Duration>,
    /// Score against transformers in f32 (true) or in BF16 (false).
    pub f32_reference: bool,
    pub checkpoint_dir: Option<PathBuf>,
    /// Measure the kernel path as the VKAE path (where it applies) rather than the generic path.
    pub vkae_kernel_path: bool,
    pub work_dir: Option<PathBuf>,
    pub lane_key: PathBuf,
    pub lane_key_name: String,
    pub out: PathBuf,
    pub report: Option<PathBuf>,
    pub ingest: Option<(String, String)>,
    pub engine_commit: Option<String>,
    pub progress_bars: bool,
}

impl Settings {
    pub fn from_args(a: &QualifyArgs) -> Result<Settings> {
        let weights = match (&a.model, &a.synthetic) {
            (Some(d), None) => WeightsSource::Dir(d.clone()),
            (None, Some(f)) => WeightsSource::Synthetic {
                family: Family::parse(f)?,
                seed: a.seed,
            },
            _ => bail!("give --model DIR or --synthetic FAMILY"),
        };
        let batches: Vec<usize> = a
            .batch
            .split(',')
            .map(|s| s.trim())
            .filter(|s| !s.is_empty())
            .map(|s| {
                s.parse::<usize>()
                    .map_err(|_| anyhow!("--batch: {s:?} is not a batch size"))
            })
            .collect::<Result<_>>()?;
        if batches.is_empty() || batches.contains(&0) {
            bail!("--batch: give one or more positive batch sizes");
        }
        if a.reps == 0 {
            bail!("--reps must be at least 1");
        }
        if a.output_tokens < 2 {
            bail!("--output-tokens must be at least 2 (the first token comes from prefill; the rest are timed)");
        }
        if a.prompt_tokens == 0 {
            bail!("--prompt-tokens must be at least 1");
        }
        if a.quality_tokens < 1 {
            bail!("--quality-tokens must be at least 1");
        }
        if batches.len() > 1 && !a.out.to_string_lossy().contains("{batch}") {
            bail!("--out must contain \"{{batch}}\" when --batch names several sizes");
        }
        let lane_key_name = match &a.lane_key_name {
            Some(n) => n.clone(),
            None => a
                .lane_key
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .ok_or_else(|| anyhow!("--lane-key: {} has no file name", a.lane_key.display()))?,
        };
        let token = a
            .token
            .clone()
            .or_else(|| std::env::var("VKAE_INGEST_TOKEN").ok());
        let ingest = match (&a.ingest, token) {
            (Some(url), Some(t)) => Some((url.trim_end_matches('/').to_string(), t)),
            (Some(_), None) => bail!("--ingest needs --token or VKAE_INGEST_TOKEN"),
            (None, _) => None,
        };
        let baseline = BaselineKind::parse(&a.baseline)?;
        Ok(Settings {
            weights,
            family: a.family.clone(),
            repo: a.repo.clone(),
            batches,
            prompt_tokens: a.prompt_tokens,
            output_tokens: a.output_tokens,
            reps: a.reps,
            warmup: a.warmup,
            quality_tokens: a.quality_tokens,
            prompt_seed: a.prompt_seed,
            quality_seed: a.quality_seed,
            backend: match Backend::parse(&a.device)? {
                Backend::Vkae => bail!(
                    "qualify measures the generic and the VKAE path itself: --device takes cpu or cuda (the GPU \
                     both paths run on)"
                ),
                b => b,
            },
            baseline,
            python: a.python.clone(),
            baseline_time_limit: Duration::from_secs(a.baseline_time_limit),
            peer_time_limit: (a.peer_time_limit > 0 && baseline == BaselineKind::Transformers)
                .then(|| Duration::from_secs(a.peer_time_limit)),
            f32_reference: match a.quality_reference.as_str() {
                "f32" => true,
                "bf16" => false,
                other => bail!("--quality-reference {other:?}: expected f32 or bf16"),
            },
            checkpoint_dir: a.checkpoint_dir.clone(),
            vkae_kernel_path: match a.vkae_path.as_str() {
                "kernels" => true,
                "generic" => false,
                other => bail!("--vkae-path {other:?}: expected kernels or generic"),
            },
            work_dir: a.work_dir.clone(),
            lane_key: a.lane_key.clone(),
            lane_key_name,
            out: a.out.clone(),
            report: a.report.clone(),
            ingest,
            engine_commit: a.engine_commit.clone(),
            progress_bars: !a.no_progress,
        })
    }

    /// The record file of one batch size.
    pub fn out_for(&self, batch: usize) -> PathBuf {
        PathBuf::from(
            self.out
                .to_string_lossy()
                .replace("{batch}", &batch.to_string()),
        )
    }
}

/// The catalog slug of a family (what records and the store call it).
pub fn family_slug(f: Family) -> &'static str {
    match f {
        Family::E2B => "E2B",
        Family::E4B => "E4B",
        Family::B12 => "12B",
        Family::A4B26 => "26B-A4B",
        Family::B31 => "31B",
    }
}

/// The family whose official shape a config has (hidden size, layers, vocabulary), if any.
fn family_of(cfg: &crate::TextConfig) -> Option<Family> {
    Family::ALL.into_iter().find(|f| {
        let c = f.config();
        c.hidden_size == cfg.hidden_size
            && c.num_hidden_layers == cfg.num_hidden_layers
            && c.vocab_size == cfg.vocab_size
    })
}

/// What one run produced.
pub struct Outcome {
    pub records: Vec<(PathBuf, RunRecord)>,
    /// The final table, as printed.
    pub table: String,
    /// The ingest answers (one per record), when --ingest was given.
    pub ingested: Vec<serde_json::Value>,
    pub report: serde_json::Value,
}

/// The quality guard's figures: the one the record carries, and the calibration beside it.
#[derive(Clone, Debug, serde::Serialize)]
pub struct QualityFigures {
    /// Reference vs VKAE: what the record's `quality` says.
    pub record: Comparison,
    /// What the reference was.
    pub reference: String,
    /// transformers BF16 scored against transformers f32 on the same weights: what an honest BF16 path achieves.
    pub bf16_vs_f32: Option<Comparison>,
    /// VKAE scored against transformers BF16 (the declared baseline's own numerics).
    pub vkae_vs_bf16: Option<Comparison>,
}

/// A reference-side result for the quality guard.
enum ReferenceLogits {
    File {
        path: PathBuf,
        f32_path: Option<PathBuf>,
    },
    Memory(Vec<f32>),
}

fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let n = s.len();
    if n == 0 {
        f64::NAN
    } else if n % 2 == 1 {
        s[n / 2]
    } else {
        (s[n / 2 - 1] + s[n / 2]) / 2.0
    }
}

/// Runs the whole qualification: see the module docs.
pub fn run(s: &Settings) -> Result<Outcome> {
    let started_at = Timestamp::now().to_rfc3339();
    let t_start = Instant::now();
    let key = vkae_record::read_signing_key_file(&s.lane_key)
        .with_context(|| format!("reading the lane key {}", s.lane_key.display()))?;
    let (work, remove_work) = match &s.work_dir {
        Some(d) => (d.clone(), false),
        None => (
            std::env::temp_dir().join(format!("vkae-qualify-{}", std::process::id())),
            true,
        ),
    };
    std::fs::create_dir_all(&work).with_context(|| format!("creating {}", work.display()))?;
    let result = run_in(s, &key, &work, &started_at, t_start);
    if remove_work {
        let _ = std::fs::remove_dir_all(&work);
    }
    result
}

fn run_in(
    s: &Settings,
    key: &vkae_record::SigningKey,
    work: &Path,
    started_at: &str,
    t_start: Instant,
) -> Result<Outcome> {
    // 1. Weights: one set of files both sides load.
    let (model_dir, weights_id, synthetic_family) = match &s.weights {
        WeightsSource::Dir(d) => {
            let phase = Phase::start("weights digest", 1, s.progress_bars);
            let id = record::weights_digest(d)?;
            phase.finish(&id);
            (Some(d.clone()), id, None)
        }
        WeightsSource::Synthetic { family, seed } => {
            let dir = match (&s.baseline, &s.checkpoint_dir) {
                (_, Some(d)) => Some(d.clone()),
                (BaselineKind::Transformers, None) => Some(
                    std::env::temp_dir().join(format!("vkae-qualify-{}-seed{seed}", family.name())),
                ),
                (BaselineKind::CpuReference, None) => None,
            };
            if let Some(dir) = &dir {
                write_synthetic_checkpoint(*family, *seed, dir, s.progress_bars)?;
            }
            (dir, format!("synthetic:seed={seed}"), Some(*family))
        }
    };
    let phase = Phase::start("load weights", 1, s.progress_bars);
    let model = match (&model_dir, &s.weights) {
        (Some(d), _) => Model::load(d)?,
        (None, WeightsSource::Synthetic { family, seed }) => Model::synthetic(
            family.config(),
            *seed,
            format!("synthetic:{}:{seed}", family.name()),
        )?,
        (None, WeightsSource::Dir(_)) => unreachable!("a Dir source has a folder"),
    };
    let cfg = model.config.clone();
    phase.finish(&model.source);
    let family = match (&s.family, synthetic_family.or_else(|| family_of(&cfg))) {
        (Some(f), _) => f.clone(),
        (None, Some(f)) => family_slug(f).to_string(),
        (None, None) => bail!("the model's shape matches no official family: give --family"),
    };
    let repo = s
        .repo
        .clone()
        .unwrap_or_else(|| format!("google/gemma-4-{family}"));
    let vocab = cfg.vocab_size;
    let prompt = bench_prompt(vocab, s.prompt_tokens, s.prompt_seed);
    let q_ids = bench_prompt(vocab, s.quality_tokens + 1, s.quality_seed);
    let device_str = match s.backend {
        Backend::Cuda | Backend::Vkae => "cuda",
        Backend::Cpu => "cpu",
    };

    // 2. The engine first (a broken engine fails the run in its first minute, before the long baseline):
    // generic path and VKAE path on the same weights and prompt, then its quality-stream logits.
    let phase = Phase::start(
        "generic path",
        1 + (s.batches.len() * (s.warmup + s.reps)) as u64,
        s.progress_bars,
    );
    let mut engine = Engine::new(model.clone(), s.backend)?;
    let (hardware, device_name) = match &engine {
        Engine::Cuda(g) => (
            provenance::gpu_hardware(g.device_name()),
            g.device_name().to_string(),
        ),
        Engine::Vkae(v) => (
            provenance::gpu_hardware(v.device_name()),
            v.device_name().to_string(),
        ),
        Engine::Cpu(_) => (provenance::cpu_hardware(), "cpu".to_string()),
    };
    phase.inc("loaded");
    let generic_note = match s.backend {
        Backend::Cuda => "BF16 weights, one kernel per op (vkae-kernels) and cuBLAS projections",
        Backend::Cpu => "the engine's f32 CPU code (--device cpu)",
        Backend::Vkae => unreachable!("--device vkae is refused when the settings are read"),
    };
    let mut generic_paths: Vec<(usize, Measured)> = vec![];
    for &b in &s.batches {
        let (m, _) = measure_engine(
            &mut |r| engine.generate(r),
            ENGINE_GENERIC,
            Role::Peer,
            &prompt,
            b,
            s,
            &phase,
        )?;
        generic_paths.push((
            b,
            Measured {
                detail: Some(format!("generic path: {generic_note}")),
                ..m
            },
        ));
    }
    phase.finish(&device_name);

    // The VKAE path: the kernel path where it covers the model, else (saying so) the generic path. Its
    // quality-stream logits are what the guard scores.
    let kernel_path = match (s.backend, s.vkae_kernel_path, cfg.enable_moe_block) {
        (Backend::Cuda | Backend::Vkae, true, false) => Ok(()),
        (Backend::Cpu, ..) => Err("no kernel path on the CPU"),
        (_, false, _) => Err("--vkae-path generic"),
        (_, _, true) => Err("the kernel path does not cover MoE layers yet"),
    };
    let phase = Phase::start(
        "vkae path",
        2 + (s.batches.len() * (s.warmup + s.reps)) as u64,
        s.progress_bars,
    );
    let mut unavailable: Vec<(Option<usize>, UnavailablePath)> = vec![];
    let kernel_outcome = match kernel_path {
        Ok(()) => Some(measure_kernel_path(&model, s, &prompt, &q_ids, &phase)),
        Err(_) => None,
    };
    let (vkae_paths, vkae_logits, vkae_note, kernel_path_on) = match kernel_outcome {
        Some(Ok((paths, logits, note))) => (paths, logits, note, true),
        other => {
            let why = match other {
                Some(Err(e)) => {
                    // Said in the record, never hidden: the kernel path failed and the generic path stands in.
                    let mut reason = format!("{e:#}");
                    reason.truncate(1000);
                    unavailable.push((
                        None,
                        UnavailablePath {
                            name: "vkae-kernel-path".into(),
                            role: Role::Vkae,
                            reason: reason.clone(),
                        },
                    ));
                    format!("the kernel path failed, see unavailable_paths: {reason}")
                }
                _ => kernel_path.err().unwrap_or_default().to_string(),
            };
            let mut paths = vec![];
            for &b in &s.batches {
                let (m, seq0) = measure_engine(
                    &mut |r| engine.generate(r),
                    VKAE,
                    Role::Vkae,
                    &prompt,
                    b,
                    s,
                    &phase,
                )?;
                paths.push((b, m, seq0));
            }
            let logits = engine.prefill_logits(&q_ids)?;
            (
                paths,
                logits,
                format!("VKAE path = the generic path ({why}): {generic_note}"),
                false,
            )
        }
    };
    drop(engine);
    if let Some(i) = vkae_logits.iter().position(|v| !v.is_finite()) {
        bail!(
            "the VKAE path's quality-stream logits hold a non-finite value at row {}",
            i / vocab
        );
    }
    // The reference side gets the GPU to itself (both engine copies are dropped by now).
    let vkae_logits = Logits::Memory(vkae_logits);
    phase.inc("quality logits");
    let engine_paths: Vec<(usize, Measured, Measured, Option<Vec<u32>>)> = generic_paths
        .into_iter()
        .zip(vkae_paths)
        .map(|((b, generic), (_, vkae, seq0))| {
            (
                b,
                generic,
                Measured {
                    detail: Some(vkae_note.clone()),
                    ..vkae
                },
                seq0,
            )
        })
        .collect();
    phase.finish(&format!("{} rows", q_ids.len()));

    // 3. The baseline (and the peer) on the reference side, on the same files.
    let mut baseline: Vec<(usize, Measured, Option<Vec<u32>>)> = vec![];
    let mut peer: Vec<(usize, Measured)> = vec![];
    let mut child_logs = vec![];
    let reference: ReferenceLogits;
    let reference_impl: String;
    match s.baseline {
        BaselineKind::Transformers => {
            let dir = model_dir
                .clone()
                .expect("transformers needs a checkpoint folder");
            let script = script_path()?;
            let plan = child::Plan {
                mode: "baseline",
                model_dir: dir.clone(),
                device: device_str.into(),
                dtype: "bfloat16",
                attn: "sdpa",
                prompt_ids: prompt.clone(),
                output_tokens: s.output_tokens,
                batches: s.batches.clone(),
                reps: s.reps,
                warmup: s.warmup,
                quality: Some(child::QualityPlan {
                    ids: q_ids.clone(),
                    logits: work.join("reference-logits.f32"),
                    f32_logits: s
                        .f32_reference
                        .then(|| work.join("reference-f32-logits.f32")),
                }),
            };
            let phase = Phase::start("transformers baseline", 1, s.progress_bars);
            let out = child::run(
                &s.python,
                &script,
                &plan,
                work,
                s.baseline_time_limit,
                &phase,
            )?;
            // Each batch's warm-up and timed rates, so a spread that fails its lane can be read against how the
            // baseline warmed up.
            let batches: Vec<_> = out
                .result
                .batches
                .iter()
                .map(|b| json!({"batch": b.batch, "warmup_tokens_per_s": b.warmup_tokens_per_s, "tokens_per_s": b.tokens_per_s}))
                .collect();
            child_logs.push(json!({"child": "baseline", "seconds": out.seconds, "log": out.log, "failure": out.failure, "batches": batches}));
            if let Some(f) = &out.failure {
                bail!(
                    "the transformers baseline failed ({f}); its log: {}",
                    out.log.display()
                );
            }
            reference_impl = out.result.impl_.clone().unwrap_or_default();
            for b in &out.result.batches {
                baseline.push((
                    b.batch,
                    Measured {
                        name: HF_EAGER.into(),
                        role: Role::Baseline,
                        tokens_per_s: b.tokens_per_s.clone(),
                        tokens_generated: b.tokens_generated,
                        detail: Some(format!(
                            "{reference_impl}; same checkpoint files and prompt ids; greedy, EOS cannot stop early; \
                             rate = batch x (N - 1) / (time(N new) - time(1 new)){}{}",
                            if b.warmup_repetitions > 0 {
                                format!(
                                    "; {} warm-up repetition(s) (rule: at least {}, then until two in a row agree \
                                     within 3% after at least 20 s of warm-up, at most 6 more)",
                                    b.warmup_repetitions, s.warmup
                                )
                            } else {
                                String::new()
                            },
                            if b.discarded_repetitions > 0 {
                                format!("; {} repetition(s) measured again (time(N) <= time(1))", b.discarded_repetitions)
                            } else {
                                String::new()
                            }
                        )),
                    },
                    b.seq0_tokens.clone(),
                ));
            }
            let q = out
                .result
                .quality
                .as_ref()
                .ok_or_else(|| anyhow!("the baseline child wrote no quality logits"))?;
            if q.rows != q_ids.len() || q.vocab != vocab {
                bail!(
                    "the reference logits are {} x {}, expected {} x {vocab}",
                    q.rows,
                    q.vocab,
                    q_ids.len()
                );
            }
            reference = ReferenceLogits::File {
                path: plan.quality.as_ref().expect("set").logits.clone(),
                f32_path: q
                    .f32
                    .as_ref()
                    .and(plan.quality.as_ref().expect("set").f32_logits.clone()),
            };
            phase.finish(&format!(
                "{} batches measured, {} quality rows",
                out.result.batches.len(),
                q.rows
            ));

            if let Some(limit) = s.peer_time_limit {
                let plan = child::Plan {
                    mode: "peer",
                    quality: None,
                    ..plan
                };
                let phase = Phase::start("transformers peer", 1, s.progress_bars);
                let out = child::run(&s.python, &script, &plan, work, limit, &phase)?;
                child_logs.push(json!({"child": "peer", "seconds": out.seconds, "log": out.log, "failure": out.failure}));
                let impl_ = out
                    .result
                    .impl_
                    .clone()
                    .unwrap_or_else(|| "transformers static cache + torch.compile".into());
                for b in &out.result.batches {
                    peer.push((
                        b.batch,
                        Measured {
                            name: HF_STATIC_COMPILE.into(),
                            role: Role::Peer,
                            tokens_per_s: b.tokens_per_s.clone(),
                            tokens_generated: b.tokens_generated,
                            detail: Some(impl_.clone()),
                        },
                    ));
                }
                for &b in &s.batches {
                    if !peer.iter().any(|(pb, _)| *pb == b) {
                        let reason = out
                            .failure
                            .clone()
                            .unwrap_or_else(|| "no result for this batch".into());
                        unavailable.push((
                            Some(b),
                            UnavailablePath {
                                name: HF_STATIC_COMPILE.into(),
                                role: Role::Peer,
                                reason: format!("{impl_}: {reason}"),
                            },
                        ));
                    }
                }
                phase.finish(&match &out.failure {
                    None => format!("{} batches measured", out.result.batches.len()),
                    Some(f) => {
                        format!("{} batches measured; failed: {f}", out.result.batches.len())
                    }
                });
            } else {
                unavailable.push((
                    None,
                    UnavailablePath {
                        name: HF_STATIC_COMPILE.into(),
                        role: Role::Peer,
                        reason: "not attempted in this run (--peer-time-limit 0)".into(),
                    },
                ));
            }
        }
        BaselineKind::CpuReference => {
            let mut cpu = Engine::new(model.clone(), Backend::Cpu)?;
            let phase = Phase::start(
                "cpu-reference baseline",
                (s.batches.len() * (s.warmup + s.reps)) as u64 + 1,
                s.progress_bars,
            );
            for &b in &s.batches {
                let (m, seq0) = measure_engine(
                    &mut |r| cpu.generate(r),
                    CPU_REFERENCE,
                    Role::Baseline,
                    &prompt,
                    b,
                    s,
                    &phase,
                )?;
                baseline.push((
                    b,
                    Measured {
                        detail: Some(
                            "vkae-engine f32 CPU reference standing in for transformers (--baseline cpu-reference): not the declared baseline"
                                .into(),
                        ),
                        ..m
                    },
                    seq0,
                ));
            }
            reference = ReferenceLogits::Memory(cpu.prefill_logits(&q_ids)?);
            phase.inc("quality logits");
            reference_impl = "vkae-engine f32 CPU reference".into();
            phase.finish("measured");
        }
    }

    // 4. The quality guard.
    let phase = Phase::start("quality guard", 1, s.progress_bars);
    let figures = match reference {
        ReferenceLogits::Memory(v) => QualityFigures {
            record: quality::compare(&Logits::Memory(v), &vkae_logits, &q_ids, vocab)?,
            reference: reference_impl.clone(),
            bf16_vs_f32: None,
            vkae_vs_bf16: None,
        },
        ReferenceLogits::File { path, f32_path } => {
            let bf16 = Logits::map_file(&path, q_ids.len(), vocab)?;
            let vkae_vs_bf16 = quality::compare(&bf16, &vkae_logits, &q_ids, vocab)?;
            match f32_path {
                Some(p) => {
                    let f32 = Logits::map_file(&p, q_ids.len(), vocab)?;
                    QualityFigures {
                        record: quality::compare(&f32, &vkae_logits, &q_ids, vocab)?,
                        reference: "transformers float32 forward of the same BF16 weights".into(),
                        bf16_vs_f32: Some(quality::compare(&f32, &bf16, &q_ids, vocab)?),
                        vkae_vs_bf16: Some(vkae_vs_bf16),
                    }
                }
                None => QualityFigures {
                    record: vkae_vs_bf16,
                    reference: "transformers bfloat16 forward".into(),
                    bf16_vs_f32: None,
                    vkae_vs_bf16: None,
                },
            }
        }
    };
    let quality = figures.record.clone();
    drop(vkae_logits);
    phase.inc("compared");
    phase.finish(&format!(
        "ppl {:.4} vs {:.4}, top-1 {:.4}, mean KL {:.3e}",
        quality.candidate_ppl, quality.reference_ppl, quality.top1_agreement, quality.mean_kl
    ));

    // 5. Records.
    let finished_at = Timestamp::now().to_rfc3339();
    let stats = model_stats(&cfg);
    let commit = provenance::engine_commit(s.engine_commit.as_deref());
    let (kernels_sha256, kernels, precision) = match s.backend {
        Backend::Cuda | Backend::Vkae => {
            let mut k: Vec<String> = vkae_kernels::sources::SOURCES
                .iter()
                .flat_map(|src| src.functions.iter().map(|f| f.to_string()))
                .collect();
            k.push("cublas_gemm_bf16".into());
            if kernel_path_on {
                k.push("cuda_graph_decode_step".into());
                k.push("programmatic_dependent_launch".into());
                // The qualification runs the default options (`measure_kernel_path`).
                k.push(
                    if crate::vkae::VkaeOptions::default().cublaslt_candidates() {
                        "projections=measured(gemv|skinny|cublas|cublaslt)".into()
                    } else {
                        "projections=measured(gemv|skinny|cublas)".into()
                    },
                );
            }
            (Some(vkae_kernels::kernels_sha256()), k, "bf16")
        }
        // No GPU kernel ran: the record says so (and the artifact lane fails it).
        Backend::Cpu => (None, vec![], "f32"),
    };
    let record_quality = vkae_record::Quality {
        tokens: quality.tokens as u64,
        reference_ppl: quality.reference_ppl,
        vkae_ppl: quality.candidate_ppl,
        top1_agreement: quality.top1_agreement,
        mean_kl: quality.mean_kl,
    };
    let mut records = vec![];
    let mut table = String::new();
    let mut mismatches = vec![];
    let mut report_batches = vec![];
    for &b in &s.batches {
        let (_, base, base_seq0) = baseline
            .iter()
            .find(|(bb, _, _)| *bb == b)
            .cloned()
            .ok_or_else(|| anyhow!("the baseline produced no result for batch {b}"))?;
        let (_, generic, vkae, vkae_seq0) = engine_paths
            .iter()
            .find(|(bb, ..)| *bb == b)
            .cloned()
            .expect("measured above");
        let vkae = match (&base_seq0, &vkae_seq0) {
            (Some(a), Some(v)) => {
                let same = a.iter().zip(v).take_while(|(x, y)| x == y).count();
                Measured {
                    detail: Some(format!(
                        "{}; greedy sequence 0: first {same} of {} tokens equal the baseline's",
                        vkae.detail.unwrap_or_default(),
                        a.len().min(v.len())
                    )),
                    ..vkae
                }
            }
            _ => vkae,
        };
        let mut paths = vec![base, vkae, generic];
        paths.extend(
            peer.iter()
                .filter(|(pb, _)| *pb == b)
                .map(|(_, m)| m.clone()),
        );
        for m in &paths {
            if let Some(line) = record::token_mismatch(m, b, s.output_tokens) {
                mismatches.push(line);
            }
        }
        let unavail: Vec<UnavailablePath> = unavailable
            .iter()
            .filter(|(ub, _)| ub.is_none_or(|x| x == b))
            .map(|(_, u)| u.clone())
            .collect();
        let rec = record::build_and_sign(
            record::RecordInputs {
                run_id: record::run_id(&family, &hardware.gpu, b, started_at),
                repo: &repo,
                family: &family,
                weights: &weights_id,
                hardware: hardware.clone(),
                engine_version: env!("CARGO_PKG_VERSION"),
                commit: commit.clone(),
                kernels_sha256: kernels_sha256.clone(),
                kernels: kernels.clone(),
                precision,
                batch: b,
                prompt_tokens: s.prompt_tokens,
                output_tokens: s.output_tokens,
                paths: paths.clone(),
                unavailable: unavail.clone(),
                quality: record_quality.clone(),
                started_at: started_at.to_string(),
                finished_at: finished_at.clone(),
            },
            &s.lane_key_name,
            key,
        )?;
        table.push_str(&render_table(
            &rec,
            stats.bytes_streamed_per_token,
            &figures,
        ));
        table.push('\n');
        let out = s.out_for(b);
        write_atomically(&out, &rec.to_json_bytes())?;
        report_batches.push(json!({"batch": b, "record": out, "run_id": rec.run_id}));
        records.push((out, rec));
    }
    for line in &mismatches {
        table.push_str(&format!("!! {line}\n"));
    }

    // 6. Ingest.
    let mut ingested = vec![];
    if let Some((url, token)) = &s.ingest {
        for (path, rec) in &records {
            let answer = ingest(url, token, &rec.to_json_bytes())
                .with_context(|| format!("ingesting {}", path.display()))?;
            table.push_str(&format!(
                "ingested {} -> {}\n",
                rec.run_id,
                summarize_ingest(&answer)
            ));
            ingested.push(answer);
        }
    }
    let report = json!({
        "started_at": started_at,
        "finished_at": finished_at,
        "wall_s": t_start.elapsed().as_secs_f64(),
        "model": {"repo": repo, "family": family, "weights": weights_id, "checkpoint": model_dir},
        "reference": reference_impl,
        "bytes_streamed_per_token": stats.bytes_streamed_per_token,
        "quality": figures,
        "token_mismatches": mismatches,
        "children": child_logs,
        "records": report_batches,
        "ingested": ingested,
    });
    if let Some(p) = &s.report {
        write_atomically(p, serde_json::to_string_pretty(&report)?.as_bytes())?;
    }
    Ok(Outcome {
        records,
        table,
        ingested,
        report,
    })
}

/// The VKAE kernel path on every batch, then its quality-stream logits. The generic path's copy of the
/// weights stays on the GPU meanwhile (the H200 holds both), so a failure here can fall back to it.
#[allow(clippy::type_complexity)]
fn measure_kernel_path(
    model: &Model,
    s: &Settings,
    prompt: &[u32],
    q_ids: &[u32],
    phase: &Phase,
) -> Result<(Vec<(usize, Measured, Option<Vec<u32>>)>, Vec<f32>, String)> {
    let options = crate::vkae::VkaeOptions::default();
    let mut vm = crate::vkae::VkaeModel::new(model, options)?;
    phase.inc("kernel path loaded");
    let mut paths = vec![];
    for &b in &s.batches {
        let (m, seq0) = measure_engine(
            &mut |r| vm.generate(r),
            VKAE,
            Role::Vkae,
            prompt,
            b,
            s,
            phase,
        )?;
        paths.push((b, m, seq0));
    }
    let choices = vm.projection_choices();
    let count = |name: &str| choices.iter().filter(|c| c.chosen.name() == name).count();
    let note = format!(
        "VKAE kernel path: fused kernels, q|k|v and gate|up concatenated, one CUDA graph per decode step \
         (graphs {}), programmatic dependent launch {}, GeGLU in the GEMV epilogue {}, \
         attention splits merged in the kernel {}, attention softmax per round of keys {}, \
         decode projections (<= 32 rows) on the weight-streaming GEMV, the tensor-core skinny GEMM or cuBLAS{} \
         as measured per shape and batch ({} GEMV, {} skinny, {} cuBLAS{} of {} shapes)",
        options.graphs,
        if options.programmatic_launch { "on" } else { "off" },
        if options.ablations().fuse_geglu { "on" } else { "off" },
        if options.ablations().merge_attention { "on" } else { "off" },
        if options.ablations().attention_softmax_per_round { "on" } else { "off" },
        if options.cublaslt_candidates() { " (or one of cuBLASLt's listed algorithms)" } else { "" },
        count("GEMV"),
        count("skinny"),
        count("cuBLAS"),
        if options.cublaslt_candidates() { format!(", {} cuBLASLt", count("cuBLASLt")) } else { String::new() },
        choices.len()
    );
    // The quality stream goes through the decode step itself (the captured graph, one token a step, its first
    // token prefilled), so the guard covers the kernels the speed figures come from, not only the prefill.
    let logits = match q_ids.split_first() {
        Some((first, rest)) => vm
            .decode_forced(std::slice::from_ref(first), rest)?
            .concat(),
        None => vec![],
    };
    Ok((paths, logits, note))
}

/// Warm-up, then `reps` timed greedy generations of `batch` copies of `prompt`; the tokens counted from what
/// came back. Returns the measurement and sequence 0 of the last repetition.
fn measure_engine(
    generate: &mut dyn FnMut(&GenerateRequest) -> crate::Result<GenerateOutput>,
    name: &str,
    role: Role,
    prompt: &[u32],
    batch: usize,
    s: &Settings,
    phase: &Phase,
) -> Result<(Measured, Option<Vec<u32>>)> {
    let req = GenerateRequest {
        prompts: vec![prompt.to_vec(); batch],
        max_new: s.output_tokens,
        stop_at_eos: false,
    };
    // A warm-up is a whole timed repetition, discarded: a shorter one leaves first-use costs (KV-cache
    // growth, allocator, clocks ramping) in the first timed repetition, as the first H200 run showed.
    for _ in 0..s.warmup {
        generate(&req)?;
        phase.inc(&format!("{name} batch {batch} warm-up"));
    }
    let (mut rates, mut generated, mut seq0) = (vec![], 0u64, None);
    for _ in 0..s.reps {
        let out = generate(&req)?;
        if !(out.tokens_per_s.is_finite() && out.tokens_per_s > 0.0) {
            bail!(
                "{name} batch {batch}: the decode rate came back as {} (decode took {} s)",
                out.tokens_per_s,
                out.decode_s
            );
        }
        rates.push(out.tokens_per_s);
        generated += record::count_generated(&out.tokens);
        seq0 = out.tokens.first().cloned();
        phase.inc(&format!(
            "{name} batch {batch}: {:.1} tok/s",
            out.tokens_per_s
        ));
    }
    Ok((
        Measured {
            name: name.into(),
            role,
            tokens_per_s: rates,
            tokens_generated: generated,
            detail: None,
        },
        seq0,
    ))
}

fn write_synthetic_checkpoint(family: Family, seed: u64, dir: &Path, bars: bool) -> Result<()> {
    let marker = dir.join(".vkae-synthetic");
    let want = format!("synthetic:{}:{seed}\n", family.name());
    if std::fs::read_to_string(&marker).ok().as_deref() == Some(want.as_str()) {
        eprintln!(
            "[qualify] reusing the synthetic checkpoint in {}",
            dir.display()
        );
        return Ok(());
    }
    let phase = Phase::start("write checkpoint", 2, bars);
    let m = Model::synthetic(family.config(), seed, want.trim().to_string())?;
    phase.inc("weights generated");
    m.write_checkpoint(dir, 4_000_000_000)?;
    std::fs::write(&marker, &want)?;
    phase.inc("written");
    phase.finish(&dir.display().to_string());
    Ok(())
}

/// engine/qualify/hf_reference.py, found beside the sources (or via VKAE_ENGINE_DIR for a binary moved elsewhere).
fn script_path() -> Result<PathBuf> {
    let candidates = [
        std::env::var_os("VKAE_ENGINE_DIR")
            .map(|d| PathBuf::from(d).join("qualify/hf_reference.py")),
        Some(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("qualify/hf_reference.py")),
        Some(PathBuf::from("engine/qualify/hf_reference.py")),
    ];
    candidates
        .into_iter()
        .flatten()
        .find(|p| p.exists())
        .ok_or_else(|| anyhow!("engine/qualify/hf_reference.py not found (set VKAE_ENGINE_DIR to the engine folder)"))
}

fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)?;
    }
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

/// The final table of one record: tokens/s median [min, max] per path, achieved GB/s, tokens, quality.
pub fn render_table(rec: &RunRecord, bytes_per_token: u64, figures: &QualityFigures) -> String {
    let q = &figures.record;
    use std::fmt::Write as _;
    let mut t = String::new();
    let r = &rec.recipe;
    let _ = writeln!(
        t,
        "{} | {} {} ({}) on {} (driver {}, CUDA {}) | batch {}, prompt {}, output {}, {} | run {}",
        rec.model.family,
        rec.model.repo,
        rec.model.weights,
        rec.recipe.precision,
        rec.hardware.gpu,
        rec.hardware.driver,
        rec.hardware.cuda,
        r.batch,
        r.prompt_tokens,
        r.output_tokens,
        rec.paths
            .first()
            .map(|p| format!("{} timed reps", p.tokens_per_s.len()))
            .unwrap_or_default(),
        rec.run_id
    );
    let _ = writeln!(
        t,
        "{:<32} {:<8} {:>10} {:>10} {:>10} {:>8} {:>8} {:>8}",
        "path", "role", "tok/s med", "min", "max", "GB/s", "vs base", "tokens"
    );
    let base = rec
        .paths
        .iter()
        .find(|p| p.role == Role::Baseline)
        .map(|p| median(&p.tokens_per_s));
    for p in &rec.paths {
        let med = median(&p.tokens_per_s);
        let lo = p.tokens_per_s.iter().cloned().fold(f64::INFINITY, f64::min);
        let hi = p.tokens_per_s.iter().cloned().fold(0.0, f64::max);
        // A decode step streams the weights once for the whole batch: bytes/token x steps/s.
        let gbs = bytes_per_token as f64 * med / r.batch as f64 / 1e9;
        let ratio = base.map(|b| format!("{:.2}x", med / b)).unwrap_or_default();
        let _ = writeln!(
            t,
            "{:<32} {:<8} {:>10.2} {:>10.2} {:>10.2} {:>8} {:>8} {:>8}",
            p.name,
            p.role.as_str(),
            med,
            lo,
            hi,
            if gbs >= 10.0 {
                format!("{gbs:.0}")
            } else {
                format!("{gbs:.3}")
            },
            ratio,
            p.tokens_generated
        );
    }
    for u in &rec.unavailable_paths {
        let _ = writeln!(
            t,
            "{:<32} {:<8} unavailable: {}",
            u.name,
            u.role.as_str(),
            u.reason
        );
    }
    let _ = writeln!(
        t,
        "quality ({} tokens, teacher-forced): reference ppl {:.4}, vkae ppl {:.4} (relative {:.4}%), top-1 agreement {:.4}, mean KL {:.3e} (max {:.3e})",
        q.tokens,
        q.reference_ppl,
        q.candidate_ppl,
        q.ppl_relative() * 100.0,
        q.top1_agreement,
        q.mean_kl,
        q.max_kl
    );
    let _ = writeln!(t, "  (reference: {})", figures.reference);
    let line = |name: &str, c: &Comparison| {
        format!(
            "  {name}: ppl {:.4} vs {:.4} (relative {:.4}%), top-1 {:.4}, mean KL {:.3e} (max {:.3e})\n",
            c.candidate_ppl,
            c.reference_ppl,
            c.ppl_relative() * 100.0,
            c.top1_agreement,
            c.mean_kl,
            c.max_kl
        )
    };
    if let Some(c) = &figures.bf16_vs_f32 {
        t.push_str(&line(
            "calibration, transformers bf16 vs f32 (an honest BF16 path)",
            c,
        ));
    }
    if let Some(c) = &figures.vkae_vs_bf16 {
        t.push_str(&line("vkae vs transformers bf16", c));
    }
    let _ = writeln!(
        t,
        "bytes streamed per decode step: {:.3} GB (BF16 weights a step reads once for the whole batch); signed by lane key {:?}",
        bytes_per_token as f64 / 1e9,
        rec.lane_key
    );
    t
}

/// POSTs a record to `URL/api/internal/runs` with the ingest token; returns the store's JSON answer, or an
/// error carrying the store's status and error body.
pub fn ingest(url: &str, token: &str, body: &[u8]) -> Result<serde_json::Value> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(60)))
        .build()
        .into();
    let endpoint = format!("{}/api/internal/runs", url.trim_end_matches('/'));
    let mut resp = agent
        .post(&endpoint)
        .header("Authorization", &format!("Bearer {token}"))
        .header("Content-Type", "application/json")
        .send(body)
        .with_context(|| format!("POST {endpoint}"))?;
    let status = resp.status().as_u16();
    let text = resp.body_mut().read_to_string().unwrap_or_default();
    let value: serde_json::Value =
        serde_json::from_str(&text).unwrap_or_else(|_| json!({ "raw": text }));
    if !(200..300).contains(&status) {
        bail!("the store answered {status}: {value}");
    }
    Ok(value)
}

fn summarize_ingest(v: &serde_json::Value) -> String {
    let lanes = v["lanes"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|l| {
                    format!(
                        "{} {}",
                        l["lane"].as_str().unwrap_or("?"),
                        if l["passed"].as_bool() == Some(true) {
                            "pass"
                        } else {
                            "FAIL"
                        }
                    )
                })
                .collect::<Vec<_>>()
                .join(", ")
        })
        .unwrap_or_default();
    format!("id {} (created {}); lanes: {lanes}", v["id"], v["created"])
}

/// `vkae-engine qualify`.
pub fn run_cli(args: &QualifyArgs) -> crate::Result<()> {
    let fail = |e: anyhow::Error| crate::EngineError::Input(format!("qualify: {e:#}"));
    let settings = Settings::from_args(args).map_err(fail)?;
    let outcome = run(&settings).map_err(fail)?;
    println!("{}", outcome.table);
    for (path, rec) in &outcome.records {
        println!("wrote {} ({})", path.display(), rec.run_id);
    }
    Ok(())
}

/// `vkae-engine keygen`.
pub fn keygen_cli(args: &KeygenArgs) -> crate::Result<()> {
    let (secret, public) = vkae_record::keygen();
    vkae_record::write_signing_key_file(&args.out, &secret).map_err(|e| {
        crate::EngineError::Input(format!(
            "keygen: cannot create {} (it must not exist yet): {e}",
            args.out.display()
        ))
    })?;
    let encoded = vkae_record::encode_verifying_key(&public);
    let pub_path = PathBuf::from(format!("{}.pub", args.out.display()));
    std::fs::write(&pub_path, format!("{encoded}\n"))?;
    let name = args
        .out
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "lane".into());
    eprintln!(
        "secret key: {} (keep it out of git); public key: {}",
        args.out.display(),
        pub_path.display()
    );
    eprintln!("register it with: vkae lane-key add {name} {encoded}");
    println!("{encoded}");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser as _;

    fn settings(extra: &[&str]) -> Result<Settings> {
        let mut argv = vec![
            "vkae-engine",
            "qualify",
            "--synthetic",
            "e4b",
            "--lane-key",
            "lab.key",
        ];
        if !extra.contains(&"--out") {
            argv.extend_from_slice(&["--out", "r.json"]);
        }
        argv.extend_from_slice(extra);
        match crate::cli::Cli::try_parse_from(argv)
            .map_err(|e| anyhow!("{e}"))?
            .command
        {
            crate::cli::Command::Qualify(a) => Settings::from_args(&a),
            _ => unreachable!("parsed as qualify"),
        }
    }

    #[test]
    fn settings_name_what_is_wrong() {
        let ok = settings(&[]).unwrap();
        assert_eq!(
            (
                ok.batches.clone(),
                ok.lane_key_name.as_str(),
                ok.f32_reference
            ),
            (vec![1], "lab", true)
        );
        assert_eq!(ok.baseline, BaselineKind::Transformers);
        for (args, needle) in [
            (&["--batch", "1,x"][..], "--batch: \"x\""),
            (&["--batch", "0"][..], "positive batch sizes"),
            (&["--batch", "1,8"][..], "{batch}"),
            (&["--reps", "0"][..], "--reps"),
            (&["--output-tokens", "1"][..], "--output-tokens"),
            (&["--baseline", "vllm"][..], "--baseline \"vllm\""),
            (&["--quality-reference", "fp8"][..], "--quality-reference"),
            (&["--device", "tpu"][..], "unknown device"),
        ] {
            let err = settings(args).unwrap_err().to_string();
            assert!(err.contains(needle), "{args:?}: {err}");
        }
        if std::env::var_os("VKAE_INGEST_TOKEN").is_none() {
            let err = settings(&["--ingest", "http://127.0.0.1:1"])
                .unwrap_err()
                .to_string();
            assert!(err.contains("--token"), "{err}");
        }
        let several = settings(&["--batch", "1,8,32", "--out", "run-b{batch}.json"]).unwrap();
        assert_eq!(several.out_for(32), PathBuf::from("run-b32.json"));
        // The CPU stand-in never tries the transformers peer.
        assert!(settings(&["--baseline", "cpu-reference"])
            .unwrap()
            .peer_time_limit
            .is_none());
    }

    #[test]
    fn the_table_shows_every_path_the_unavailable_ones_and_the_quality() {
        let (key, _) = vkae_record::keygen();
        let mut rec = RunRecord::parse(vkae_record::SAMPLE_RECORD.as_bytes()).unwrap();
        rec.sign("lab", &key).unwrap();
        let c = Comparison {
            tokens: 2048,
            reference_ppl: 100.0,
            candidate_ppl: 101.0,
            top1_agreement: 0.5,
            mean_kl: 0.25,
            max_kl: 1.0,
        };
        let figures = QualityFigures {
            record: c.clone(),
            reference: "f32".into(),
            bf16_vs_f32: Some(c),
            vkae_vs_bf16: None,
        };
        let t = render_table(&rec, 9_289_000_000, &figures);
        // Sample: baseline median 9.76, VKAE median 301.2 at batch 1: 30.86x, 9.289 GB x 301.2 / s = 2798 GB/s.
        assert!(t.contains("30.86x"), "{t}");
        assert!(t.contains("2798"), "{t}");
        assert!(
            t.contains("torch-compile") && t.contains("unavailable"),
            "{t}"
        );
        assert!(
            t.contains("relative 1.0000%") && t.contains("honest BF16"),
            "{t}"
        );
    }
}
