//! Server-side rendering of each page's view from given data: the right figures appear, derived ones are
//! labelled, and the blocked-number rule holds (a porting-track family's numbers never reach the HTML).

use leptos::prelude::*;
use std::sync::Arc;
use vkae_evidence::store::baseline_contexts;
use vkae_site::model::*;
use vkae_site::pages::*;

fn family(name: &str, claim_ready: bool, weights_gb: f64) -> Family {
    Family {
        name: name.into(),
        description: format!("Gemma 4 {name}"),
        repos: ["", "-it", "-it-assistant"]
            .iter()
            .map(|s| format!("google/gemma-4-{name}{s}"))
            .collect(),
        claim_ready,
        params: "n/a".into(),
        layers: 42,
        context_tokens: 131072,
        weights_gb,
    }
}

fn claim(family: &str, level: ClaimLevel, baseline: f64, vkae: f64) -> Claim {
    Claim {
        run_id: format!("run-{family}-{}", level.slug()),
        family: family.into(),
        repo: format!("google/gemma-4-{family}-it"),
        weights: "synthetic:seed=0".into(),
        level,
        gpu: "L40S".into(),
        gpu_count: 1,
        precision: "bf16".into(),
        batch: 8,
        prompt_tokens: 512,
        output_tokens: 128,
        baseline_name: Some("hf-transformers-static-cudagraph".into()),
        baseline_tokens_per_s: Some(baseline),
        vkae_tokens_per_s: vkae,
        derived: Some(Derived {
            lift: vkae / baseline,
            additional_tokens_per_s: vkae - baseline,
            cost_reduction: 1.0 - baseline / vkae,
            eager: None,
        }),
        quality: Quality {
            reference_ppl: 7.123,
            vkae_ppl: 7.131,
            top1_agreement: 0.987,
            mean_kl: 0.0012,
        },
        engine_commit: "0123456789abcdef0123".into(),
        record_url: format!("/api/v1/claims/run-{family}-{}/record", level.slug()),
        lane_key: "lab-h200".into(),
        lane_public_key: "ghdCWdiCDnKsXmWe1zqo5dYYidWieCws+VDYCCyJwSg=".into(),
        measured_at: "2026-11-20T10:00:00Z".into(),
        promoted_at: "2026-11-21T10:00:00Z".into(),
        standing: Standing {
            state: ClaimState::Current,
            current_until: "2027-02-18T10:00:00Z".into(),
            disputed_by: vec![],
        },
    }
}

fn data(claims: Vec<Claim>) -> PublicData {
    let families = vec![
        family("E2B", false, 11.4),
        family("E4B", true, 17.9),
        family("12B", false, 26.7),
        family("26B-A4B", false, 57.7),
        family("31B", false, 69.9),
    ];
    let mut speed: Vec<SpeedPoint> = families
        .iter()
        .map(|f| SpeedPoint {
            family: f.name.clone(),
            gpu: "H100 SXM".into(),
            batch: 1,
            kind: SpeedKind::Planning,
            value: 3350.0 / f.weights_gb,
            run_id: None,
        })
        .collect();
    for c in &claims {
        speed.push(SpeedPoint {
            family: c.family.clone(),
            gpu: c.gpu.clone(),
            batch: c.batch,
            kind: SpeedKind::Measured,
            value: c.vkae_tokens_per_s,
            run_id: Some(c.run_id.clone()),
        });
    }
    PublicData {
        claims,
        catalog: Catalog {
            families: families.clone(),
            adjacent: vec![Adjacent {
                slug: "diffusiongemma".into(),
                name: "DiffusionGemma".into(),
                repos: vec!["google/diffusiongemma-26B-A4B-it".into()],
                note: "block diffusion".into(),
            }],
            excluded: vec![Excluded {
                name: "GGUF".into(),
                reason: "not BF16 serving".into(),
            }],
        },
        gpus: vec![Gpu {
            id: vkae_domain::GpuSlug::parse("h100-sxm").unwrap(),
            name: "H100 SXM".into(),
            memory_gb: 80.0,
            memory_type: "HBM3".into(),
            bandwidth_gb_s: 3350.0,
            bf16_dense_tflops: 989.0,
            source: "datasheet".into(),
            match_names: vec!["NVIDIA H100 80GB HBM3".into()],
        }],
        sizing: Sizing {
            rows: families
                .iter()
                .map(|f| {
                    let lane = |batch: u32, fits: bool| MemoryLane {
                        context_tokens: 8192,
                        batch,
                        weights_gb: f.weights_gb,
                        kv_cache_gb: 1.25,
                        needed_gb: f.weights_gb + 1.25,
                        headroom_fraction: 0.1,
                        rule: "weights + KV cache within the GPUs' memory less headroom".into(),
                        lane: fits.then(|| LaneFit {
                            gpu_id: vkae_domain::GpuSlug::parse("l40s").unwrap(),
                            gpu: "NVIDIA L40S".into(),
                            gpu_count: 1,
                            usable_gb: 43.2,
                        }),
                    };
                    SizingRow {
                        family: f.name.clone(),
                        minimum: lane(1, true),
                        recommended: lane(8, f.weights_gb < 60.0),
                    }
                })
                .collect(),
            speed,
            method: "weights + KV + headroom".into(),
        },
        service_paths: vec![ServicePathInfo {
            slug: vkae_domain::ServicePath::parse("report").unwrap(),
            name: "Acceleration report".into(),
            summary: "A report.".into(),
        }],
    }
}

