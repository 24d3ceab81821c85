//! A public claim: the figures computed from a signed run record when an operator promotes it, plus the level,
//! the promotion time and the provenance a reader needs to check it offline; and the `/api/v1/claims` document.

use crate::ids::{FamilyId, GpuSlug, RunId};
use crate::level::ClaimLevel;
use serde::{Deserialize, Serialize};

/// The role a measured path plays in a comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PathRole {
    Baseline,
    Vkae,
    Peer,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClaimModel {
    pub repo: String,
    pub family: FamilyId,
    /// `synthetic:seed=N` (random weights of the family's shape) or `sha256:…` over the checkpoint files.
    pub weights: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClaimHardware {
    /// The GPU as the run record names it.
    pub gpu: String,
    /// The catalog GPU it matched, if any.
    pub gpu_id: Option<GpuSlug>,
    pub gpu_count: u32,
    pub driver: String,
    pub cuda: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClaimEngine {
    pub version: String,
    pub commit: Option<String>,
    pub kernels: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClaimRecipe {
    pub precision: String,
    pub batch: u32,
    pub prompt_tokens: u32,
    pub output_tokens: u32,
}

/// A path's timed repetitions, summarised. `median` is None only for a path without repetitions (which the
/// benchmark lane refuses, so no promoted claim has one).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RateSummary {
    pub median: Option<f64>,
    pub min: f64,
    pub max: f64,
    pub repetitions: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClaimPath {
    pub name: String,
    pub role: PathRole,
    pub tokens_per_s: RateSummary,
    pub detail: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UnavailableClaimPath {
    pub name: String,
    pub role: PathRole,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClaimQuality {
    pub tokens: u64,
    pub reference_ppl: f64,
    pub vkae_ppl: f64,
    pub top1_agreement: f64,
    pub mean_kl: f64,
}

/// The four lanes of a claim; a claim exists only when all passed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClaimLanes {
    pub artifact: String,
    pub benchmark: String,
    pub quality: String,
    pub dashboard_valid: String,
}

/// Figures derived from the medians of the run's declared baseline and VKAE paths (the baseline role is the
/// family profile's declared baseline: the benchmark lane refuses any other).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Derived {
    /// Always `derived`: the API labels figures it computed.
    pub label: String,
    pub note: String,
    /// The declared baseline's path name.
    pub baseline_path: String,
    pub vkae_path: String,
    /// Medians of the two paths.
    pub baseline_tokens_per_s: f64,
    pub vkae_tokens_per_s: f64,
    /// VKAE / baseline.
    pub lift: f64,
    /// VKAE - baseline.
    pub additional_tokens_per_s: f64,
    /// 1 - baseline / VKAE, at the same GPU rate (from the declared baseline only).
    pub token_cost_reduction: f64,
    /// The lift over the profile's eager reference, when the run carries that path and it is not the baseline.
    pub eager_reference: Option<ReferenceLift>,
}

/// VKAE's lift over a context path of the same run (not the declared baseline).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReferenceLift {
    /// Always `derived`.
    pub label: String,
    pub path: String,
    /// The path's median.
    pub tokens_per_s: f64,
    /// VKAE / this path.
    pub lift: f64,
}

/// Whether a claim still stands: `current`, `stale` (its run is older than the profile's `claim_current_days`)
/// or `disputed` (a newer comparable record is more than 2% slower; disputed wins over stale).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ClaimState {
    Current,
    Stale,
    Disputed,
}

/// A newer signed record of the same family, GPU, recipe and batch whose VKAE median is more than 2% below the
/// claim's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Dispute {
    pub run_id: String,
    pub vkae_median: f64,
    pub claim_median: f64,
    /// RFC 3339 time the store found it (when that record was ingested).
    pub found_at: String,
}

/// A claim's standing, computed when it is read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClaimStanding {
    pub state: ClaimState,
    /// The run's date (RFC 3339), as `measured_at`.
    pub measured_at: String,
    /// RFC 3339 time past which the claim is stale (`measured_at` + the profile's `claim_current_days`).
    pub current_until: String,
    pub disputes: Vec<Dispute>,
}

/// What promotion computes from the record and stores.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClaimFigures {
    pub run_id: RunId,
    pub model: ClaimModel,
    pub hardware: ClaimHardware,
    pub engine: ClaimEngine,
    pub recipe: ClaimRecipe,
    pub paths: Vec<ClaimPath>,
    pub unavailable_paths: Vec<UnavailableClaimPath>,
    pub quality: ClaimQuality,
    /// RFC 3339 time the run finished.
    pub measured_at: String,
    pub lanes: ClaimLanes,
    /// None when the run lacks a baseline or a VKAE path.
    pub derived: Option<Derived>,
}

impl ClaimFigures {
    /// The path in `role`, if the run had one.
    pub fn path(&self, role: PathRole) -> Option<&ClaimPath> {
        self.paths.iter().find(|p| p.role == role)
    }

    /// The median tokens/s of the path in `role`.
    pub fn median(&self, role: PathRole) -> Option<f64> {
        self.path(role)?.tokens_per_s.median
    }
}

/// Where a claim's signed record is served and the lane key that signed it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Provenance {
    /// `/api/v1/claims/{run_id}/record`.
    pub record: String,
    pub record_sha256: String,
    pub lane_key: String,
    /// The lane key's Ed25519 public key (base64).
    pub lane_public_key: String,
}

/// A promoted, unretracted claim as `/api/v1/claims` lists it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PublicClaim {
    #[serde(flatten)]
    pub figures: ClaimFigures,
    pub level: ClaimLevel,
    pub level_label: String,
    pub promoted_at: String,
    pub provenance: Provenance,
    pub standing: ClaimStanding,
}

/// A level as the claims document lists it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LevelEntry {
    pub slug: ClaimLevel,
    pub label: String,
}

/// `GET /api/v1/claims`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClaimsDocument {
    /// Newest promotion first.
    pub claims: Vec<PublicClaim>,
    pub levels: Vec<LevelEntry>,
    pub note: String,
}
