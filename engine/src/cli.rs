//! The `vkae-engine` command line: `inspect` and `generate`, as typed settings over the library.

use clap::{Args, Parser, Subcommand};
use serde_json::json;
use std::path::PathBuf;
use std::process::ExitCode;

pub use crate::args::{parse_ids, ModelArgs};
use crate::error::{EngineError, Result};
use crate::stats::model_stats;
use crate::{Backend, Engine, GenerateRequest, ModelSource};

#[derive(Parser, Debug)]
#[command(
    name = "vkae-engine",
    about = "Gemma 4 text decoder: CPU reference and generic CUDA path"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Config summary, parameter counts, bytes streamed per decoded token, KV bytes per token.
    Inspect {
        #[command(flatten)]
        model: ModelArgs,
        /// One JSON object on stdout.
        #[arg(long)]
        json: bool,
    },
    /// Greedy generation with timing (prefill and the first token excluded from tokens/s).
    Generate(GenerateArgs),
    /// Decode tokens/s at several batch sizes (median, min, max over repetitions; warm-up excluded).
    Bench(BenchArgs),
    /// Qualification run: baseline, peer and engine paths side by side, the quality guard, signed run records.
    Qualify(Box<crate::qualify::QualifyArgs>),
    /// Write an Ed25519 lane key pair (secret to --out, public to --out.pub) and print the public key.
    Keygen(crate::qualify::KeygenArgs),
    /// OpenAI-compatible HTTP server (completions, chat, streaming) with continuous batching, bound by a recipe.
    Serve(Box<crate::serve::args::ServeArgs>),
    /// Serving benchmark: the server in-process, clients at several concurrencies (TTFT, TPOT, output tok/s).
    BenchServe(Box<crate::serve::args::BenchServeArgs>),
    /// Write the model (e.g. synthetic weights) as a Hugging Face checkpoint transformers can load.
    WriteCheckpoint {
        #[command(flatten)]
        model: ModelArgs,
        /// Output folder (created).
        #[arg(long)]
        out: PathBuf,
        /// Largest shard, bytes.
        #[arg(long, default_value_t = 4_000_000_000)]
        shard_bytes: usize,
    },
}

#[derive(Args, Debug, Clone)]
pub struct BenchArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// cuda (the generic GPU path), vkae (the VKAE kernel path) or cpu.
    #[arg(long, default_value = "cuda")]
    pub device: String,
    #[arg(long, default_value_t = 128)]
    pub prompt_len: usize,
    /// Tokens per sequence (the first from prefill; the rest timed).
    #[arg(long, default_value_t = 129)]
    pub max_new: usize,
    /// Comma-separated batch sizes.
    #[arg(long, default_value = "1,8,32")]
    pub batches: String,
    #[arg(long, default_value_t = 3)]
    pub reps: usize,
    #[arg(long, default_value_t = 1)]
    pub warmup: usize,
    /// Seed of the prompt ids.
    #[arg(long, default_value_t = 1)]
    pub prompt_seed: u64,
    /// Write the JSON report here as well as to stdout.
    #[arg(long)]
    pub report: Option<PathBuf>,
}

#[derive(Args, Debug, Clone)]
pub struct GenerateArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// Text prompt (needs tokenizer.json beside the checkpoint).
    #[arg(long, conflicts_with = "prompt_ids")]
    pub prompt: Option<String>,
    /// Prompt token ids, comma-separated (e.g. 2,818,1234).
    #[arg(long)]
    pub prompt_ids: Option<String>,
    /// Tokens to generate per sequence.
    #[arg(long, default_value_t = 32)]
    pub max_new: usize,
    /// cpu (the f32 reference), cuda (the generic GPU path) or vkae (the VKAE kernel path, GPU).
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// Sequences decoded together (each gets the same prompt).
    #[arg(long, default_value_t = 1)]
    pub batch: usize,
    /// Untimed warm-up generations before the timed one (module load, first launches).
    #[arg(long, default_value_t = 1)]
    pub warmup: usize,
    /// Stop a sequence at EOS (off by default so every sequence decodes max_new tokens).
    #[arg(long)]
    pub stop_at_eos: bool,
    /// One JSON object on stdout.
    #[arg(long)]
    pub json: bool,
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("vkae-engine: {e}");
            ExitCode::FAILURE
        }
    }
}

