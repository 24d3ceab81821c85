//! The verification lanes, judged once at ingest and stored with their reasons, and the public claim a promoted
//! run becomes. Lanes: artifact, private benchmark, quality. The fourth, dashboard-valid, is set only by promotion.

use crate::content::{Content, ProfileStatus};
use serde::Serialize;
use serde_json::{json, Value};
use vkae_record::{Role, RunRecord};

/// A lane of the verification board.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Lane {
    Artifact,
    Benchmark,
    Quality,
}

impl Lane {
    pub const ALL: [Lane; 3] = [Lane::Artifact, Lane::Benchmark, Lane::Quality];
    pub fn as_str(self) -> &'static str {
        match self {
            Lane::Artifact => "artifact",
            Lane::Benchmark => "benchmark",
            Lane::Quality => "quality",
        }
    }
    pub fn parse(s: &str) -> Option<Lane> {
        Lane::ALL.into_iter().find(|l| l.as_str() == s)
    }
}

/// One lane's verdict: passed, and why (the failures when failed, what was checked when passed).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Verdict {
    pub lane: Lane,
    pub passed: bool,
    pub reasons: Vec<String>,
}

fn verdict(lane: Lane, failures: Vec<String>, checked: Vec<String>) -> Verdict {
    if failures.is_empty() {
        Verdict {
            lane,
            passed: true,
            reasons: checked,
        }
    } else {
        Verdict {
            lane,
            passed: false,
            reasons: failures,
        }
    }
}

