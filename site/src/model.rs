//! What the pages show, as plain data. The public pages read views built from the evidence store's typed
//! documents (see `evidence.rs`); where a page shows a store document as it is (GPUs, service paths, the
//! adjacent lane and exclusions, the sizing lanes, the operator's runs, audit log and inbox) it uses the
//! `vkae_domain` type itself. Islands receive these types serialized. Every number a page prints comes from one
//! of these fields; no page holds a number of its own.

use serde::{Deserialize, Serialize};

pub use vkae_domain::{
    Adjacent, AuditEntry, BaselineContext, ClaimLevel, ClaimState, ContentRefusal, Excluded, Gpu,
    InternalData, LaneFit, LaneVerdict, MemoryLane, PreviewRequest, RunSummary, ServicePathInfo,
};

/// A promoted claim: one run an operator promoted, with the figures derived from it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Claim {
    pub run_id: String,
    pub family: String,
    pub repo: String,
    /// What weights the run loaded, as its record names them: `synthetic:seed=N` (random weights of the
    /// family's shape, written as a checkpoint both sides load) or `sha256:…` over the checkpoint files.
    pub weights: String,
    pub level: ClaimLevel,
    pub gpu: String,
    pub gpu_count: u32,
    pub precision: String,
    pub batch: u32,
    pub prompt_tokens: u32,
    pub output_tokens: u32,
    /// The baseline path's name in the record (e.g. `hf-transformers-eager`), when the run had one.
    pub baseline_name: Option<String>,
    /// Median of the baseline path's repetitions, when the run had a baseline path.
    pub baseline_tokens_per_s: Option<f64>,
    /// Median of VKAE's path.
    pub vkae_tokens_per_s: f64,
    /// Present when the run had both a baseline and a VKAE path.
    pub derived: Option<Derived>,
    pub quality: Quality,
    pub engine_commit: String,
    /// Where the signed run record behind the claim is served (`/api/v1/claims/{run_id}/record`).
    pub record_url: String,
    /// The lane key that signed the record, and its Ed25519 public key (base64): with the record, all a reader
    /// needs to check the claim offline (`vkae verify`).
    pub lane_key: String,
    pub lane_public_key: String,
    /// RFC 3339 date of the run.
    pub measured_at: String,
    pub promoted_at: String,
    /// Whether the claim still stands (current, stale past its date, disputed by a newer slower run).
    pub standing: Standing,
}

/// A claim's standing as the evidence store judged it when the page was read.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Standing {
    pub state: ClaimState,
    /// RFC 3339 time past which the claim is stale.
    pub current_until: String,
    /// The run ids of newer comparable records more than 2% slower.
    pub disputed_by: Vec<String>,
}

impl Claim {
    /// The weights in words, for every place a figure of this claim is shown: a speed measured on synthetic
    /// weights streams the same bytes as the released checkpoint, but the page must not let it pass for a run
    /// of the released model.
    pub fn weights_label(&self) -> String {
        if let Some(seed) = self.weights.strip_prefix("synthetic:seed=") {
            format!(
                "synthetic BF16 weights of the {} shape (seed {seed}), not the released checkpoint",
                self.family
            )
        } else if let Some(digest) = self.weights.strip_prefix("sha256:") {
            format!(
                "checkpoint sha256:{}…",
                digest.chars().take(12).collect::<String>()
            )
        } else {
            format!("weights {}", self.weights)
        }
    }
}

/// Figures derived from a claim's medians (the evidence store computes them at promotion), against the
/// family's declared baseline.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Derived {
    /// VKAE / baseline.
    pub lift: f64,
    /// VKAE - baseline.
    pub additional_tokens_per_s: f64,
    /// 1 - baseline / VKAE, at the same GPU rate.
    pub cost_reduction: f64,
    /// VKAE's lift over the eager reference path, when the run carries it beside the declared baseline.
    pub eager: Option<EagerLift>,
}

/// VKAE's lift over the eager reference (context, not the declared baseline).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EagerLift {
    pub path: String,
    pub tokens_per_s: f64,
    pub lift: f64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Quality {
    pub reference_ppl: f64,
    pub vkae_ppl: f64,
    pub top1_agreement: f64,
    pub mean_kl: f64,
}

impl Quality {
    /// (VKAE - reference) / reference perplexity: what pages show, since the raw perplexities of a
    /// random-weight model mean nothing to a reader.
    pub fn relative_ppl_difference(&self) -> f64 {
        (self.vkae_ppl - self.reference_ppl) / self.reference_ppl
    }
}

