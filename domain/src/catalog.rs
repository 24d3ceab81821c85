//! The catalog as content declares it (`content/*.toml`) and the `/api/v1/models` and `/api/v1/gpus`
//! documents built from it.

use crate::ids::{FamilyId, GpuSlug, ServicePath};
use serde::{Deserialize, Serialize};

/// A Gemma 4 serving family (`content/catalog.toml`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Family {
    pub slug: FamilyId,
    pub name: String,
    pub repos: Vec<String>,
    pub params_total_b: f64,
    pub params_effective_b: f64,
    pub hidden_size: u32,
    pub num_hidden_layers: u32,
    /// Sliding-window layers per full-attention layer in the repeating pattern.
    pub sliding_per_full: u32,
    pub attention_heads: u32,
    pub kv_heads_sliding: u32,
    pub kv_heads_global: u32,
    pub head_dim_sliding: u32,
    pub head_dim_global: u32,
    pub attention_k_eq_v: bool,
    pub num_kv_shared_layers: u32,
    pub sliding_window: u32,
    pub max_context: u32,
    pub bf16_weights_gb: f64,
    pub decode_gb_per_token: f64,
    pub decode_source: String,
}

/// The adjacent lane (DiffusionGemma): named, not benchmarked.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Adjacent {
    pub slug: String,
    pub name: String,
    pub repos: Vec<String>,
    pub note: String,
}

/// A packaging out of the benchmark scope, with the reason.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Excluded {
    pub name: String,
    pub reason: String,
}

/// A GPU and its datasheet figures (`content/gpus.toml`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Gpu {
    pub id: GpuSlug,
    pub name: String,
    pub memory_gb: f64,
    pub memory_type: String,
    pub bandwidth_gb_s: f64,
    pub bf16_dense_tflops: f64,
    pub source: String,
    /// Names a run record's `hardware.gpu` may use for this GPU.
    pub match_names: Vec<String>,
}

/// A service path a visitor can ask for (`content/service_paths.toml`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServicePathInfo {
    pub slug: ServicePath,
    pub name: String,
    pub summary: String,
}

/// Whether a family's runs may become claims.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ProfileStatus {
    ClaimReady,
    PortingTrack,
}

impl ProfileStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ProfileStatus::ClaimReady => "claim-ready",
            ProfileStatus::PortingTrack => "porting-track",
        }
    }
}

/// What the benchmark lane requires of every path.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BenchmarkRules {
    pub min_repetitions: u32,
    pub max_spread: f64,
}

/// The quality bounds of a family's profile, and where they come from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Thresholds {
    pub basis: String,
    pub max_ppl_relative: f64,
    pub min_top1_agreement: f64,
    pub max_mean_kl: f64,
}

/// A family's profile as the models document shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FamilyProfile {
    pub status: ProfileStatus,
    pub note: String,
    pub thresholds: Thresholds,
}

/// A catalog family with its profile (None: the family has no profile yet).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CatalogFamily {
    #[serde(flatten)]
    pub family: Family,
    pub profile: Option<FamilyProfile>,
}

/// `GET /api/v1/models`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelsDocument {
    pub families: Vec<CatalogFamily>,
    pub repo_count: usize,
    pub adjacent: Adjacent,
    pub excluded: Vec<Excluded>,
    pub benchmark_rules: BenchmarkRules,
    pub service_paths: Vec<ServicePathInfo>,
}

/// `GET /api/v1/gpus`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GpusDocument {
    pub gpus: Vec<Gpu>,
}
