//! vkae-engine: the Gemma 4 text decoder.
//!
//! - [`config`]: `config.json` parsing and the five family shapes.
//! - [`weights`]: the parameter list, the memory-mapped safetensors loader, synthetic weights, checkpoint writer.
//! - [`cpu`]: the f32 CPU reference forward pass (prefill, KV cache, decode).
//! - [`gpu`]: the generic CUDA path (BF16 weights, cuBLAS projections, `vkae-kernels` for the rest).
//! - [`vkae`]: the VKAE kernel path (fused weights and kernels, weight-streaming GEMV, one CUDA graph per decode step).
//! - [`generate`] / [`logprobs`]: greedy generation and teacher-forced log-probabilities on either backend.
//! - [`serve`]: `vkae-engine serve`, the OpenAI-compatible server with continuous batching, and its recipes.
//! - [`stats`]: parameter counts, bytes streamed per decoded token, KV bytes per token.

pub mod bench;
pub mod cli;
pub mod config;
pub mod cpu;
pub mod error;
pub mod gpu;
pub mod qualify;
pub mod serve;
pub mod stats;
pub mod tensor;
pub mod tokenizer;
pub mod vkae;
pub mod weights;

use std::path::Path;
use std::time::Instant;

pub use config::{Family, LayerKind, TextConfig};
pub use error::{EngineError, Result};
pub use weights::Model;

/// Where the decoder runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// The f32 CPU reference.
    Cpu,
    /// The generic CUDA path (BF16 weights, f32 accumulation).
    Cuda,
    /// The VKAE kernel path (CUDA; dense models): fused kernels, measured projection kernels, programmatic
    /// dependent launch, one CUDA graph per decode step ([`vkae::VkaeModel`], default options).
    Vkae,
}

impl Backend {
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "cpu" => Ok(Self::Cpu),
            "cuda" | "gpu" => Ok(Self::Cuda),
            "vkae" => Ok(Self::Vkae),
            other => Err(EngineError::Input(format!(
                "unknown device {other:?} (expected cpu, cuda or vkae)"
            ))),
        }
    }
}

/// Where a model comes from.
#[derive(Clone, Debug)]
pub enum ModelSource {
    /// A Hugging Face checkpoint folder.
    Dir(std::path::PathBuf),
    /// Random weights at a family's shape, a pure function of the seed.
    Synthetic { family: Family, seed: u64 },
}

impl ModelSource {
    pub fn load(&self) -> Result<Model> {
        match self {
            ModelSource::Dir(d) => Model::load(d),
            ModelSource::Synthetic { family, seed } => Model::synthetic(
                family.config(),
                *seed,
                format!("synthetic:{}:{}", family.name(), seed),
            ),
        }
    }
}

/// Loads a checkpoint folder (convenience for `Model::load`).
pub fn load(dir: &Path) -> Result<Model> {
    Model::load(dir)
}

/// A greedy-generation request: one prompt per sequence of the batch.
#[derive(Clone, Debug)]
pub struct GenerateRequest {
    pub prompts: Vec<Vec<u32>>,
    pub max_new: usize,
    /// Stop a sequence at an EOS token (benchmarks keep this off so every sequence runs `max_new` steps).
    pub stop_at_eos: bool,
}

/// What generation produced and how fast.
#[derive(Clone, Debug, serde::Serialize)]
pub struct GenerateOutput {
    /// Generated ids per sequence (prompt excluded).
    pub tokens: Vec<Vec<u32>>,
    /// Prefill wall time (prompt -> first token), seconds.
    pub prefill_s: f64,
    /// Wall time of the decode steps after the first token, seconds.
    pub decode_s: f64,
    /// Decode steps timed (each yields one token per sequence).
    pub decode_steps: usize,
    /// Generated tokens per second over the timed decode steps, all sequences together.
    pub tokens_per_s: f64,
}

/// A loaded model bound to a backend, reusable across calls (the GPU copy is uploaded once).
pub enum Engine {
    Cpu(Box<Model>),
    Cuda(Box<gpu::GpuModel>),
    Vkae(Box<vkae::VkaeModel>),
}

impl Engine {
    pub fn new(model: Model, backend: Backend) -> Result<Self> {
        match backend {
            Backend::Cpu => Ok(Engine::Cpu(Box::new(model))),
            Backend::Cuda => Ok(Engine::Cuda(Box::new(gpu::GpuModel::new(&model)?))),
            Backend::Vkae => Ok(Engine::Vkae(Box::new(vkae::VkaeModel::new(
                &model,
                vkae::VkaeOptions::default(),
            )?))),
        }
    }

    /// The device this engine runs on ("cpu", or the GPU's name).
    pub fn device_name(&self) -> String {
        match self {
            Engine::Cpu(_) => "cpu".to_string(),
            Engine::Cuda(g) => g.device_name().to_string(),
            Engine::Vkae(v) => v.device_name().to_string(),
        }
    }

    pub fn config(&self) -> &TextConfig {
        match self {
            Engine::Cpu(m) => &m.config,
            Engine::Cuda(g) => g.config(),
            Engine::Vkae(v) => v.config(),
        }
    }

