//! The command-line arguments the commands share (`generate`, `inspect`, `bench`, `serve`, `bench-serve`): the
//! model to load and lists of numbers.

use clap::Args;
use std::path::PathBuf;

use crate::config::Family;
use crate::error::{EngineError, Result};
use crate::ModelSource;

#[derive(Args, Debug, Clone)]
pub struct ModelArgs {
    /// A Hugging Face checkpoint folder (config.json + safetensors).
    pub model: Option<PathBuf>,
    /// Random weights at a family's shape instead of a checkpoint: e2b, e4b, 12b, 26b-a4b, 31b.
    #[arg(long, conflicts_with = "model")]
    pub synthetic: Option<String>,
    /// Seed of the synthetic weights.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

impl ModelArgs {
    pub fn source(&self) -> Result<ModelSource> {
        match (&self.model, &self.synthetic) {
            (Some(d), None) => Ok(ModelSource::Dir(d.clone())),
            (None, Some(f)) => Ok(ModelSource::Synthetic {
                family: Family::parse(f)?,
                seed: self.seed,
            }),
            _ => Err(EngineError::Input(
                "give a MODEL folder or --synthetic FAMILY".into(),
            )),
        }
    }
}

/// Comma-separated token ids (bench-serve reads its concurrency levels with it too); empty items are skipped.
pub fn parse_ids(s: &str) -> Result<Vec<u32>> {
    s.split(',')
        .map(|p| p.trim())
        .filter(|p| !p.is_empty())
        .map(|p| {
            p.parse::<u32>()
                .map_err(|_| EngineError::Input(format!("--prompt-ids: {p:?} is not a token id")))
        })
        .collect()
}
