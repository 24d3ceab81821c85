//! Serving recipes (`recipes/*.toml`): one file binds a model family, its precision, the kernel path's
//! settings, the batch and memory limits, the batching policy, speculative decoding and the quality gates the
//! deployment was verified under. `serve --recipe` reads one; its SHA-256 names it in logs and records.
//!
//! Every table and field is required unless marked optional, unknown fields are errors, and every value is
//! range-checked, so a recipe that parses is one the server can run.

use std::path::Path;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::config::Family;
use crate::error::{EngineError, Result};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Recipe {
    /// Short identifier (`e4b-h200`): letters, digits, `-`, `_`, `.`.
    pub name: String,
    pub description: String,
    pub model: ModelSection,
    pub kernels: KernelSection,
    pub batching: BatchingSection,
    pub speculative: SpeculativeSection,
    pub quality: QualitySection,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelSection {
    /// Gemma 4 family: e2b, e4b, 12b, 26b-a4b, 31b.
    pub family: String,
    /// The Hugging Face repository of the checkpoint the recipe was verified with.
    pub repo: String,
    pub precision: Precision,
}

/// Weight and KV-cache storage type.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    Bf16,
}

/// The kernel path and the settings a deployment may choose (the VKAE path's user-facing options).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KernelSection {
    /// vkae (our kernels), cuda (the generic path) or cpu (the reference; tests only).
    pub device: String,
    /// Replay one captured CUDA graph per decode batch size.
    pub cuda_graphs: bool,
    /// Programmatic dependent launch (Hopper and later).
    pub programmatic_launch: bool,
    /// Projection kernels: `measured` (the fastest per shape, timed at start-up), `cublas`, `gemv` or
    /// `skinny`.
    pub projections: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BatchingSection {
    /// Iteration-level scheduling: requests join and leave the running batch at decode-step boundaries.
    pub policy: BatchingPolicy,
    /// Sequences decoded together (1..=32, the VKAE path's captured batch sizes).
    pub max_batch: usize,
    /// Positions per sequence, prompt plus generated tokens.
    pub max_context: usize,
    /// KV-cache memory the scheduler may reserve, GiB (each admitted request reserves its prompt plus its
    /// `max_tokens` positions).
    pub kv_budget_gib: f64,
    /// Requests waiting for a slot beyond which new ones get 429.
    pub max_queue: usize,
    /// Prompt tokens prefilled per scheduler iteration, so an arriving prompt delays running requests by at
    /// most one chunk.
    pub prefill_chunk: usize,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BatchingPolicy {
    Continuous,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SpeculativeSection {
    /// Speculative decoding; the server refuses a recipe that turns it on (not implemented).
    pub enabled: bool,
    /// Draft model repository, when enabled.
    #[serde(default)]
    pub draft_repo: Option<String>,
    /// Tokens drafted per step, when enabled.
    #[serde(default)]
    pub draft_tokens: Option<usize>,
}

/// The quality gates of the qualification run the recipe was verified under (`content/profiles.toml`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QualitySection {
    pub max_ppl_relative: f64,
    pub min_top1_agreement: f64,
    pub max_mean_kl: f64,
    /// Teacher-forced tokens the guard scored.
    pub guard_tokens: usize,
}

/// The VKAE path's captured decode batch sizes end at 32.
pub const MAX_BATCH: usize = 32;

/// A recipe file and the SHA-256 of its bytes.
#[derive(Clone, Debug)]
pub struct LoadedRecipe {
    pub recipe: Recipe,
    /// Lowercase hex SHA-256 of the file as read.
    pub sha256: String,
}

impl Recipe {
    /// Reads and checks a recipe file.
    pub fn load(path: &Path) -> Result<LoadedRecipe> {
        let bytes = std::fs::read(path)
            .map_err(|e| EngineError::Input(format!("recipe {}: {e}", path.display())))?;
        let text = std::str::from_utf8(&bytes)
            .map_err(|_| EngineError::Input(format!("recipe {}: not UTF-8", path.display())))?;
        let recipe = Recipe::parse(text)
            .map_err(|e| EngineError::Input(format!("recipe {}: {e}", path.display())))?;
        let sha256 = Sha256::digest(&bytes)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        Ok(LoadedRecipe { recipe, sha256 })
    }

    /// Parses and checks recipe text; the error names the field.
    pub fn parse(text: &str) -> std::result::Result<Recipe, String> {
        let recipe: Recipe = toml::from_str(text).map_err(|e| e.to_string())?;
        recipe.check()?;
        Ok(recipe)
    }

    pub fn family(&self) -> Family {
        Family::parse(&self.model.family).expect("checked at parse")
    }

    /// The KV budget in bytes.
    pub fn kv_budget_bytes(&self) -> u64 {
        (self.batching.kv_budget_gib * (1u64 << 30) as f64) as u64
    }

    fn check(&self) -> std::result::Result<(), String> {
        let ok_name = !self.name.is_empty()
            && self
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
        if !ok_name {
            return Err(format!(
                "name {:?}: use letters, digits, '-', '_' or '.'",
                self.name
            ));
        }
        Family::parse(&self.model.family).map_err(|e| format!("model.family: {e}"))?;
        if !self.model.repo.contains('/') {
            return Err(format!(
                "model.repo {:?}: expected a Hugging Face repository, owner/name",
                self.model.repo
            ));
        }
        crate::Backend::parse(&self.kernels.device).map_err(|e| format!("kernels.device: {e}"))?;
        crate::vkae::ProjectionMode::parse(&self.kernels.projections)
            .map_err(|e| format!("kernels.projections: {e}"))?;
        let b = &self.batching;
        if !(1..=MAX_BATCH).contains(&b.max_batch) {
            return Err(format!(
                "batching.max_batch {}: must be 1..={MAX_BATCH}",
                b.max_batch
            ));
        }
        if b.max_context < 2 {
            return Err(format!(
                "batching.max_context {}: must be at least 2",
                b.max_context
            ));
        }
        if !(b.kv_budget_gib > 0.0 && b.kv_budget_gib.is_finite()) {
            return Err(format!(
                "batching.kv_budget_gib {}: must be a positive number",
                b.kv_budget_gib
            ));
        }
        if b.max_queue == 0 || b.prefill_chunk == 0 {
            return Err("batching.max_queue and batching.prefill_chunk must be positive".into());
        }
        if self.speculative.enabled {
            return Err(
                "speculative.enabled = true: speculative decoding is not implemented; set it to false"
                    .into(),
            );
        }
        let q = &self.quality;
        if !(q.max_ppl_relative > 0.0 && q.max_ppl_relative < 1.0) {
            return Err("quality.max_ppl_relative must be in (0, 1)".into());
        }
        if !(q.min_top1_agreement > 0.0 && q.min_top1_agreement <= 1.0) {
            return Err("quality.min_top1_agreement must be in (0, 1]".into());
        }
        if !(q.max_mean_kl > 0.0 && q.max_mean_kl.is_finite()) {
            return Err("quality.max_mean_kl must be a positive number".into());
        }
        if q.guard_tokens == 0 {
            return Err("quality.guard_tokens must be positive".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shipped() -> String {
        std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../recipes/e4b-h200.toml"
        ))
        .unwrap()
    }

    #[test]
    fn the_shipped_recipe_parses() {
        let r = Recipe::parse(&shipped()).unwrap();
        assert_eq!(r.name, "e4b-h200");
        assert_eq!(r.family(), Family::E4B);
        assert_eq!(r.batching.max_batch, 32);
        assert!(!r.speculative.enabled);
        assert_eq!(
            r.kv_budget_bytes(),
            (r.batching.kv_budget_gib * 1073741824.0) as u64
        );
    }

    #[test]
    fn bad_recipes_name_the_field() {
        let base = shipped();
        let cases = [
            ("max_batch = 32", "max_batch = 33", "batching.max_batch 33"),
            ("family = \"e4b\"", "family = \"e5b\"", "model.family"),
            ("enabled = false", "enabled = true", "speculative.enabled"),
            ("kv_budget_gib = ", "kv_budget_gib = -", "kv_budget_gib"),
            (
                "policy = \"continuous\"",
                "policy = \"static\"",
                "unknown variant",
            ),
            ("[speculative]", "[speculative]\nwhat = 1", "unknown field"),
            ("device = \"vkae\"", "device = \"tpu\"", "kernels.device"),
            (
                "projections = \"measured\"",
                "projections = \"fast\"",
                "kernels.projections",
            ),
        ];
        for (from, to, want) in cases {
            assert!(base.contains(from), "{from}");
            let err = Recipe::parse(&base.replacen(from, to, 1)).unwrap_err();
            assert!(err.contains(want), "{to}: {err}");
        }
    }

    #[test]
    fn load_hashes_the_file_bytes() {
        let dir = std::env::temp_dir().join(format!("vkae-recipe-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("r.toml");
        std::fs::write(&p, shipped()).unwrap();
        let l = Recipe::load(&p).unwrap();
        let want: String = Sha256::digest(shipped().as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(l.sha256, want);
        assert_eq!(l.sha256.len(), 64);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