/// Renders a view as the server would, with the contexts the page components expect.
fn render<V: IntoView + 'static>(view: impl FnOnce() -> V) -> String {
    let owner = Owner::new_root(Some(Arc::new(
        hydration_context::SsrSharedContext::new_islands(),
    )));
    owner.with(|| {
        let (meta, _output) = leptos_meta::ServerMetaContext::new();
        provide_context(meta);
        leptos_meta::provide_meta_context();
        view().to_html()
    })
}

#[test]
fn home_without_a_claim_says_so_and_shows_no_zeros() {
    let html = render(|| view! { <HomeView data=data(vec![]) /> });
    assert!(html.contains("id=\"no-claim\""), "{html}");
    assert!(html.contains("No claim has been promoted"));
    assert!(
        !html.contains("tok/s"),
        "a figure appeared without a claim: {html}"
    );
    assert!(
        !html.contains("0.00×") && !html.contains(">0<"),
        "zeros shown as results: {html}"
    );
    // catalog counts come from the data: 15 repos, 5 families
    assert!(
        html.contains("<strong>15</strong>") && html.contains("<strong>5</strong>"),
        "{html}"
    );
}

#[test]
fn home_card_shows_the_promoted_claim_with_derived_figures_labelled() {
    let html = render(
        || view! { <HomeView data=data(vec![claim("E4B", ClaimLevel::OptimizedShowcase, 100.0, 532.0)]) /> },
    );
    assert!(!html.contains("id=\"no-claim\""));
    for expected in [
        "100.0",
        "532",
        "5.32×",
        "+432",
        "81%",
        "Optimized showcase",
        "L40S",
        "2026-11-20",
        "run-E4B-optimized-showcase",
        // What was measured against, and on what weights: a synthetic-weights run must say so.
        "hf-transformers-static-cudagraph",
        "synthetic BF16 weights of the E4B shape (seed 0), not the released checkpoint",
    ] {
        assert!(html.contains(expected), "missing {expected}: {html}");
    }
    assert!(html.matches("(derived)").count() >= 3);
}

#[test]
fn a_checkpoint_run_names_its_digest_not_synthetic_weights() {
    let mut c = claim("E4B", ClaimLevel::VkaePath, 100.0, 532.0);
    c.weights = format!("sha256:{}", "ab12".repeat(16));
    c.baseline_name = None;
    let html = render(|| view! { <EvidenceView data=data(vec![c]) /> });
    assert!(html.contains("checkpoint sha256:ab12ab12ab12…"), "{html}");
    assert!(!html.contains("synthetic"), "{html}");
    assert!(!html.contains("baseline: "), "{html}");
}