pub fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Inspect { model, json } => inspect(&model, json),
        Command::Generate(args) => generate(&args),
        Command::Bench(args) => bench(&args),
        Command::Qualify(args) => crate::qualify::run_cli(&args),
        Command::Keygen(args) => crate::qualify::keygen_cli(&args),
        Command::Serve(args) => {
            crate::serve::init_logging();
            crate::serve::server::serve_blocking(args.settings()?)
        }
        Command::BenchServe(args) => crate::serve::bench::run_cli(&args),
        Command::WriteCheckpoint {
            model,
            out,
            shard_bytes,
        } => {
            let t0 = std::time::Instant::now();
            let m = model.source()?.load()?;
            m.write_checkpoint(&out, shard_bytes)?;
            eprintln!(
                "wrote {} to {} in {:.1} s",
                m.source,
                out.display(),
                t0.elapsed().as_secs_f64()
            );
            Ok(())
        }
    }
}

fn inspect(args: &ModelArgs, as_json: bool) -> Result<()> {
    let src = args.source()?;
    let cfg = src.config()?;
    if let ModelSource::Dir(d) = &src {
        // Loading checks every tensor's presence, shape and dtype (memory-mapped, so cheap).
        crate::Model::load(d)?;
    }
    let s = model_stats(&cfg);
    let layers = cfg.layers();
    let sliding = layers
        .iter()
        .filter(|l| l.kind == crate::LayerKind::Sliding)
        .count();
    let shared = layers.iter().filter(|l| l.kv_source.is_some()).count();
    if as_json {
        let v = json!({"config": cfg.to_json(), "stats": s, "sliding_layers": sliding,
                       "full_layers": layers.len() - sliding, "kv_shared_layers": shared});
        println!("{v}");
        return Ok(());
    }
    println!(
        "model            {}",
        match &src {
            ModelSource::Dir(d) => d.display().to_string(),
            ModelSource::Synthetic { family, seed } =>
                format!("synthetic {} seed {seed}", family.name()),
        }
    );
    println!(
        "layers           {} ({} sliding, window {}; {} full; {} KV-shared)",
        layers.len(),
        sliding,
        cfg.sliding_window,
        layers.len() - sliding,
        shared
    );
    println!(
        "hidden           {} (MLP {}{})",
        cfg.hidden_size,
        cfg.intermediate_size,
        if cfg.use_double_wide_mlp {
            ", x2 on KV-shared layers"
        } else {
            ""
        }
    );
    println!(
        "heads            {} query; KV {} sliding / {} full; head dim {} / {}",
        cfg.num_attention_heads,
        cfg.num_key_value_heads,
        cfg.num_global_key_value_heads,
        cfg.head_dim,
        cfg.global_head_dim
    );
    println!("k = v (full)     {}", cfg.attention_k_eq_v);
    println!("per-layer input  {}", cfg.hidden_size_per_layer_input);
    if cfg.enable_moe_block {
        println!(
            "MoE              {} experts, top {}, width {}",
            cfg.num_experts, cfg.top_k_experts, cfg.moe_intermediate_size
        );
    }
    println!(
        "vocab            {} (softcap {:?})",
        cfg.vocab_size, cfg.final_logit_softcapping
    );
    println!(
        "parameters       {} ({} in the PLE table, {} in experts)",
        s.parameters, s.ple_table_parameters, s.expert_parameters
    );
    println!(
        "streamed/token   {} bytes (BF16, batch 1)",
        s.bytes_streamed_per_token
    );
    println!("KV/token         {} bytes ({} on full layers; sliding layers cap at {} bytes per sequence)", s.kv_bytes_per_token, s.kv_bytes_per_token_full_layers, s.kv_bytes_sliding_cap);
    Ok(())
}

