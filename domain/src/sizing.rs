//! The `/api/v1/sizing` document: memory arithmetic per family, the minimum and recommended lanes, and per GPU
//! the planning index (a roofline ceiling) or, where a promoted claim exists, the measured figure.

use crate::ids::{FamilyId, GpuSlug, RunId};
use crate::level::ClaimLevel;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SizingAssumptions {
    pub precision: String,
    pub headroom_fraction: f64,
    pub gpu_counts: Vec<u32>,
    /// What a GB is here (`10^9 bytes`).
    pub gb: String,
    pub planning_note: String,
}

/// The first GPU lane (smallest count, then catalog order) that holds a scenario.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LaneFit {
    pub gpu_id: GpuSlug,
    pub gpu: String,
    pub gpu_count: u32,
    pub usable_gb: f64,
}

/// The memory arithmetic of one scenario.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MemoryLane {
    pub context_tokens: u32,
    pub batch: u32,
    pub weights_gb: f64,
    pub kv_cache_gb: f64,
    pub needed_gb: f64,
    pub headroom_fraction: f64,
    pub rule: String,
    /// None when no listed GPU count holds it.
    pub lane: Option<LaneFit>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KvLayers {
    pub sliding: u32,
    pub global: u32,
}

/// The batch-1 bandwidth roofline: a ceiling, not a measurement.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlanningIndex {
    /// Always `planning`.
    pub label: String,
    pub tokens_per_s: f64,
    pub basis: String,
}

/// The newest promoted claim's VKAE median for a family on a GPU.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MeasuredSpeed {
    /// Always `measured`.
    pub label: String,
    pub tokens_per_s: Option<f64>,
    pub run_id: RunId,
    pub level: ClaimLevel,
    pub batch: u32,
    pub gpu_count: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GpuSpeed {
    pub gpu_id: GpuSlug,
    pub gpu: String,
    /// The smallest count of this GPU that holds the minimum scenario.
    pub gpu_count: Option<u32>,
    pub fits: bool,
    pub planning: Option<PlanningIndex>,
    pub measured: Option<MeasuredSpeed>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FamilySizing {
    pub family: FamilyId,
    pub kv_layers: KvLayers,
    pub kv_bytes_per_token_global: f64,
    pub decode_gb_per_token: f64,
    pub decode_source: String,
    pub minimum: MemoryLane,
    pub recommended: MemoryLane,
    pub speed: Vec<GpuSpeed>,
}

/// `GET /api/v1/sizing`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SizingDocument {
    pub assumptions: SizingAssumptions,
    pub families: Vec<FamilySizing>,
}
