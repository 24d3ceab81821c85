//! `/api/internal/runs`: ingest, the promotion gate, promote and retract, and what refusals leave stored.

use crate::common::*;
use reqwest::Method;
use serde_json::{json, Value};

#[tokio::test]
async fn ingest_promote_retract_flow() {
    let app = spawn().await;
    let (status, body) = json(app.ingest(record("run-1")).await).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["created"], true);
    assert!(body["id"].as_i64().unwrap() > 0);
    assert!(
        body["lanes"]
            .as_array()
            .unwrap()
            .iter()
            .all(|l| l["passed"] == true),
        "{body}"
    );

    // Re-sending the identical record creates no duplicate and answers the same id.
    let (status, again) = json(app.ingest(record("run-1")).await).await;
    assert_eq!(status, 200);
    assert_eq!(
        (again["created"].clone(), again["id"].clone()),
        (json!(false), body["id"].clone())
    );

    // Not public before promotion.
    let (_, claims) = json(app.get("/api/v1/claims").await).await;
    assert_eq!(claims["claims"], json!([]));

    let (status, decision) = json(app.promote("run-1").await).await;
    assert_eq!(status, 200, "{decision}");
    assert_eq!(decision["status"], "promoted");

    let (_, claims) = json(app.get("/api/v1/claims").await).await;
    let claim = &claims["claims"][0];
    assert_eq!(claim["run_id"], "run-1");
    assert_eq!(claim["level"], "vkae-path");
    assert_eq!(claim["hardware"]["gpu_id"], "h200");
    assert_eq!(claim["recipe"]["batch"], 1);
    let d = &claim["derived"];
    assert_eq!(d["label"], "derived");
    // Medians: baseline 9.76, VKAE 301.2.
    assert!((d["lift"].as_f64().unwrap() - 30.861).abs() < 0.001, "{d}");
    assert!(
        (d["additional_tokens_per_s"].as_f64().unwrap() - 291.44).abs() < 0.001,
        "{d}"
    );
    assert!(
        (d["token_cost_reduction"].as_f64().unwrap() - 0.9676).abs() < 0.0001,
        "{d}"
    );
    assert_eq!(claim["unavailable_paths"][0]["name"], "torch-compile");

    // Sizing shows the measured figure for E4B on H200 only.
    let (_, sizing) = json(app.get("/api/v1/sizing?family=E4B").await).await;
    let speed = sizing["families"][0]["speed"].as_array().unwrap();
    let h200 = speed.iter().find(|g| g["gpu_id"] == "h200").unwrap();
    assert_eq!(h200["measured"]["label"], "measured");
    assert_eq!(h200["measured"]["tokens_per_s"], 301.2);
    assert_eq!(h200["measured"]["run_id"], "run-1");
    assert!(speed
        .iter()
        .filter(|g| g["gpu_id"] != "h200")
        .all(|g| g["measured"].is_null()));

    // Promoting twice is a conflict; retracting removes it from every public route.
    assert_eq!(app.promote("run-1").await.status(), 409);
    let (status, decision) = json(app.retract("run-1").await).await;
    assert_eq!(
        (status, decision["status"].as_str()),
        (200, Some("retracted"))
    );
    assert_eq!(
        json(app.get("/api/v1/claims").await).await.1["claims"],
        json!([])
    );
    let (_, sizing) = json(app.get("/api/v1/sizing").await).await;
    assert!(!sizing.to_string().contains("run-1"));
    assert_eq!(app.retract("run-1").await.status(), 409);

    // The audit log has every decision, newest first.
    let (_, audit) = json(
        app.as_operator(Method::GET, "/api/internal/audit", None)
            .await,
    )
    .await;
    let actions: Vec<&str> = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["retract", "promote", "ingest", "lane-key-add"]);
}

