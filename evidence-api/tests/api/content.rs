//! Evidence as reviewed content: at start the server ingests the signed records under `<content>/evidence/` and
//! applies `promotions.toml` through the promotion gate, once (a restart writes nothing), reporting refusals.
//! Also the standing of claims: stale past the profile's `claim_current_days`, disputed by a newer slower record.

use crate::common::*;
use reqwest::Method;
use serde_json::{json, Value};
use std::path::Path;
use vkae_evidence::{Application, Settings};

const CONTENT_KEY: &str = "content-lab";

/// A content folder: the repository's `content/*.toml` and an `evidence/` folder with `lab/content-lab.pub`, two
/// records signed by it (one failing the quality lane), a report JSON, a record in a folder without its key, and
/// `promotions.toml` promoting both records and a run that does not exist.
fn content_folder(dir: &Path) {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../content");
    for name in vkae_evidence::content::FILES {
        std::fs::copy(repo.join(name), dir.join(name)).unwrap();
    }
    let lab = dir.join("evidence/lab");
    let unkeyed = dir.join("evidence/unattributed");
    std::fs::create_dir_all(&lab).unwrap();
    std::fs::create_dir_all(&unkeyed).unwrap();
    let (key, public) = vkae_record::keygen();
    std::fs::write(
        lab.join(format!("{CONTENT_KEY}.pub")),
        vkae_record::encode_verifying_key(&public) + "\n",
    )
    .unwrap();
    let sign = |r: vkae_record::RunRecord| {
        let mut r = r;
        r.sign(CONTENT_KEY, &key).unwrap();
        r.to_json_bytes()
    };
    std::fs::write(lab.join("good.json"), sign(record_of(Kind::Good, "c-good"))).unwrap();
    std::fs::write(
        lab.join("bad.json"),
        sign(record_of(Kind::BadQuality, "c-bad")),
    )
    .unwrap();
    std::fs::write(lab.join("good.report.json"), r#"{"rates": [1, 2]}"#).unwrap();
    std::fs::write(
        unkeyed.join("orphan.json"),
        sign(record_of(Kind::Good, "c-orphan")),
    )
    .unwrap();
    std::fs::write(
        dir.join("evidence/promotions.toml"),
        r#"
[[promotions]]
run_id = "c-good"
level = "declared-baseline"
operator = "grace"
reason = "all lanes pass; reviewed"
date = "2026-12-02"

[[promotions]]
run_id = "c-bad"
level = "vkae-path"
operator = "grace"
reason = "should be refused by the quality lane"
date = "2026-12-02"

[[promotions]]
run_id = "c-missing"
level = "vkae-path"
operator = "grace"
reason = "no such run"
date = "2026-12-02"
"#,
    )
    .unwrap();
}

fn content_settings(dir: &Path) -> impl FnOnce(&mut Settings) + '_ {
    move |s: &mut Settings| {
        s.content_dir = Some(dir.to_path_buf());
        s.content_evidence = true;
    }
}