fn generate(args: &GenerateArgs) -> Result<()> {
    let src = args.model.source()?;
    let backend = Backend::parse(&args.device)?;
    if args.batch == 0 || args.max_new == 0 {
        return Err(EngineError::Input(
            "--batch and --max-new must be positive".into(),
        ));
    }
    let prompt = match (&args.prompt, &args.prompt_ids) {
        (_, Some(ids)) => parse_ids(ids)?,
        (Some(text), None) => match &src {
            ModelSource::Dir(d) => crate::tokenizer::Tokenizer::from_dir(d)?.encode(text)?,
            ModelSource::Synthetic { .. } => {
                return Err(EngineError::Input(
                    "synthetic models have no tokenizer: use --prompt-ids".into(),
                ))
            }
        },
        (None, None) => {
            return Err(EngineError::Input(
                "give --prompt TEXT or --prompt-ids IDS".into(),
            ))
        }
    };
    let t0 = std::time::Instant::now();
    let model = src.load()?;
    let mut engine = Engine::new(model, backend)?;
    let load_s = t0.elapsed().as_secs_f64();
    let req = GenerateRequest {
        prompts: vec![prompt.clone(); args.batch],
        max_new: args.max_new,
        stop_at_eos: args.stop_at_eos,
    };
    for _ in 0..args.warmup {
        engine.generate(&GenerateRequest {
            max_new: args.max_new.min(4),
            ..req.clone()
        })?;
    }
    let out = engine.generate(&req)?;
    if args.json {
        let v = json!({
            "tokens": out.tokens, "tokens_per_s": out.tokens_per_s, "prefill_s": out.prefill_s,
            "decode_s": out.decode_s, "decode_steps": out.decode_steps, "batch": args.batch,
            "device": args.device, "prompt_len": prompt.len(), "load_s": load_s,
        });
        println!("{v}");
    } else {
        for (i, t) in out.tokens.iter().enumerate() {
            println!("sequence {i}: {t:?}");
        }
        println!(
            "{:.2} tokens/s ({} decode steps x batch {} in {:.3} s; prefill {:.3} s; load {:.1} s)",
            out.tokens_per_s, out.decode_steps, args.batch, out.decode_s, out.prefill_s, load_s
        );
    }
    Ok(())
}

fn bench(args: &BenchArgs) -> Result<()> {
    let src = args.model.source()?;
    let backend = Backend::parse(&args.device)?;
    let batches = parse_ids(&args.batches)?
        .into_iter()
        .map(|b| b as usize)
        .collect::<Vec<_>>();
    if batches.is_empty() || batches.contains(&0) || args.reps == 0 || args.max_new < 2 {
        return Err(EngineError::Input(
            "--batches must be positive, --reps >= 1, --max-new >= 2".into(),
        ));
    }
    let t0 = std::time::Instant::now();
    let model = src.load()?;
    let name = model.source.clone();
    let mut engine = Engine::new(model, backend)?;
    let load_s = t0.elapsed().as_secs_f64();
    let device = engine.device_name();
    let settings = crate::bench::BenchSettings {
        prompt_len: args.prompt_len,
        max_new: args.max_new,
        batches,
        reps: args.reps,
        warmup: args.warmup,
        seed: args.prompt_seed,
    };
    let report = crate::bench::run_bench(&mut engine, &name, &device, &settings)?;
    let mut v = serde_json::to_value(&report).expect("report serializes");
    v["load_s"] = json!(load_s);
    let text = v.to_string();
    if let Some(p) = &args.report {
        std::fs::write(p, &text)?;
    }
    println!("{text}");
    Ok(())
}
