//! The verification lanes, judged once at ingest and stored with their reasons, and the public claim a promoted
//! run becomes. Lanes: artifact, private benchmark, quality. The fourth, dashboard-valid, is set only by promotion.

use crate::content::{Content, ProfileStatus};
use serde::Serialize;
use vkae_domain::{
    Blocker, ClaimEngine, ClaimFigures, ClaimHardware, ClaimLanes, ClaimModel, ClaimPath,
    ClaimQuality, ClaimRecipe, Derived, FamilyId, GpuSlug, ParseError, PathRole, RateSummary,
    ReferenceLift, RunId, UnavailableClaimPath,
};
use vkae_record::{stats, Role, RunRecord};

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
    match (
        content.profile(&record.model.family),
        record.paths.iter().find(|p| p.role == Role::Baseline),
    ) {
        (Some(profile), Some(b)) if b.name != profile.declared_baseline => failures.push(format!(
            "baseline path {} is not the {} profile's declared baseline {}",
            b.name, profile.family, profile.declared_baseline
        )),
        (Some(profile), Some(_)) => checked.push(format!(
            "baseline is the {} profile's declared baseline {}",
            profile.family, profile.declared_baseline
        )),
        _ => {}
    }
    let per_rep = u64::from(record.recipe.batch) * u64::from(record.recipe.output_tokens);
    for path in &record.paths {
        let reps = path.tokens_per_s.len();
        let spread = stats::spread(&path.tokens_per_s);
        let expected = per_rep * reps as u64;
        if path.tokens_generated != expected {
            failures.push(format!(
                "path {}: tokens_generated {} != batch {} x output_tokens {} x repetitions {reps} = {expected}",
                path.name, path.tokens_generated, record.recipe.batch, record.recipe.output_tokens
            ));
        }
        // A context path is reported with its spread; only gating paths are held to the rules.
        if !path.gates() && path.role != Role::Peer {
            failures.push(format!(
                "path {}: a {} path always gates a claim; only a peer may be context (gating: false)",
                path.name,
                path.role.as_str()
            ));
        } else if !path.gates() {
            checked.push(match spread {
                Some(spread) => format!(
                    "path {} (context, does not gate): {reps} repetitions, spread {:.1}%",
                    path.name,
                    spread * 100.0
                ),
                None => format!("path {} (context, does not gate): no spread", path.name),
            });
            continue;
        }
        if reps < rules.min_repetitions as usize {
            failures.push(format!(
                "path {}: {reps} timed repetitions, at least {} required",
                path.name, rules.min_repetitions
            ));
        }
        match spread {
            None => failures.push(format!(
                "path {}: no spread: it has no timed repetitions or its median is not positive",
                path.name
            )),
            Some(spread) if spread > rules.max_spread => failures.push(format!(
                "path {}: spread (max - min) / median = {:.1}% exceeds {:.1}%",
                path.name,
                spread * 100.0,
                rules.max_spread * 100.0
            )),
            Some(spread) => checked.push(format!(
                "path {}: {reps} repetitions, spread {:.1}% within {:.1}%",
                path.name,
                spread * 100.0,
                rules.max_spread * 100.0
            )),
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
) -> Vec<Blocker> {
    let mut blockers: Vec<Blocker> = verdicts
        .iter()
        .filter(|v| !v.passed)
        .map(|v| Blocker {
            lane: v.lane.as_str().to_string(),
            reasons: v.reasons.clone(),
        })
        .collect();
    let profile_reason = match content.profile(&record.model.family) {
        Some(p) if p.status == ProfileStatus::ClaimReady => None,
        Some(p) => Some(format!(
            "family {} is a {} profile: its runs are kept but their numbers stay blocked",
            p.family,
            p.status.as_str()
        )),
        None => Some(format!("no profile for family {}", record.model.family)),
    };
    if let Some(reason) = profile_reason {
        blockers.push(Blocker {
            lane: "profile".to_string(),
            reasons: vec![reason],
        });
    }
    blockers
}

fn rate_summary(rates: &[f64]) -> RateSummary {
    let (lo, hi) = rates
        .iter()
        .fold((f64::MAX, f64::MIN), |(lo, hi), &v| (lo.min(v), hi.max(v)));
    RateSummary {
        median: stats::median(rates),
        min: lo,
        max: hi,
        repetitions: rates.len(),
    }
}

fn round(v: f64, digits: i32) -> f64 {
    let scale = 10f64.powi(digits);
    (v * scale).round() / scale
}

fn role(role: Role) -> PathRole {
    match role {
        Role::Baseline => PathRole::Baseline,
        Role::Vkae => PathRole::Vkae,
        Role::Peer => PathRole::Peer,
    }
}

/// Figures derived from the medians of the baseline (the profile's declared baseline, which the benchmark lane
/// requires) and VKAE paths, and the lift over the profile's eager reference when the run carries it; None without
/// both medians.
fn derived(record: &RunRecord, content: &Content) -> Option<Derived> {
    let b = record.paths.iter().find(|p| p.role == Role::Baseline)?;
    let v = record.paths.iter().find(|p| p.role == Role::Vkae)?;
    let (b_med, v_med) = (
        stats::median(&b.tokens_per_s)?,
        stats::median(&v.tokens_per_s)?,
    );
    let eager_reference = content
        .profile(&record.model.family)
        .and_then(|p| p.eager_reference.as_deref())
        .filter(|name| *name != b.name)
        .and_then(|name| record.paths.iter().find(|p| p.name == name))
        .and_then(|p| Some((p, stats::median(&p.tokens_per_s)?)))
        .map(|(p, med)| ReferenceLift {
            label: "derived".into(),
            path: p.name.clone(),
            tokens_per_s: round(med, 2),
            lift: round(v_med / med, 3),
        });
    Some(Derived {
        label: "derived".into(),
        note: "Derived from the medians of this run's declared baseline and VKAE paths (same machine, weights and tokens); the eager reference's lift, where present, is context. Token-cost reduction assumes the same GPU rate per hour and uses the declared baseline.".into(),
        baseline_path: b.name.clone(),
        vkae_path: v.name.clone(),
        baseline_tokens_per_s: round(b_med, 2),
        vkae_tokens_per_s: round(v_med, 2),
        lift: round(v_med / b_med, 3),
        additional_tokens_per_s: round(v_med - b_med, 2),
        token_cost_reduction: round(1.0 - b_med / v_med, 4),
        eager_reference,
    })
}

/// The claim as the public API shows it, computed from a stored record at promotion. Level, promotion time and
/// provenance are added from the claim row when read.
pub fn public_claim(
    record: &RunRecord,
    gpu_id: Option<GpuSlug>,
    content: &Content,
) -> Result<ClaimFigures, ParseError> {
    let pass = || "pass".to_string();
    Ok(ClaimFigures {
        run_id: RunId::parse(&record.run_id)?,
        model: ClaimModel {
            repo: record.model.repo.clone(),
            family: FamilyId::parse(&record.model.family)?,
            weights: record.model.weights.clone(),
        },
        hardware: ClaimHardware {
            gpu: record.hardware.gpu.clone(),
            gpu_id,
            gpu_count: record.hardware.gpu_count,
            driver: record.hardware.driver.clone(),
            cuda: record.hardware.cuda.clone(),
        },
        engine: ClaimEngine {
            version: record.engine.version.clone(),
            commit: record.engine.commit.clone(),
            kernels: record.engine.kernels.clone(),
        },
        recipe: ClaimRecipe {
            precision: record.recipe.precision.clone(),
            batch: record.recipe.batch,
            prompt_tokens: record.recipe.prompt_tokens,
            output_tokens: record.recipe.output_tokens,
        },
        paths: record
            .paths
            .iter()
            .map(|p| ClaimPath {
                name: p.name.clone(),
                role: role(p.role),
                tokens_per_s: rate_summary(&p.tokens_per_s),
                detail: p.detail.clone(),
            })
            .collect(),
        unavailable_paths: record
            .unavailable_paths
            .iter()
            .map(|u| UnavailableClaimPath {
                name: u.name.clone(),
                role: role(u.role),
                reason: u.reason.clone(),
            })
            .collect(),
        quality: ClaimQuality {
            tokens: record.quality.tokens,
            reference_ppl: record.quality.reference_ppl,
            vkae_ppl: record.quality.vkae_ppl,
            top1_agreement: record.quality.top1_agreement,
            mean_kl: record.quality.mean_kl,
        },
        measured_at: record.finished_at.clone(),
        lanes: ClaimLanes {
            artifact: pass(),
            benchmark: pass(),
            quality: pass(),
            dashboard_valid: pass(),
        },
        derived: derived(record, content),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> RunRecord {
        RunRecord::parse(vkae_record::SAMPLE_RECORD.as_bytes()).unwrap()
    }

    /// The sample with the E4B profile's declared baseline and an eager context peer.
    fn declared() -> RunRecord {
        let mut record = sample();
        let mut eager = record.paths[0].clone();
        record.paths[0].name = "hf-transformers-static-cudagraph".into();
        eager.role = Role::Peer;
        eager.gating = Some(false);
        record.paths.push(eager);
        record
    }

    #[test]
    fn derived_figures_name_the_declared_baseline_and_the_eager_lift_beside_it() {
        let content = Content::embedded().unwrap();
        let mut record = declared();
        record.paths[2].tokens_per_s = vec![3.0, 4.0, 5.0];
        let d = public_claim(&record, None, &content)
            .unwrap()
            .derived
            .unwrap();
        assert_eq!(d.baseline_path, "hf-transformers-static-cudagraph");
        assert_eq!(
            (d.baseline_tokens_per_s, d.vkae_tokens_per_s),
            (9.76, 301.2)
        );
        assert_eq!(d.lift, 30.861);
        assert_eq!(d.token_cost_reduction, 0.9676, "from the declared baseline");
        let eager = d.eager_reference.unwrap();
        assert_eq!(
            (eager.path.as_str(), eager.tokens_per_s, eager.lift),
            ("hf-transformers-eager", 4.0, 75.3)
        );
        assert_eq!(eager.label, "derived");
        // Where the eager path is the baseline (an old record), it is not shown twice.
        let old = public_claim(&sample(), None, &content)
            .unwrap()
            .derived
            .unwrap();
        assert!(old.eager_reference.is_none());
    }

    #[test]
    fn a_baseline_other_than_the_profiles_declared_one_fails_the_benchmark_lane() {
        let content = Content::embedded().unwrap();
        assert!(benchmark(&declared(), &content).passed);
        let verdict = benchmark(&sample(), &content);
        assert!(!verdict.passed);
        assert_eq!(
            verdict.reasons,
            ["baseline path hf-transformers-eager is not the E4B profile's declared baseline hf-transformers-static-cudagraph"]
        );
    }

    #[test]
    fn a_context_path_is_reported_with_its_spread_but_never_fails_the_lane() {
        let content = Content::embedded().unwrap();
        let mut record = declared();
        // 40% spread and a single repetition: both would fail a gating path.
        record.paths[2].tokens_per_s = vec![10.0];
        record.paths[2].tokens_generated = 128;
        assert!(benchmark(&record, &content).passed);
        record.paths[2].tokens_per_s = vec![10.0, 12.0, 14.0];
        record.paths[2].tokens_generated = 384;
        let verdict = benchmark(&record, &content);
        assert!(verdict.passed, "{:?}", verdict.reasons);
        assert!(verdict.reasons.contains(
            &"path hf-transformers-eager (context, does not gate): 3 repetitions, spread 33.3%"
                .to_string()
        ));
        record.paths[2].gating = None;
        let verdict = benchmark(&record, &content);
        assert!(!verdict.passed);
        assert_eq!(
            verdict.reasons,
            ["path hf-transformers-eager: spread (max - min) / median = 33.3% exceeds 10.0%"]
        );
        // Token accounting still holds for a context path.
        record.paths[2].gating = Some(false);
        record.paths[2].tokens_generated += 1;
        assert!(!benchmark(&record, &content).passed);
    }

    #[test]
    fn the_baseline_and_vkae_paths_cannot_be_marked_context() {
        let content = Content::embedded().unwrap();
        for i in [0, 1] {
            let mut record = declared();
            record.paths[i].gating = Some(false);
            let verdict = benchmark(&record, &content);
            assert!(!verdict.passed);
            assert!(
                verdict.reasons[0].contains("always gates a claim"),
                "{:?}",
                verdict.reasons
            );
        }
    }

    #[test]
    fn a_path_without_repetitions_fails_the_benchmark_lane_with_a_reason() {
        let content = Content::embedded().unwrap();
        let mut record = declared();
        record.paths[0].tokens_per_s.clear();
        let verdict = benchmark(&record, &content);
        assert!(!verdict.passed);
        let name = &record.paths[0].name;
        assert!(
            verdict
                .reasons
                .iter()
                .any(|r| r.starts_with(&format!("path {name}: no spread"))),
            "{:?}",
            verdict.reasons
        );
        assert!(
            verdict.reasons.iter().all(|r| !r.contains("NaN")),
            "{:?}",
            verdict.reasons
        );
    }

    #[test]
    fn a_claim_without_a_median_has_no_derived_figures() {
        let content = Content::embedded().unwrap();
        let mut record = sample();
        assert!(public_claim(&record, None, &content)
            .unwrap()
            .derived
            .is_some());
        record.paths[0].tokens_per_s.clear();
        let figures = public_claim(&record, None, &content).unwrap();
        assert_eq!(figures.paths[0].tokens_per_s.median, None);
        assert!(figures.derived.is_none());
    }
}