#[tokio::test]
async fn promotion_gate_names_failing_lanes() {
    let app = spawn().await;
    for (kind, run_id, failing) in [
        (Kind::BadCount, "count", "benchmark"),
        (Kind::BadQuality, "quality", "quality"),
        (Kind::NoDigest, "digest", "artifact"),
        (Kind::PortingTrack, "e2b", "profile"),
    ] {
        let (status, body) = json(app.ingest(record_of(kind, run_id)).await).await;
        assert_eq!(status, 201, "{body}");
        let (status, body) = json(app.promote(run_id).await).await;
        assert_eq!(status, 409, "{kind:?}: {body}");
        assert_eq!(body["error"]["code"], "promotion_refused");
        let lanes: Vec<&str> = body["error"]["details"]["blockers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|b| b["lane"].as_str().unwrap())
            .collect();
        assert_eq!(lanes, [failing], "{kind:?}: {body}");
        assert!(body["error"]["message"].as_str().unwrap().contains(failing));
    }
    // Kept internally with reasons, never public.
    let (_, runs) = json(
        app.as_operator(Method::GET, "/api/internal/runs", None)
            .await,
    )
    .await;
    assert_eq!(runs["runs"].as_array().unwrap().len(), 4);
    let count = runs["runs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["run_id"] == "count")
        .unwrap();
    let bench = count["lanes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["lane"] == "benchmark")
        .unwrap();
    assert_eq!(bench["passed"], false);
    assert!(
        bench["reasons"][0]
            .as_str()
            .unwrap()
            .contains("tokens_generated 385 != batch 1 x output_tokens 128 x repetitions 3 = 384"),
        "{bench}"
    );
    let e2b = runs["runs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["run_id"] == "e2b")
        .unwrap();
    assert_eq!(e2b["profile_status"], "porting-track");
    assert_eq!(
        json(app.get("/api/v1/claims").await).await.1["claims"],
        json!([])
    );
    // Refusals are audited too.
    let (_, audit) = json(
        app.as_operator(Method::GET, "/api/internal/audit", None)
            .await,
    )
    .await;
    let refused: Vec<&Value> = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "promote-refused")
        .collect();
    assert_eq!(refused.len(), 4);
    assert_eq!(refused[0]["actor"], OPERATOR);
    assert_eq!(refused[0]["detail"]["blockers"][0]["lane"], "profile");
}

#[tokio::test]
async fn ingest_refusals_store_nothing() {
    let app = spawn().await;
    let good = || record("r");
    let mut tampered: Value = serde_json::from_slice(&signed(good(), &app.key)).unwrap();
    tampered["paths"][1]["tokens_per_s"][0] = json!(999.0);
    let (other_key, _) = vkae_record::keygen();
    let mut unknown_key = good();
    unknown_key.sign("nobody", &app.key).unwrap();
    let mut unknown_family = good();
    unknown_family.model.family = "7B".into();
    let big = vec![b' '; 300 * 1024];
    let cases: Vec<(&str, Vec<u8>, u16, &str, Option<&str>)> = vec![
        ("not json", b"{".to_vec(), 400, "malformed_record", None),
        (
            "wrong schema",
            br#"{"schema":"vkae.run.v9"}"#.to_vec(),
            400,
            "unknown_schema",
            Some("schema"),
        ),
        (
            "missing field",
            br#"{"schema":"vkae.run.v1"}"#.to_vec(),
            400,
            "malformed_record",
            Some("run_id"),
        ),
        (
            "unsigned",
            good().to_json_bytes(),
            422,
            "unsigned",
            Some("signature"),
        ),
        (
            "unknown key",
            unknown_key.to_json_bytes(),
            422,
            "unknown_key",
            Some("lane_key"),
        ),
        (
            "tampered",
            serde_json::to_vec(&tampered).unwrap(),
            422,
            "bad_signature",
            Some("signature"),
        ),
        (
            "other key",
            signed(good(), &other_key),
            422,
            "bad_signature",
            Some("signature"),
        ),
        (
            "unknown family",
            signed(unknown_family, &app.key),
            422,
            "invalid_field",
            Some("model.family"),
        ),
        ("oversize", big, 413, "too_large", None),
    ];
    for (label, bytes, status, code, field) in cases {
        let (got, body) = json(app.ingest_bytes(bytes).await).await;
        assert_eq!(got, status, "{label}: {body}");
        assert_eq!(body["error"]["code"], code, "{label}: {body}");
        assert_eq!(body["error"]["field"].as_str(), field, "{label}: {body}");
        assert!(!body["error"]["message"].as_str().unwrap().is_empty());
    }
    let (_, runs) = json(
        app.as_operator(Method::GET, "/api/internal/runs", None)
            .await,
    )
    .await;
    assert_eq!(runs["runs"], json!([]), "nothing stored");

    // The same run_id with different content is a conflict, and the first stays.
    assert_eq!(app.ingest(record("same")).await.status(), 201);
    let mut changed = record("same");
    changed.quality.tokens += 1;
    let (status, body) = json(app.ingest(changed).await).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (409, Some("run_id_conflict"))
    );
    let (_, run) = json(
        app.as_operator(Method::GET, "/api/internal/runs/same", None)
            .await,
    )
    .await;
    assert_eq!(run["record"]["quality"]["tokens"], 4096);
}

/// Each run carries its raw medians and comparability key and, beside two or more comparable runs, its baseline
/// against theirs (what /internal shows an operator before a promotion); one run reads the same.
#[tokio::test]
async fn runs_carry_medians_and_the_baseline_beside_comparable_runs() {
    let app = spawn().await;
    let sample = record("sample");
    let baseline = sample
        .paths
        .iter()
        .find(|p| p.role == vkae_record::Role::Baseline)
        .expect("the sample has a baseline path");
    let median = vkae_record::stats::median(&baseline.tokens_per_s).unwrap();
    for (run_id, scale) in [("slow", 0.5), ("a", 1.0), ("b", 1.0)] {
        let mut r = record(run_id);
        for p in r.paths.iter_mut() {
            if p.role == vkae_record::Role::Baseline {
                p.tokens_per_s.iter_mut().for_each(|v| *v *= scale);
            }
        }
        assert_eq!(app.ingest(r).await.status(), 201);
    }
    let (_, runs) = json(
        app.as_operator(Method::GET, "/api/internal/runs", None)
            .await,
    )
    .await;
    let runs = runs["runs"].as_array().unwrap();
    let slow = runs.iter().find(|r| r["run_id"] == "slow").unwrap();
    assert_eq!(slow["batch"], sample.recipe.batch, "{slow}");
    assert!((slow["baseline_tokens_per_s"].as_f64().unwrap() - 0.5 * median).abs() < 1e-9);
    assert!(slow["vkae_tokens_per_s"].as_f64().unwrap() > 0.0);
    assert_eq!(slow["claim_status"], "unpromoted");
    assert_eq!(slow["profile_status"], "claim-ready");
    let comparable = slow["comparable"].as_str().unwrap();
    assert!(
        comparable.starts_with("E4B|") && comparable.ends_with(&format!("|{}", baseline.name)),
        "{comparable}"
    );
    let context = &slow["baseline_context"];
    assert_eq!(context["others"], 2, "{slow}");
    assert!((context["others_median"].as_f64().unwrap() - median).abs() < 1e-9);
    assert!((context["deviation"].as_f64().unwrap() + 0.5).abs() < 1e-9);
    for other in runs.iter().filter(|r| r["run_id"] != "slow") {
        assert_eq!(other["comparable"], slow["comparable"]);
        assert_eq!(other["baseline_context"]["others"], 2);
    }
    let (_, one) = json(
        app.as_operator(Method::GET, "/api/internal/runs/slow", None)
            .await,
    )
    .await;
    assert_eq!(one["baseline_context"], slow["baseline_context"]);
    assert_eq!(one["record"]["run_id"], "slow");
    // The ingest entries' detail is typed: the store's id, the record's digest and each lane's pass.
    let (_, audit) = json(
        app.as_operator(Method::GET, "/api/internal/audit", None)
            .await,
    )
    .await;
    let ingest = &audit["entries"][0]["detail"];
    assert_eq!(ingest["lanes"]["artifact"], true, "{ingest}");
    assert!(ingest["id"].as_i64().unwrap() > 0 && ingest["sha256"].as_str().unwrap().len() == 64);
}