#[test]
fn evidence_groups_by_level_and_blocks_porting_track_numbers() {
    let claims = vec![
        claim("E4B", ClaimLevel::VkaePath, 111.1, 222.2),
        claim("E4B", ClaimLevel::DeclaredBaseline, 111.1, 111.1),
        // A porting-track claim must never be shown, even if the store handed one over.
        claim("31B", ClaimLevel::VkaePath, 987.6, 1234.5),
    ];
    let html = render(|| view! { <EvidenceView data=data(claims) /> });
    assert!(html.contains("id=\"claim-run-E4B-vkae-path\""));
    assert!(html.contains("111.1 → 222.2 tok/s"), "{html}");
    // Each claim links the signed record behind it and names the lane key that signed it.
    assert!(
        html.contains("href=\"/api/v1/claims/run-E4B-vkae-path/record\"")
            && html.contains("signed record"),
        "{html}"
    );
    assert!(
        !html.contains("987.6") && !html.contains("1234.5") && !html.contains("1235"),
        "blocked numbers leaked: {html}"
    );
    assert!(html.contains("id=\"porting-tracks\""));
    assert_eq!(
        html.matches("class=\"blocked-row\"").count(),
        4,
        "E2B, 12B, 26B-A4B and 31B are porting tracks"
    );
    // the two empty levels say so
    assert_eq!(
        html.matches("No promoted run at this level yet.").count(),
        2
    );
    // Quality as a reader can weigh it; raw perplexities stay in the JSON and the record.
    assert!(
        html.contains("perplexity +0.1123% vs reference, top-1 agreement 98.7%, mean KL 1.20e-3"),
        "{html}"
    );
    assert!(!html.contains("7.131") && !html.contains("7.123"), "{html}");
    assert_eq!(
        html.matches("class=\"synthetic-note\"").count(),
        2,
        "{html}"
    );
    assert!(html.contains("0123456789ab"));
    // Rows read by family, then batch size, whatever order the store listed them in.
    let mut b1 = claim("E4B", ClaimLevel::VkaePath, 10.0, 270.0);
    (b1.batch, b1.run_id) = (1, "run-b1".into());
    let mut b32 = claim("E4B", ClaimLevel::VkaePath, 600.0, 5900.0);
    (b32.batch, b32.run_id) = (32, "run-b32".into());
    let sorted = render(|| {
        view! { <EvidenceView data=data(vec![b32, claim("E4B", ClaimLevel::VkaePath, 111.1, 222.2), b1]) /> }
    });
    let at = |id: &str| sorted.find(&format!("id=\"claim-{id}\"")).expect(id);
    assert!(at("run-b1") < at("run-E4B-vkae-path") && at("run-E4B-vkae-path") < at("run-b32"));
    // Each shown claim names its weights and its baseline path.
    assert_eq!(html.matches("class=\"weights\"").count(), 2, "{html}");
    assert!(
        html.contains("declared baseline: <code>hf-transformers-static-cudagraph</code>"),
        "{html}"
    );
}

fn with_eager(mut c: Claim) -> Claim {
    let vkae = c.vkae_tokens_per_s;
    c.derived.as_mut().unwrap().eager = Some(EagerLift {
        path: "hf-transformers-eager".into(),
        tokens_per_s: 16.0,
        lift: vkae / 16.0,
    });
    c
}

#[test]
fn claims_show_the_declared_baselines_lift_and_the_eager_references_beside_it() {
    let c = with_eager(claim("E4B", ClaimLevel::VkaePath, 100.0, 272.0));
    let home = render({
        let c = c.clone();
        move || view! { <HomeView data=data(vec![c.clone()]) /> }
    });
    for expected in [
        "Lift over the declared baseline ",
        "2.72×",
        "Eager reference (context)",
        "<code>hf-transformers-eager</code>",
        "16.0",
        "Lift over the eager reference ",
        "17.00×",
        // The cost figure is the declared baseline's: 1 - 100 / 272.
        "63%",
    ] {
        assert!(home.contains(expected), "missing {expected}: {home}");
    }
    assert!(home.matches("(derived)").count() >= 4, "{home}");
    let evidence = render(move || view! { <EvidenceView data=data(vec![c.clone()]) /> });
    assert!(
        evidence.contains("2.72× over the declared baseline (derived)"),
        "{evidence}"
    );
    assert!(
        evidence.contains("17.00× over the eager reference <code>hf-transformers-eager</code> at 16.0 tok/s (derived)"),
        "{evidence}"
    );
}

#[test]
fn stale_and_disputed_claims_say_so_with_their_dates() {
    let mut stale = claim("E4B", ClaimLevel::VkaePath, 100.0, 272.0);
    stale.standing.state = ClaimState::Stale;
    let mut disputed = claim("E4B", ClaimLevel::DeclaredBaseline, 100.0, 272.0);
    disputed.standing.state = ClaimState::Disputed;
    disputed.standing.disputed_by = vec!["run-newer-slower".into()];
    let html =
        render(move || view! { <EvidenceView data=data(vec![stale.clone(), disputed.clone()]) /> });
    assert!(
        html.contains("Stale: measured 2026-11-20, current until 2027-02-18"),
        "{html}"
    );
    assert!(
        html.contains("Disputed: a newer run of the same recipe is more than 2% slower (run-newer-slower); measured 2026-11-20"),
        "{html}"
    );
    let current = render(
        || view! { <EvidenceView data=data(vec![claim("E4B", ClaimLevel::VkaePath, 1.0, 2.0)]) /> },
    );
    assert!(
        !current.contains("Stale") && !current.contains("Disputed"),
        "{current}"
    );
    let mut home_claim = claim("E4B", ClaimLevel::VkaePath, 100.0, 272.0);
    home_claim.standing.state = ClaimState::Stale;
    let home = render(move || view! { <HomeView data=data(vec![home_claim.clone()]) /> });
    assert!(home.contains("class=\"standing\""), "{home}");
}