fn is_hex(s: &str) -> bool {
    s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Median of a non-empty slice.
pub fn median(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// Judges the three ingest-time lanes. `lane_key` is the registered key the signature verified under.
pub fn judge(record: &RunRecord, content: &Content, lane_key: &str) -> Vec<Verdict> {
    vec![
        artifact(record, content, lane_key),
        benchmark(record, content),
        quality(record, content),
    ]
}

fn artifact(record: &RunRecord, content: &Content, lane_key: &str) -> Verdict {
    let mut failures = Vec::new();
    let mut checked = vec![format!(
        "signature verifies under registered lane key {lane_key:?}"
    )];
    match record.engine.commit.as_deref() {
        Some(c) if (7..=64).contains(&c.len()) && is_hex(c) => {
            checked.push(format!("engine commit {c}"))
        }
        Some(c) => failures.push(format!("engine.commit {c:?} is not a hex git commit")),
        None => failures.push("engine.commit is missing".to_string()),
    }
    match record.engine.kernels_sha256.as_deref() {
        Some(d) if d.len() == 64 && is_hex(d) => checked.push(format!("kernel digest sha256:{d}")),
        Some(d) => failures.push(format!(
            "engine.kernels_sha256 {d:?} is not a SHA-256 hex digest"
        )),
        None => failures.push("engine.kernels_sha256 is missing".to_string()),
    }
    if let Some(family) = content.family(&record.model.family) {
        if family.repos.iter().any(|r| r == &record.model.repo) {
            checked.push(format!(
                "{} is an official {} repo",
                record.model.repo, family.slug
            ));
        } else {
            failures.push(format!(
                "model.repo {} is not one of the {} family's official repos",
                record.model.repo, family.slug
            ));
        }
    }
    verdict(Lane::Artifact, failures, checked)
}

fn benchmark(record: &RunRecord, content: &Content) -> Verdict {
    let rules = &content.benchmark;
    let mut failures = Vec::new();
    let mut checked = Vec::new();
    let baselines = record
        .paths
        .iter()
        .filter(|p| p.role == Role::Baseline)
        .count();
    let vkae = record.paths.iter().filter(|p| p.role == Role::Vkae).count();
    if baselines != 1 {
        failures.push(format!(
            "exactly one baseline path is required, found {baselines}"
        ));
    }
    if vkae != 1 {
        failures.push(format!("exactly one vkae path is required, found {vkae}"));
    }
    let per_rep = u64::from(record.recipe.batch) * u64::from(record.recipe.output_tokens);
    for path in &record.paths {
        let reps = path.tokens_per_s.len();
        if reps < rules.min_repetitions as usize {
            failures.push(format!(
                "path {}: {reps} timed repetitions, at least {} required",
                path.name, rules.min_repetitions
            ));
        }
        let med = median(&path.tokens_per_s);
        let (lo, hi) = path
            .tokens_per_s
            .iter()
            .fold((f64::MAX, f64::MIN), |(lo, hi), &v| (lo.min(v), hi.max(v)));
        let spread = (hi - lo) / med;
        if spread > rules.max_spread {
            failures.push(format!(
                "path {}: spread (max - min) / median = {:.1}% exceeds {:.1}%",
                path.name,
                spread * 100.0,
                rules.max_spread * 100.0
            ));
        } else {
            checked.push(format!(
                "path {}: {reps} repetitions, spread {:.1}% within {:.1}%",
                path.name,
                spread * 100.0,
                rules.max_spread * 100.0
            ));
        }
        let expected = per_rep * reps as u64;
        if path.tokens_generated != expected {
            failures.push(format!(
                "path {}: tokens_generated {} != batch {} x output_tokens {} x repetitions {reps} = {expected}",
                path.name, path.tokens_generated, record.recipe.batch, record.recipe.output_tokens
            ));
        }
    }
    verdict(Lane::Benchmark, failures, checked)
}

fn quality(record: &RunRecord, content: &Content) -> Verdict {
    let Some(profile) = content.profile(&record.model.family) else {
        return verdict(
            Lane::Quality,
            vec![format!(
                "no model profile for family {}",
                record.model.family
            )],
            vec![],
        );
    };
    let q = &record.quality;
    let mut failures = Vec::new();
    let mut checked = Vec::new();
    let rel = (q.vkae_ppl - q.reference_ppl).abs() / q.reference_ppl;
    let line = format!(
        "perplexity {} vs reference {}: relative difference {:.3}% (bound {:.3}%)",
        q.vkae_ppl,
        q.reference_ppl,
        rel * 100.0,
        profile.max_ppl_relative * 100.0
    );
    if rel > profile.max_ppl_relative {
        failures.push(line)
    } else {
        checked.push(line)
    }
    let line = format!(
        "top-1 agreement {} (bound >= {})",
        q.top1_agreement, profile.min_top1_agreement
    );
    if q.top1_agreement < profile.min_top1_agreement {
        failures.push(line)
    } else {
        checked.push(line)
    }
    let line = format!("mean KL {} (bound <= {})", q.mean_kl, profile.max_mean_kl);
    if q.mean_kl > profile.max_mean_kl {
        failures.push(line)
    } else {
        checked.push(line)
    }
    checked.push(format!(
        "{} tokens scored against the reference on the same weights ({})",
        q.tokens, record.model.weights
    ));
    verdict(Lane::Quality, failures, checked)
}

/// Why a run may not be promoted (empty when it may): failing lanes and a profile that is not claim-ready.
pub fn promotion_blockers(
    record: &RunRecord,
    verdicts: &[Verdict],
    content: &Content,
) -> Vec<Value> {
    let mut blockers: Vec<Value> = verdicts
        .iter()
        .filter(|v| !v.passed)
        .map(|v| json!({ "lane": v.lane.as_str(), "reasons": v.reasons }))
        .collect();
    match content.profile(&record.model.family) {
        Some(p) if p.status == ProfileStatus::ClaimReady => {}
        Some(p) => blockers.push(json!({
            "lane": "profile",
            "reasons": [format!("family {} is a {} profile: its runs are kept but their numbers stay blocked", p.family, p.status.as_str())]
        })),
        None => blockers.push(json!({ "lane": "profile", "reasons": [format!("no profile for family {}", record.model.family)] })),
    }
    blockers
}

/// A public claim level.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClaimLevel {
    DeclaredBaseline,
    VkaePath,
    OptimizedShowcase,
    PreviewSmoke,
}

impl ClaimLevel {
    pub const ALL: [ClaimLevel; 4] = [
        ClaimLevel::DeclaredBaseline,
        ClaimLevel::VkaePath,
        ClaimLevel::OptimizedShowcase,
        ClaimLevel::PreviewSmoke,
    ];
    pub fn slug(self) -> &'static str {
        match self {
            ClaimLevel::DeclaredBaseline => "declared-baseline",
            ClaimLevel::VkaePath => "vkae-path",
            ClaimLevel::OptimizedShowcase => "optimized-showcase",
            ClaimLevel::PreviewSmoke => "preview-smoke",
        }
    }
    pub fn label(self) -> &'static str {
        match self {
            ClaimLevel::DeclaredBaseline => "Declared baseline",
            ClaimLevel::VkaePath => "VKAE path",
            ClaimLevel::OptimizedShowcase => "Optimized showcase",
            ClaimLevel::PreviewSmoke => "Preview / smoke",
        }
    }
    pub fn parse(s: &str) -> Option<ClaimLevel> {
        ClaimLevel::ALL.into_iter().find(|l| l.slug() == s)
    }
}