async fn audit_entries(app: &TestApp) -> Vec<Value> {
    let (status, body) = json(
        app.as_operator(Method::GET, "/api/internal/audit?limit=1000", None)
            .await,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    body["entries"].as_array().unwrap().clone()
}

#[tokio::test]
async fn committed_promotions_are_applied_through_the_gate_once_and_refusals_are_reported() {
    let content = TempDir::new("content");
    content_folder(&content.0);
    let app = spawn_with(content_settings(&content.0)).await;

    // The good record is a public claim, promoted from content under the reviewing operator's name.
    let (_, claims) = json(app.get("/api/v1/claims").await).await;
    let ids: Vec<&str> = claims["claims"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["run_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["c-good"], "{claims}");
    assert_eq!(claims["claims"][0]["level"], "declared-baseline");
    let audit = audit_entries(&app).await;
    let promotions: Vec<&Value> = audit.iter().filter(|e| e["action"] == "promote").collect();
    assert_eq!(promotions.len(), 1, "{audit:?}");
    assert_eq!(promotions[0]["actor"], "content");
    assert_eq!(promotions[0]["run_id"], "c-good");
    assert_eq!(promotions[0]["detail"]["operator"], "grace");
    assert_eq!(promotions[0]["detail"]["date"], "2026-12-02");
    assert_eq!(
        promotions[0]["detail"]["source"],
        "content/evidence/promotions.toml"
    );
    assert!(
        audit.iter().all(|e| e["action"] != "promote-refused"),
        "content refusals are reported, not audited: {audit:?}"
    );

    // The report: records ingested, the report JSON ignored, the unkeyed record skipped; refusals with reasons.
    let (status, report) = json(
        app.as_operator(Method::GET, "/api/internal/content-evidence", None)
            .await,
    )
    .await;
    assert_eq!(status, 200, "{report}");
    let records: Vec<(String, String)> = report["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["file"].as_str().unwrap().to_string(),
                r["status"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        records,
        [
            ("lab/bad.json".to_string(), "ingested".to_string()),
            ("lab/good.json".to_string(), "ingested".to_string()),
            (
                "unattributed/orphan.json".to_string(),
                "skipped".to_string()
            ),
        ]
    );
    assert_eq!(
        report["records"][2]["reason"],
        format!("no {CONTENT_KEY}.pub beside it")
    );
    let status_of = |run: &str| {
        report["promotions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["run_id"] == run)
            .unwrap()
            .clone()
    };
    assert_eq!(status_of("c-good")["status"], "applied");
    let bad = status_of("c-bad");
    assert_eq!(bad["status"], "refused", "{bad}");
    assert_eq!(bad["blockers"][0]["lane"], "quality", "{bad}");
    assert!(bad["blockers"][0]["reasons"][0]
        .as_str()
        .unwrap()
        .starts_with("perplexity"));
    let missing = status_of("c-missing");
    assert_eq!(missing["status"], "refused");
    assert!(missing["message"]
        .as_str()
        .unwrap()
        .contains("no run with run_id"));
    // The auth matrix holds for the new route.
    assert_eq!(
        app.get("/api/internal/content-evidence").await.status(),
        401
    );

    // A restart on the same store applies the same files again: no new rows anywhere, same claims.
    let before = audit_entries(&app).await.len();
    let mut settings = app.state.settings.clone();
    settings.bind = "127.0.0.1:0".parse().unwrap();
    let again = Application::build(settings).await.unwrap();
    let report = again.state().content_evidence.get().unwrap().clone();
    assert!(report
        .records
        .iter()
        .filter(|r| r.status != "skipped")
        .all(|r| r.status == "stored-already"));
    let statuses: Vec<&str> = report.promotions.iter().map(|p| p.status).collect();
    assert_eq!(statuses, ["decided-already", "refused", "refused"]);
    assert_eq!(audit_entries(&app).await.len(), before);
    let (_, claims_again) = json(app.get("/api/v1/claims").await).await;
    assert_eq!(claims_again["claims"].as_array().unwrap().len(), 1);

    // An operator's retraction stands across restarts; live promotion keeps working.
    assert_eq!(app.retract("c-good").await.status(), 200);
    let mut settings = app.state.settings.clone();
    settings.bind = "127.0.0.1:0".parse().unwrap();
    let third = Application::build(settings).await.unwrap();
    assert_eq!(
        third.state().content_evidence.get().unwrap().promotions[0].status,
        "decided-already"
    );
    let (_, claims) = json(app.get("/api/v1/claims").await).await;
    assert!(claims["claims"].as_array().unwrap().is_empty(), "{claims}");
    assert_eq!(app.promote("c-good").await.status(), 200);
}

/// The repository's own content: the c7c3ba1 records (batch 1, 8 and 32, lane key h200-lab3) become claims naming
/// the declared CUDA-graph baseline with the eager reference beside it; the older eager-baseline records are
/// ingested but not promotable, and the records kept as reports without a key beside them are skipped.
#[tokio::test]
async fn the_committed_evidence_serves_claims_against_the_declared_baseline() {
    let app = spawn_with(|s| s.content_evidence = true).await;
    let report = app.state.content_evidence.get().unwrap();
    let refused: Vec<_> = report.refused_promotions().collect();
    assert!(refused.is_empty(), "{refused:?}");
    assert!(report
        .records
        .iter()
        .filter(|r| r.file.starts_with("reports/final-path-unattributed/"))
        .all(|r| r.status == "skipped"));
    assert!(
        report.records.iter().all(|r| r.status != "refused"),
        "{:?}",
        report.records
    );
    let (_, claims) = json(app.get("/api/v1/claims?family=E4B").await).await;
    let claims = claims["claims"].as_array().unwrap();
    let mut batches: Vec<u64> = claims
        .iter()
        .map(|c| c["recipe"]["batch"].as_u64().unwrap())
        .collect();
    batches.sort();
    assert_eq!(batches, [1, 8, 32]);
    for c in claims {
        let d = &c["derived"];
        assert_eq!(d["baseline_path"], DECLARED_BASELINE, "{c}");
        assert_eq!(d["label"], "derived");
        assert_eq!(d["eager_reference"]["path"], EAGER_REFERENCE, "{c}");
        assert_eq!(d["eager_reference"]["label"], "derived");
        let (lift, eager_lift) = (
            d["lift"].as_f64().unwrap(),
            d["eager_reference"]["lift"].as_f64().unwrap(),
        );
        assert!(lift > 2.0 && lift < 3.5 && eager_lift > lift, "{d}");
        // The cost figure derives from the declared baseline.
        let reduction = d["token_cost_reduction"].as_f64().unwrap();
        assert!((reduction - (1.0 - 1.0 / lift)).abs() < 1e-3, "{d}");
        assert_eq!(c["standing"]["state"], "current", "{c}");
    }
}

/// A claim past its profile's `claim_current_days` is stale, with its date and the day it stopped being current.
#[tokio::test]
async fn a_claim_older_than_its_profile_allows_is_stale() {
    let app = spawn().await;
    let mut old = record("run-old");
    old.started_at = "2026-08-01T10:00:00Z".into();
    old.finished_at = "2026-08-01T10:05:00Z".into();
    assert_eq!(app.ingest(old).await.status(), 201);
    assert_eq!(app.promote("run-old").await.status(), 200);
    assert_eq!(app.ingest(record("run-new")).await.status(), 201);
    assert_eq!(app.promote("run-new").await.status(), 200);
    let (_, doc) = json(app.get("/api/v1/claims").await).await;
    let standing = |run: &str| {
        doc["claims"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["run_id"] == run)
            .unwrap()["standing"]
            .clone()
    };
    // The test clock stands at 2026-12-01; E4B claims stay current for 90 days.
    assert_eq!(
        standing("run-old"),
        json!({ "state": "stale", "measured_at": "2026-08-01T10:05:00Z", "current_until": "2026-10-30T10:05:00Z", "disputes": [] })
    );
    assert_eq!(standing("run-new")["state"], "current");
    assert_eq!(standing("run-new")["current_until"], "2027-02-26T10:05:30Z");
}

fn slower(run_id: &str, factor: f64, finished_at: &str) -> vkae_record::RunRecord {
    let mut r = record(run_id);
    for rate in &mut r.paths[1].tokens_per_s {
        *rate *= factor;
    }
    r.started_at = "2026-11-29T09:00:00Z".into();
    r.finished_at = finished_at.into();
    r
}

/// A newer record of the same family, GPU, recipe and batch more than 2% slower disputes the claim until an
/// operator promotes it again; a 1% slower one, an older one or one at another batch does not.
#[tokio::test]
async fn a_newer_record_more_than_two_percent_slower_disputes_a_claim_until_it_is_promoted_again() {
    let app = spawn().await;
    assert_eq!(app.ingest(record("claim")).await.status(), 201);
    assert_eq!(app.promote("claim").await.status(), 200);

    let mut other_batch = slower("other-batch", 0.9, "2026-11-29T10:00:00Z");
    other_batch.recipe.batch = 8;
    for p in &mut other_batch.paths {
        p.tokens_generated *= 8;
    }
    let mut older = slower("older", 0.9, "2026-11-27T10:00:00Z");
    older.started_at = "2026-11-27T09:00:00Z".into();
    for r in [
        slower("one-percent", 0.99, "2026-11-29T10:00:00Z"),
        older,
        other_batch,
    ] {
        assert_eq!(app.ingest(r).await.status(), 201);
    }
    let (_, doc) = json(app.get("/api/v1/claims").await).await;
    assert_eq!(doc["claims"][0]["standing"]["state"], "current", "{doc}");

    assert_eq!(
        app.ingest(slower("three-percent", 0.97, "2026-11-29T10:00:00Z"))
            .await
            .status(),
        201
    );
    let (_, doc) = json(app.get("/api/v1/claims").await).await;
    let standing = &doc["claims"][0]["standing"];
    assert_eq!(standing["state"], "disputed", "{doc}");
    assert_eq!(standing["disputes"][0]["run_id"], "three-percent");
    assert_eq!(standing["disputes"][0]["claim_median"], 301.2);
    let median = standing["disputes"][0]["vkae_median"].as_f64().unwrap();
    assert!((median - 301.2 * 0.97).abs() < 1e-9, "{median}");

    // Promoting it again settles the dispute (audited with the disputing run); a current claim cannot be.
    assert_eq!(app.promote("claim").await.status(), 200);
    let (_, doc) = json(app.get("/api/v1/claims").await).await;
    assert_eq!(doc["claims"][0]["standing"]["state"], "current", "{doc}");
    assert_eq!(app.promote("claim").await.status(), 409);
    let audit = audit_entries(&app).await;
    assert_eq!(audit[0]["action"], "promote");
    assert_eq!(
        audit[0]["detail"]["settles_disputes_by"],
        json!(["three-percent"])
    );
}