#[test]
fn models_lists_fifteen_repos_and_each_family_status() {
    let html = render(|| view! { <ModelsView data=data(vec![]) /> });
    assert_eq!(html.matches("<li><code>google/gemma-4-").count(), 15);
    assert_eq!(html.matches("badge ready").count(), 1);
    assert_eq!(html.matches("badge porting").count(), 4);
    assert!(html.contains("google/diffusiongemma-26B-A4B-it"));
    assert!(html.contains("GGUF"));
}

#[test]
fn sizing_draws_the_chart_on_the_server_and_marks_planning() {
    let d = data(vec![]);
    let svg = first_paint_svg(&d);
    let html = render(move || view! { <SizingView data=d /> });
    assert!(
        html.contains("<leptos-island"),
        "the dashboard is an island: {html}"
    );
    assert!(html.contains("<svg"), "first paint has the chart: {html}");
    assert!(
        html.contains("id=\"speed-table\""),
        "the chart's values as a table: {html}"
    );
    assert_eq!(
        html.matches("planning index</td>").count(),
        5,
        "one table row per planning point"
    );
    assert!(
        svg.contains(" planning\n") && !svg.contains("tok/s measured"),
        "{svg}"
    );
    assert!(html.contains("id=\"no-measured\""));
    assert_eq!(html.matches("<th scope=\"rowgroup\"").count(), 5);
    assert!(
        html.contains("69.9 GB") && html.contains("71.15 GB"),
        "memory arithmetic shown: {html}"
    );
    assert_eq!(
        html.matches("No listed GPU lane holds this").count(),
        1,
        "the 31B recommended lane"
    );
}

#[test]
fn sizing_with_a_claim_draws_it_as_measured() {
    let d = data(vec![claim(
        "E4B",
        ClaimLevel::OptimizedShowcase,
        100.0,
        532.0,
    )]);
    let html = render(move || view! { <SizingView data=d /> });
    assert!(!html.contains("id=\"no-measured\""));
    // the claim's batch (8) is not the default batch filter (1), so the bar is among the island's points
    assert!(html.contains("532"), "{html}");
}

#[test]
fn preview_form_offers_the_service_paths() {
    let html = render(|| view! { <PreviewView data=data(vec![]) /> });
    assert!(html.contains("id=\"preview-form\""));
    assert!(html.contains("id=\"pf-path-report\""));
    for field in [
        "pf-name",
        "pf-email",
        "pf-company",
        "pf-model_family",
        "pf-gpu",
        "pf-message",
    ] {
        assert!(html.contains(&format!("id=\"{field}\"")), "missing {field}");
    }
}

#[test]
fn internal_view_shows_lanes_with_reasons_and_actions() {
    let d = InternalData {
        operator: "ada".into(),
        csrf_token: "tok".into(),
        runs: vec![RunSummary {
            batch: 8,
            gpu: "L40S".into(),
            ingested_at: "2026-11-20T10:00:00Z".into(),
            lanes: vec![
                LaneVerdict {
                    lane: "artifact".into(),
                    passed: true,
                    reasons: vec![],
                },
                LaneVerdict {
                    lane: "quality".into(),
                    passed: false,
                    reasons: vec!["ppl ratio 1.09 over 1.02".into()],
                },
            ],
            vkae_tokens_per_s: Some(20.0),
            ..run(
                "r1",
                "E4B|synthetic:seed=0|L40S|8|128|128|hf-transformers-eager",
                Some(10.0),
            )
        }],
        audit: vec![],
        inbox: vec![],
        content_refusals: vec![ContentRefusal {
            run_id: "r-refused".into(),
            level: "vkae-path".into(),
            operator: "grace".into(),
            date: "2026-12-02".into(),
            message: "run r-refused cannot be promoted: failing quality".into(),
            reasons: vec!["quality: top-1 agreement 0.5 (bound >= 0.9)".into()],
        }],
    };
    let html = render(move || view! { <InternalView data=d /> });
    // A committed promotion the gate refused is listed with the gate's reasons.
    assert!(
        html.contains("<code>r-refused</code> (vkae-path, reviewed by grace on 2026-12-02): run r-refused cannot be promoted: failing quality")
            && html.contains(" — quality: top-1 agreement 0.5 (bound &gt;= 0.9)</li>"),
        "{html}"
    );
    assert!(html.contains("ppl ratio 1.09 over 1.02"));
    assert!(html.contains("id=\"promote-r1\""));
    assert!(html.contains("No decision recorded yet."));
    assert!(html.contains("/internal/preview-requests.csv"));
    // One run alone has nothing to be compared with.
    assert!(!html.contains("baseline-context"), "{html}");
}