    /// Greedy generation; the first token comes from prefill, the rest from timed decode steps.
    pub fn generate(&mut self, req: &GenerateRequest) -> Result<GenerateOutput> {
        validate_prompts(self.config(), &req.prompts)?;
        match self {
            Engine::Cpu(m) => cpu_generate(m, req),
            Engine::Cuda(g) => g.generate(req),
            Engine::Vkae(v) => v.generate(req),
        }
    }

    /// Teacher-forced log-probabilities: entry `i` is `log p(ids[i+1] | ids[..=i])` (length `ids.len() - 1`).
    pub fn logprobs(&mut self, ids: &[u32]) -> Result<Vec<f64>> {
        validate_prompts(self.config(), &[ids.to_vec()])?;
        if ids.len() < 2 {
            return Err(EngineError::Input(
                "logprobs needs at least two tokens".into(),
            ));
        }
        let logits = self.prefill_logits(ids)?;
        let v = self.config().vocab_size;
        Ok((0..ids.len() - 1)
            .map(|i| cpu::log_prob(&logits[i * v..(i + 1) * v], ids[i + 1]))
            .collect())
    }

    /// Soft-capped logits of every position of `ids` (`[len, vocab]`, f32), from one prefill.
    pub fn prefill_logits(&mut self, ids: &[u32]) -> Result<Vec<f32>> {
        validate_prompts(self.config(), &[ids.to_vec()])?;
        match self {
            Engine::Cpu(m) => Ok(cpu::CpuSession::new(m).forward(ids, true)),
            Engine::Cuda(g) => g.prefill_logits(ids),
            Engine::Vkae(v) => v.prefill_logits(ids),
        }
    }

    /// Greedy generation that also returns the logits behind each generated token (`[max_new][vocab]` per
    /// sequence), for checking a backend against a reference.
    pub fn generate_with_logits(
        &mut self,
        prompt: &[u32],
        max_new: usize,
    ) -> Result<(Vec<u32>, Vec<Vec<f32>>)> {
        validate_prompts(self.config(), &[prompt.to_vec()])?;
        match self {
            Engine::Cpu(m) => {
                let mut s = cpu::CpuSession::new(m);
                let mut logits = s.forward(prompt, false);
                let (mut toks, mut all) = (vec![], vec![]);
                for step in 0..max_new {
                    let t = cpu::argmax(&logits);
                    toks.push(t);
                    all.push(logits);
                    if step + 1 < max_new {
                        logits = s.forward(&[t], false);
                    } else {
                        break;
                    }
                }
                Ok((toks, all))
            }
            Engine::Cuda(g) => g.generate_with_logits(prompt, max_new),
            Engine::Vkae(v) => v.generate_with_logits(prompt, max_new),
        }
    }
}

fn validate_prompts(cfg: &TextConfig, prompts: &[Vec<u32>]) -> Result<()> {
    if prompts.is_empty() {
        return Err(EngineError::Input("no prompt given".into()));
    }
    for (i, p) in prompts.iter().enumerate() {
        if p.is_empty() {
            return Err(EngineError::Input(format!("prompt {i} is empty")));
        }
        if let Some(&bad) = p.iter().find(|&&t| t as usize >= cfg.vocab_size) {
            return Err(EngineError::Input(format!(
                "prompt {i}: token id {bad} is outside the vocabulary (size {})",
                cfg.vocab_size
            )));
        }
    }
    Ok(())
}

/// The CPU runs the sequences of a batch one after another; `decode_steps` is the longest sequence's step
/// count and tokens/s counts every timed token of every sequence over the summed decode time.
fn cpu_generate(m: &Model, req: &GenerateRequest) -> Result<GenerateOutput> {
    let mut tokens = vec![vec![]; req.prompts.len()];
    let (mut prefill_s, mut decode_s, mut timed_tokens) = (0.0, 0.0, 0usize);
    for (si, prompt) in req.prompts.iter().enumerate() {
        let mut s = cpu::CpuSession::new(m);
        let t0 = Instant::now();
        let mut next = cpu::argmax(&s.forward(prompt, false));
        prefill_s += t0.elapsed().as_secs_f64();
        tokens[si].push(next);
        let t1 = Instant::now();
        for _ in 1..req.max_new {
            if req.stop_at_eos && m.config.eos_token_ids.contains(&next) {
                break;
            }
            next = cpu::argmax(&s.forward(&[next], false));
            tokens[si].push(next);
            timed_tokens += 1;
        }
        decode_s += t1.elapsed().as_secs_f64();
    }
    let decode_steps = tokens
        .iter()
        .map(|t| t.len().saturating_sub(1))
        .max()
        .unwrap_or(0);
    Ok(GenerateOutput {
        tokens,
        prefill_s,
        decode_s,
        decode_steps,
        tokens_per_s: if decode_s > 0.0 {
            timed_tokens as f64 / decode_s
        } else {
            0.0
        },
    })
}

/// Greedy generation on a backend (loads the GPU copy for this one call).
pub fn generate(model: &Model, backend: Backend, req: &GenerateRequest) -> Result<GenerateOutput> {
    Engine::new(model.clone(), backend)?.generate(req)
}

/// Teacher-forced log-probabilities on a backend (see [`Engine::logprobs`]).
pub fn logprobs(model: &Model, backend: Backend, ids: &[u32]) -> Result<Vec<f64>> {
    Engine::new(model.clone(), backend)?.logprobs(ids)
}