/// One of the five serving families, with its repos and what the product may say about it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Family {
    pub name: String,
    pub description: String,
    pub repos: Vec<String>,
    /// True when the family's profile is claim-ready (E4B at launch); otherwise it is a porting track and its
    /// numbers stay blocked.
    pub claim_ready: bool,
    pub params: String,
    pub layers: u32,
    pub context_tokens: u64,
    pub weights_gb: f64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Catalog {
    pub families: Vec<Family>,
    /// The adjacent lane (DiffusionGemma), named with its repos.
    pub adjacent: Vec<Adjacent>,
    /// Packagings out of the benchmark scope, each with the reason.
    pub excluded: Vec<Excluded>,
}

/// One family's minimum and recommended BF16 lanes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SizingRow {
    pub family: String,
    pub minimum: MemoryLane,
    pub recommended: MemoryLane,
}

/// Whether a speed point was measured (a promoted claim) or is the planning index from the roofline.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum SpeedKind {
    Measured,
    Planning,
}

/// One bar of the full-family speed view.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SpeedPoint {
    pub family: String,
    pub gpu: String,
    pub batch: u32,
    pub kind: SpeedKind,
    /// Tokens/s for a measured point; the planning index (roofline tokens/s) otherwise.
    pub value: f64,
    /// The run behind a measured point.
    pub run_id: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Sizing {
    pub rows: Vec<SizingRow>,
    pub speed: Vec<SpeedPoint>,
    /// How the numbers were computed, as the evidence API states it.
    pub method: String,
}

/// Everything the public pages read, loaded in one go.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PublicData {
    pub claims: Vec<Claim>,
    pub catalog: Catalog,
    pub gpus: Vec<Gpu>,
    pub sizing: Sizing,
    pub service_paths: Vec<ServicePathInfo>,
}

impl PublicData {
    /// The claim the home page's card shows for a family: the best showcase-level claim, else the most recent
    /// VKAE-path claim. Declared baselines and smoke runs do not make a performance card.
    pub fn headline_claim(&self, family: &str) -> Option<&Claim> {
        if !self.family_is_claim_ready(family) {
            return None;
        }
        let with_figures: Vec<&Claim> = self
            .claims
            .iter()
            .filter(|c| c.family == family && c.derived.is_some())
            .collect();
        let best_showcase = with_figures
            .iter()
            .filter(|c| c.level == ClaimLevel::OptimizedShowcase)
            .max_by(|a, b| lift(a).total_cmp(&lift(b)));
        let newest_path = with_figures
            .iter()
            .filter(|c| c.level == ClaimLevel::VkaePath)
            .max_by(|a, b| a.measured_at.cmp(&b.measured_at));
        best_showcase.or(newest_path).copied()
    }

    pub fn family_is_claim_ready(&self, name: &str) -> bool {
        self.family(name).is_some_and(|f| f.claim_ready)
    }

    pub fn family(&self, name: &str) -> Option<&Family> {
        self.catalog.families.iter().find(|f| f.name == name)
    }

    /// What the preview form may offer: the service paths, families and GPUs of the catalog.
    pub fn preview_choices(&self) -> vkae_domain::PreviewChoices {
        vkae_domain::PreviewChoices {
            service_paths: self
                .service_paths
                .iter()
                .map(|p| p.slug.to_string())
                .collect(),
            families: self
                .catalog
                .families
                .iter()
                .map(|f| f.name.clone())
                .collect(),
            gpus: self.gpus.iter().map(|g| g.id.to_string()).collect(),
        }
    }
}

fn lift(claim: &Claim) -> f64 {
    claim.derived.as_ref().map_or(0.0, |d| d.lift)
}

/// Formats a count with thousands separators: 131072 -> "131,072".
pub fn fmt_int(value: u64) -> String {
    let digits = value.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Formats a tokens/s figure for display.
pub fn fmt_tps(value: f64) -> String {
    if value >= 1000.0 {
        format!("{value:.0}")
    } else {
        format!("{value:.1}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_counts_and_rates() {
        assert_eq!(fmt_int(131072), "131,072");
        assert_eq!(fmt_int(512), "512");
        assert_eq!(fmt_int(1000), "1,000");
        assert_eq!(fmt_tps(9.76), "9.8");
        assert_eq!(fmt_tps(1043.4), "1043");
    }
}