fn rate_summary(rates: &[f64]) -> Value {
    let (lo, hi) = rates
        .iter()
        .fold((f64::MAX, f64::MIN), |(lo, hi), &v| (lo.min(v), hi.max(v)));
    json!({ "median": median(rates), "min": lo, "max": hi, "repetitions": rates.len() })
}

fn round(v: f64, digits: i32) -> f64 {
    let scale = 10f64.powi(digits);
    (v * scale).round() / scale
}

/// The claim as the public API shows it, computed from a stored record at promotion. Level and promotion time
/// are added from the claim row when read.
pub fn public_claim(record: &RunRecord, gpu_id: Option<&str>) -> Value {
    let paths: Vec<Value> = record
        .paths
        .iter()
        .map(|p| json!({ "name": p.name, "role": p.role.as_str(), "tokens_per_s": rate_summary(&p.tokens_per_s), "detail": p.detail }))
        .collect();
    let base = record.paths.iter().find(|p| p.role == Role::Baseline);
    let ours = record.paths.iter().find(|p| p.role == Role::Vkae);
    let derived = match (base, ours) {
        (Some(b), Some(v)) => {
            let (b_med, v_med) = (median(&b.tokens_per_s), median(&v.tokens_per_s));
            json!({
                "label": "derived",
                "note": "Derived from the medians of this run's baseline and VKAE paths (same machine, weights and tokens). Token-cost reduction assumes the same GPU rate per hour.",
                "baseline_path": b.name,
                "vkae_path": v.name,
                "lift": round(v_med / b_med, 3),
                "additional_tokens_per_s": round(v_med - b_med, 2),
                "token_cost_reduction": round(1.0 - b_med / v_med, 4),
            })
        }
        _ => Value::Null,
    };
    json!({
        "run_id": record.run_id,
        "model": { "repo": record.model.repo, "family": record.model.family, "weights": record.model.weights },
        "hardware": {
            "gpu": record.hardware.gpu, "gpu_id": gpu_id, "gpu_count": record.hardware.gpu_count,
            "driver": record.hardware.driver, "cuda": record.hardware.cuda,
        },
        "engine": { "version": record.engine.version, "commit": record.engine.commit, "kernels": record.engine.kernels },
        "recipe": {
            "precision": record.recipe.precision, "batch": record.recipe.batch,
            "prompt_tokens": record.recipe.prompt_tokens, "output_tokens": record.recipe.output_tokens,
        },
        "paths": paths,
        "unavailable_paths": record.unavailable_paths.iter().map(|u| json!({ "name": u.name, "role": u.role.as_str(), "reason": u.reason })).collect::<Vec<_>>(),
        "quality": {
            "tokens": record.quality.tokens, "reference_ppl": record.quality.reference_ppl, "vkae_ppl": record.quality.vkae_ppl,
            "top1_agreement": record.quality.top1_agreement, "mean_kl": record.quality.mean_kl,
        },
        "measured_at": record.finished_at,
        "lanes": { "artifact": "pass", "benchmark": "pass", "quality": "pass", "dashboard_valid": "pass" },
        "derived": derived,
    })
}
