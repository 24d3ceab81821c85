//! The `serve` and `bench-serve` flags, as typed settings.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Args;

use super::recipe::Recipe;
use super::server::{ServeSettings, DEFAULT_BIND, DEFAULT_MAX_BODY_BYTES};
use crate::args::ModelArgs;
use crate::error::{EngineError, Result};
use crate::{Backend, ModelSource};

#[derive(Args, Debug, Clone)]
pub struct ServeArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// The serving recipe (recipes/*.toml): batch, context, KV budget, kernel settings.
    #[arg(long)]
    pub recipe: PathBuf,
    /// vkae, cuda or cpu; default: the recipe's kernels.device.
    #[arg(long)]
    pub device: Option<String>,
    /// Address to listen on. The default is loopback only; another address needs --api-key.
    #[arg(long, default_value = DEFAULT_BIND)]
    pub bind: String,
    /// The model name clients send (default: the checkpoint folder's name, or synthetic-FAMILY-seedN).
    #[arg(long)]
    pub served_model_name: Option<String>,
    /// Require `Authorization: Bearer KEY` on /v1/* (also from VKAE_API_KEY).
    #[arg(long, env = "VKAE_API_KEY", hide_env_values = true)]
    pub api_key: Option<String>,
    /// Serve a non-loopback address without an API key.
    #[arg(long)]
    pub allow_unauthenticated: bool,
    /// Largest request body, bytes.
    #[arg(long, default_value_t = DEFAULT_MAX_BODY_BYTES)]
    pub max_body_bytes: usize,
}

impl ServeArgs {
    pub fn settings(&self) -> Result<ServeSettings> {
        let source = self.model.source()?;
        let recipe = Recipe::load(&self.recipe)?;
        let device = Backend::parse(
            self.device
                .as_deref()
                .unwrap_or(&recipe.recipe.kernels.device),
        )?;
        let bind: SocketAddr = self
            .bind
            .parse()
            .map_err(|_| EngineError::Input(format!("--bind {:?}: expected IP:PORT", self.bind)))?;
        if !bind.ip().is_loopback() && self.api_key.is_none() && !self.allow_unauthenticated {
            return Err(EngineError::Input(format!(
                "--bind {bind} is reachable from other machines: set --api-key (or VKAE_API_KEY), or pass \
                 --allow-unauthenticated"
            )));
        }
        if self.api_key.as_deref().is_some_and(|k| k.len() < 8) {
            return Err(EngineError::Input(
                "--api-key: use at least 8 characters".into(),
            ));
        }
        if self.max_body_bytes < 1024 {
            return Err(EngineError::Input("--max-body-bytes: at least 1024".into()));
        }
        let served_model_name = match &self.served_model_name {
            Some(n) if !n.is_empty() => n.clone(),
            Some(_) => return Err(EngineError::Input("--served-model-name is empty".into())),
            None => default_name(&source),
        };
        Ok(ServeSettings {
            source,
            recipe,
            device,
            bind,
            served_model_name,
            api_key: self.api_key.clone(),
            max_body_bytes: self.max_body_bytes,
        })
    }
}

fn default_name(source: &ModelSource) -> String {
    match source {
        ModelSource::Dir(d) => d
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| d.display().to_string()),
        ModelSource::Synthetic { family, seed } => {
            format!("synthetic-{}-seed{seed}", family.name())
        }
    }
}

#[derive(Args, Debug, Clone)]
pub struct BenchServeArgs {
    #[command(flatten)]
    pub serve: ServeArgs,
    /// Concurrent clients, one level after another (comma-separated).
    #[arg(long, default_value = "1,8,32")]
    pub concurrency: String,
    /// Prompt length, tokens (random ids from --prompt-seed).
    #[arg(long, default_value_t = 128)]
    pub prompt_tokens: usize,
    /// Generated tokens per request (EOS ignored, so every request generates exactly this many).
    #[arg(long, default_value_t = 128)]
    pub output_tokens: usize,
    /// Requests per level, as a multiple of its concurrency.
    #[arg(long, default_value_t = 4)]
    pub rounds: usize,
    #[arg(long, default_value_t = 1)]
    pub prompt_seed: u64,
    /// Write the JSON report here as well as to stdout.
    #[arg(long)]
    pub report: Option<PathBuf>,
}