/// The audit log and the inbox as the store's internal documents: each entry's typed detail in one line, each
/// request's fields in its row.
#[test]
fn internal_view_shows_the_audit_detail_and_the_inbox() {
    let d = InternalData {
        operator: "ada".into(),
        csrf_token: "tok".into(),
        runs: vec![],
        audit: vec![AuditEntry {
            seq: 3,
            at: "2026-11-20T10:00:00Z".into(),
            actor: "ada".into(),
            action: "promote-refused".into(),
            run_id: Some("r1".into()),
            detail: vkae_domain::AuditDetail {
                level: Some("vkae-path".into()),
                reason: Some("launch".into()),
                blockers: Some(vec![vkae_domain::Blocker {
                    lane: "quality".into(),
                    reasons: vec!["ppl".into()],
                }]),
                ..Default::default()
            },
        }],
        inbox: vec![PreviewRequest {
            id: 1,
            received_at: "2026-11-21T09:00:00Z".into(),
            request: vkae_domain::ValidPreview {
                name: "Grace".into(),
                email: "grace@example.com".into(),
                company: "Navy".into(),
                service_path: "report".into(),
                model_family: "E4B".into(),
                gpu: "undecided".into(),
                message: "batch 8".into(),
            },
        }],
        content_refusals: vec![],
    };
    let html = render(move || view! { <InternalView data=d /> });
    assert!(
        html.contains("blockers: quality; level: vkae-path; reason: launch"),
        "{html}"
    );
    assert!(html.contains("<code>r1</code>"), "{html}");
    for cell in ["Grace", "grace@example.com", "Navy", "undecided", "batch 8"] {
        assert!(html.contains(&format!("<td>{cell}</td>")), "{cell}: {html}");
    }
}

/// A run summary with only what the baseline comparison reads.
fn run(id: &str, comparable: &str, baseline: Option<f64>) -> RunSummary {
    RunSummary {
        id: 1,
        run_id: id.into(),
        family: "E4B".into(),
        repo: "google/gemma-4-E4B-it".into(),
        gpu: "NVIDIA H200".into(),
        gpu_id: Some("h200".into()),
        lane_key: "lab".into(),
        batch: 1,
        ingested_at: "2026-11-28T19:00:00Z".into(),
        lanes: vec![],
        claim_status: "unpromoted".into(),
        claim_level: None,
        profile_status: Some("claim-ready".into()),
        baseline_tokens_per_s: baseline,
        vkae_tokens_per_s: Some(272.0),
        comparable: comparable.into(),
        baseline_context: None,
    }
}

#[test]
fn a_baseline_is_compared_with_the_comparable_runs_only() {
    let (b1, b8) = (
        "E4B|synthetic:seed=0|NVIDIA H200|1|128|128|hf",
        "E4B|synthetic:seed=0|NVIDIA H200|8|128|128|hf",
    );
    let mut runs = vec![
        run("slow", b1, Some(11.57)),
        run("a", b1, Some(17.29)),
        run("b", b1, Some(14.47)),
        run("c", b1, Some(16.98)),
        // Another batch size, and a run without a baseline path: compared with nothing, counted by nobody.
        run("other-batch", b8, Some(140.0)),
        run("no-baseline", "", None),
    ];
    baseline_contexts(&mut runs);
    let slow = runs[0]
        .baseline_context
        .clone()
        .expect("three comparable runs");
    assert_eq!((slow.others, slow.others_median), (3, 16.98));
    assert!((slow.deviation - (11.57 / 16.98 - 1.0)).abs() < 1e-12 && slow.notable());
    let a = runs[1].baseline_context.clone().unwrap();
    assert_eq!(a.others, 3);
    assert!(!a.notable(), "{a:?}");
    assert!(runs[4].baseline_context.is_none() && runs[5].baseline_context.is_none());

    let d = InternalData {
        operator: "ada".into(),
        csrf_token: "tok".into(),
        runs,
        audit: vec![],
        inbox: vec![],
        content_refusals: vec![],
    };
    let html = render(move || view! { <InternalView data=d /> });
    assert!(
        html.contains("Baseline -32% against the median 17.0 tok/s of 3 comparable runs"),
        "{html}"
    );
    assert_eq!(
        html.matches("baseline-context notable").count(),
        1,
        "{html}"
    );
}
