//! vkae-engine: the Gemma 4 text decoder.
//!
//! - [`config`]: `config.json` parsing and the five family shapes.
//! - [`weights`]: the parameter list, the memory-mapped safetensors loader, synthetic weights, checkpoint writer.
//! - [`cpu`]: the f32 CPU reference forward pass (prefill, KV cache, decode).
//! - [`generic`]: the generic CUDA path (BF16 weights, cuBLAS projections, `vkae-kernels` for the rest).
//! - [`vkae`]: the VKAE kernel path (fused weights and kernels, weight-streaming GEMV, one CUDA graph per decode step).
//! - [`session`]: what every backend's `generate` shares, and the slot API for continuous batching
//!   ([`Engine::session`]).
//! - [`generate`] / [`logprobs`]: greedy generation and teacher-forced log-probabilities on any backend.
//! - [`bench`](mod@bench): the one benchmark loop ([`bench::measure`]) and the decode benchmark.
//! - [`serve`]: `vkae-engine serve`, the OpenAI-compatible server with continuous batching, and its recipes.
//! - [`stats`]: parameter counts, bytes streamed per decode step ([`stats::bytes_per_step`]), KV bytes per token.

pub mod args;
pub mod bench;
pub mod cli;
pub mod config;
pub mod cpu;
mod device;
pub mod error;
pub mod generic;
pub mod qualify;
pub mod serve;
pub mod session;
pub mod stats;
pub mod tensor;
pub mod tokenizer;
pub mod vkae;
pub mod weights;

use std::path::Path;
use std::time::Instant;

pub use config::{Family, LayerKind, TextConfig};
pub use error::{EngineError, Result};
pub use session::pack::{GenerateOutput, GenerateRequest};
pub use session::{PrefillInput, RowOutput, Session, SessionSettings, StepInput};
pub use weights::Model;

use session::pack::{validate_prompts, EosTracker};

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

    /// The model's config without loading its weights.
    pub fn config(&self) -> Result<TextConfig> {
        match self {
            ModelSource::Dir(d) => TextConfig::from_path(d),
            ModelSource::Synthetic { family, .. } => Ok(family.config()),
        }
    }
}

/// Loads a checkpoint folder (convenience for `Model::load`).
pub fn load(dir: &Path) -> Result<Model> {
    Model::load(dir)
}

/// A loaded model bound to a backend, reusable across calls (the GPU copy is uploaded once).
pub enum Engine {
    Cpu(Box<Model>),
    Cuda(Box<generic::GenericModel>),
    Vkae(Box<vkae::VkaeModel>),
}

impl Engine {
    pub fn new(model: Model, backend: Backend) -> Result<Self> {
        match backend {
            Backend::Cpu => Ok(Engine::Cpu(Box::new(model))),
            Backend::Cuda => Ok(Engine::Cuda(Box::new(generic::GenericModel::new(&model)?))),
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

    /// Opens the iteration-level slot API on this engine (see [`session`]): `settings.max_slots` slots of
    /// `settings.capacity` positions each, their KV memory reserved now.
    pub fn session(&mut self, settings: SessionSettings) -> Result<Session<'_>> {
        let config = self.config().clone();
        let backend: Box<dyn session::SlotBackend + '_> = match self {
            Engine::Cpu(m) => Box::new(session::cpu::CpuSlots::new(m, settings.max_slots)),
            Engine::Cuda(g) => Box::new(generic::slots::GenericSlots::new(g, settings)?),
            Engine::Vkae(v) => Box::new(vkae::slots::VkaeSlots::new(v, settings)?),
        };
        Ok(Session::new(settings, config, backend))
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
        let mut eos = EosTracker::new(&m.config, 1);
        for _ in 1..req.max_new {
            if req.stop_at_eos && eos.observe(&[next]) {
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
    Ok(GenerateOutput::new(
        tokens,
        prefill_s,
        decode_s,
        decode_steps,
        timed_tokens,
    ))
}

/// Greedy generation on a backend (loads the GPU copy for this one call).
pub fn generate(model: &Model, backend: Backend, req: &GenerateRequest) -> Result<GenerateOutput> {
    Engine::new(model.clone(), backend)?.generate(req)
}

/// Teacher-forced log-probabilities on a backend (see [`Engine::logprobs`]).
pub fn logprobs(model: &Model, backend: Backend, ids: &[u32]) -> Result<Vec<f64>> {
    Engine::new(model.clone(), backend)?.logprobs(ids)
}
