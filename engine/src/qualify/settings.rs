//! The command line of `vkae-engine qualify` and `keygen`, and the typed, validated settings a run reads.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{anyhow, bail, Result};
use clap::Args;

use crate::config::Family;
use crate::Backend;

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
    /// Timed repetitions per path and batch, interleaved across the paths (one of each path in turn).
    #[arg(long, default_value_t = 5)]
    pub reps: usize,
    /// Untimed warm-up repetitions per path and batch, at least (see `measure::WarmUpRule`).
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
    /// Time limit of any one answer of the transformers eager child (its load, one repetition, the quality
    /// stream), seconds.
    #[arg(long, default_value_t = 420)]
    pub baseline_time_limit: u64,
    /// Time limit of any one answer of the static-cache + CUDA-graph peer child (its load, the same-model
    /// check, one repetition with its capture), seconds (0: do not try it).
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
    /// A serving recipe file: its name and the SHA-256 of its bytes go into every record's `recipe`.
    #[arg(long)]
    pub recipe: Option<PathBuf>,
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
    pub recipe: Option<RecipeFile>,
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
            recipe: a.recipe.as_deref().map(RecipeFile::read).transpose()?,
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

/// A serving recipe as a record names it: the file's name and the SHA-256 of its bytes (its format is the
/// serving side's; the harness only identifies the file).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecipeFile {
    pub name: String,
    pub sha256: String,
}

impl RecipeFile {
    pub fn read(path: &std::path::Path) -> Result<RecipeFile> {
        use sha2::{Digest, Sha256};
        let bytes = std::fs::read(path).map_err(|e| anyhow!("--recipe {}: {e}", path.display()))?;
        let name = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .filter(|n| !n.is_empty())
            .ok_or_else(|| anyhow!("--recipe {}: the file has no name", path.display()))?;
        let sha256 = Sha256::digest(&bytes)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        Ok(RecipeFile { name, sha256 })
    }
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
        let err = settings(&["--recipe", "/nonexistent/e4b-h200.toml"])
            .unwrap_err()
            .to_string();
        assert!(err.contains("--recipe /nonexistent/e4b-h200.toml"), "{err}");
        let recipe = std::env::temp_dir().join(format!("vkae-recipe-{}.toml", std::process::id()));
        std::fs::write(&recipe, b"abc").unwrap();
        let with = settings(&["--recipe", recipe.to_str().unwrap()]).unwrap();
        std::fs::remove_file(&recipe).unwrap();
        assert_eq!(
            with.recipe.unwrap(),
            RecipeFile {
                name: format!("vkae-recipe-{}", std::process::id()),
                // SHA-256("abc"), FIPS 180-2's example.
                sha256: "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad".into(),
            }
        );
        assert_eq!(ok.reps, 5, "five timed repetitions by default");
        // The CPU stand-in never tries the transformers peer.
        assert!(settings(&["--baseline", "cpu-reference"])
            .unwrap()
            .peer_time_limit
            .is_none());
    }
}
