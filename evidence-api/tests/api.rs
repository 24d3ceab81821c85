//! Integration tests on the real server (port 0, fresh SQLite file): flows, bad inputs per endpoint, the auth
//! matrix of every internal route, headers, OpenAPI coverage.

mod common;

use common::*;
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

/// A promoted claim names the signed record behind it and the lane key that signed it; the record is served
/// byte for byte as stored and verifies offline under that key. Unknown, unpromoted and retracted runs answer
/// the same 404, so the route tells nothing about runs that are not public.
#[tokio::test]
async fn a_promoted_claim_serves_its_signed_record_which_verifies_offline() {
    let app = spawn().await;
    let path = "/api/v1/claims/run-v/record";
    assert_eq!(app.ingest(record("run-v")).await.status(), 201);
    for p in [path, "/api/v1/claims/no-such-run/record"] {
        let (status, body) = json(app.get(p).await).await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (404, Some("claim_not_found")),
            "{p}: {body}"
        );
    }

    assert_eq!(app.promote("run-v").await.status(), 200);
    let (_, claims) = json(app.get("/api/v1/claims").await).await;
    let provenance = &claims["claims"][0]["provenance"];
    assert_eq!(provenance["record"], path, "{provenance}");
    assert_eq!(provenance["lane_key"], LANE_KEY);
    let public = provenance["lane_public_key"].as_str().unwrap();
    assert_eq!(
        public,
        vkae_record::encode_verifying_key(&app.key.verifying_key())
    );

    let r = app.get(path).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "application/json");
    let bytes = r.bytes().await.unwrap().to_vec();
    assert_eq!(
        provenance["record_sha256"].as_str().unwrap(),
        vkae_evidence::auth::sha256_hex(&bytes)
    );
    let served = vkae_record::RunRecord::parse(&bytes).unwrap();
    let key = vkae_record::decode_verifying_key(public).unwrap();
    served.verify(&key).unwrap();
    assert_eq!(served.run_id, "run-v");
    assert_eq!(served.paths, record("run-v").paths);
    // The check can fail: a served record altered by one figure no longer verifies.
    let mut altered = served.clone();
    altered.paths[0].tokens_per_s[0] += 1.0;
    assert!(altered.verify(&key).is_err());

    // No query parameters; and once retracted, the record is gone with the claim.
    assert_eq!(app.get(&format!("{path}?full=1")).await.status(), 400);
    assert_eq!(app.retract("run-v").await.status(), 200);
    let (status, body) = json(app.get(path).await).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (404, Some("claim_not_found"))
    );
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

#[tokio::test]
async fn public_bad_inputs() {
    let app = spawn().await;
    let cases: &[(&str, u16, &str, Option<&str>)] = &[
        (
            "/api/v1/claims?family=7B",
            400,
            "invalid_query",
            Some("family"),
        ),
        (
            "/api/v1/claims?gpu=rtx4090",
            400,
            "invalid_query",
            Some("gpu"),
        ),
        (
            "/api/v1/claims?level=best",
            400,
            "invalid_query",
            Some("level"),
        ),
        (
            "/api/v1/claims?sort=fast",
            400,
            "invalid_query",
            Some("sort"),
        ),
        ("/api/v1/models?x=1", 400, "invalid_query", Some("x")),
        ("/api/v1/gpus?x=1", 400, "invalid_query", Some("x")),
        (
            "/api/v1/sizing?family=nope",
            400,
            "invalid_query",
            Some("family"),
        ),
        ("/api/v1/sizing?fam=E4B", 400, "invalid_query", Some("fam")),
        ("/api/v1/nothing", 404, "not_found", None),
        ("/api/internal/nothing", 404, "not_found", None),
    ];
    for (path, status, code, field) in cases {
        let (got, body) = json(app.get(path).await).await;
        assert_eq!(got, *status, "{path}: {body}");
        assert_eq!(body["error"]["code"], *code, "{path}: {body}");
        assert_eq!(body["error"]["field"].as_str(), *field, "{path}: {body}");
    }
    // Wrong method: JSON 405.
    let r = app
        .client
        .delete(app.url("/api/v1/claims"))
        .send()
        .await
        .unwrap();
    let (status, body) = json(r).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (405, Some("method_not_allowed"))
    );
    // The catalog routes answer with content.
    let (_, models) = json(app.get("/api/v1/models").await).await;
    assert_eq!(models["repo_count"], 15);
    assert_eq!(models["families"].as_array().unwrap().len(), 5);
    assert_eq!(
        models["adjacent"]["repos"][0],
        "google/diffusiongemma-26B-A4B-it"
    );
    assert_eq!(models["families"][1]["profile"]["status"], "claim-ready");
    assert!(models["excluded"].as_array().unwrap().len() >= 3);
    let (_, gpus) = json(app.get("/api/v1/gpus").await).await;
    let ids: Vec<&str> = gpus["gpus"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["l4", "l40s", "a100-80gb", "h100-sxm", "h200"]);
    let (status, health) = json(app.get("/healthz").await).await;
    assert_eq!((status, health["status"].as_str()), (200, Some("ok")));
}

fn preview_body() -> Value {
    json!({
        "name": "Grace Hopper", "email": "grace@navy.example.com", "company": "Navy",
        "service_path": "report", "model_family": "E4B", "gpu": "l40s", "message": "Batch 8 please."
    })
}

#[tokio::test]
async fn preview_requests_validate_store_limit_and_export() {
    let app = spawn_with(|s| s.preview_rate_limit = 11).await;
    let post = |body: Value| {
        app.client
            .post(app.url("/api/v1/preview-requests"))
            .json(&body)
            .send()
    };
    let with = |k: &str, v: Value| {
        let mut b = preview_body();
        b[k] = v;
        b
    };
    let cases: Vec<(Value, u16, &str, Option<&str>)> = vec![
        (with("name", json!("")), 422, "invalid_field", Some("name")),
        (
            with("email", json!("grace@gmail.com")),
            422,
            "invalid_field",
            Some("email"),
        ),
        (
            with("email", json!("not-an-email")),
            422,
            "invalid_field",
            Some("email"),
        ),
        (
            with("company", json!("x".repeat(201))),
            422,
            "invalid_field",
            Some("company"),
        ),
        (
            with("service_path", json!("consulting")),
            422,
            "invalid_field",
            Some("service_path"),
        ),
        (
            with("model_family", json!("Qwen")),
            422,
            "invalid_field",
            Some("model_family"),
        ),
        (with("gpu", json!("tpu")), 422, "invalid_field", Some("gpu")),
        (
            with("message", json!("m".repeat(2001))),
            422,
            "invalid_field",
            Some("message"),
        ),
        (with("name", json!(5)), 400, "invalid_body", Some("name")),
        (
            with("phone", json!("555")),
            400,
            "invalid_body",
            Some("phone"),
        ),
    ];
    for (body, status, code, field) in cases {
        let (got, err) = json(post(body.clone()).await.unwrap()).await;
        assert_eq!(got, status, "{body}: {err}");
        assert_eq!(err["error"]["code"], code, "{err}");
        assert_eq!(err["error"]["field"].as_str(), field, "{err}");
    }
    let r = app
        .client
        .post(app.url("/api/v1/preview-requests"))
        .header("content-type", "text/plain")
        .body("hi")
        .send()
        .await
        .unwrap();
    assert_eq!(json(r).await.0, 415);

    // JSON and form both store; the honeypot answers the same but stores nothing.
    assert_eq!(post(preview_body()).await.unwrap().status(), 202);
    let form = [
        ("name", "Alan Turing"),
        ("email", "alan@bletchley.example.org"),
        ("company", "GC&CS"),
        ("service_path", "on-prem"),
        ("model_family", "undecided"),
        ("gpu", "h200"),
        ("message", "=cmd"),
    ];
    assert_eq!(
        app.client
            .post(app.url("/api/v1/preview-requests"))
            .form(&form)
            .send()
            .await
            .unwrap()
            .status(),
        202
    );
    assert_eq!(
        post(with("website", json!("http://spam.example")))
            .await
            .unwrap()
            .status(),
        202
    );

    let (_, list) = json(
        app.as_operator(Method::GET, "/api/internal/preview-requests", None)
            .await,
    )
    .await;
    let names: Vec<&str> = list["requests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["Alan Turing", "Grace Hopper"]);
    let r = app
        .as_operator(Method::GET, "/api/internal/preview-requests.csv", None)
        .await;
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/csv"));
    assert_eq!(r.headers()["cache-control"], "no-store");
    let csv = r.text().await.unwrap();
    assert!(csv.starts_with(
        "id,received_at,name,email,company,service_path,model_family,gpu,message\r\n"
    ));
    assert!(csv.contains("\"'=cmd\""), "formula neutralised: {csv}");
    assert_eq!(csv.lines().count(), 3);

    // 11 requests counted so far (8 refused as invalid, 3 received; bodies that do not parse are not counted)
    // against a limit of 11 per window: this one is refused with Retry-After.
    let r = post(preview_body()).await.unwrap();
    assert_eq!(r.status(), 429);
    let retry: u64 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=600).contains(&retry));
    assert_eq!(json(r).await.1["error"]["code"], "rate_limited");
}

/// Every internal route against every kind of credential.
#[tokio::test]
async fn auth_matrix_for_every_internal_route() {
    let app = spawn().await;
    assert_eq!(app.ingest(record("m")).await.status(), 201);
    let (cookie, csrf) = app.login().await;

    #[derive(Clone, Copy, Debug)]
    enum Cred {
        None,
        Garbage,
        Ingest,
        OperatorBearer,
        Session,
        SessionNoCsrf,
        SessionBadOrigin,
    }
    let routes: Vec<(Method, &str, Option<Value>, bool)> = vec![
        // (method, path, body, operator route)
        (Method::GET, "/api/internal/runs", None, true),
        (Method::GET, "/api/internal/runs/m", None, true),
        (
            Method::POST,
            "/api/internal/runs/m/promote",
            Some(json!({"level": "bogus", "reason": "x"})),
            true,
        ),
        (
            Method::POST,
            "/api/internal/runs/m/retract",
            Some(json!({"reason": "x"})),
            true,
        ),
        (Method::GET, "/api/internal/audit", None, true),
        (Method::GET, "/api/internal/preview-requests", None, true),
        (
            Method::GET,
            "/api/internal/preview-requests.csv",
            None,
            true,
        ),
        (
            Method::POST,
            "/api/internal/runs",
            Some(json!({"schema": "vkae.run.v1"})),
            false,
        ),
    ];
    for (method, path, body, operator_route) in &routes {
        for cred in [
            Cred::None,
            Cred::Garbage,
            Cred::Ingest,
            Cred::OperatorBearer,
            Cred::Session,
            Cred::SessionNoCsrf,
            Cred::SessionBadOrigin,
        ] {
            let mut req = app.client.request(method.clone(), app.url(path));
            if let Some(b) = body {
                req = req.json(b);
            }
            req = match cred {
                Cred::None => req,
                Cred::Garbage => req.bearer_auth("vkae_ingest_not-a-token"),
                Cred::Ingest => req.bearer_auth(&app.ingest_token),
                Cred::OperatorBearer => req.bearer_auth(&app.operator_token),
                Cred::Session => req
                    .header("cookie", &cookie)
                    .header("origin", &app.origin)
                    .header("x-csrf-token", &csrf),
                Cred::SessionNoCsrf => req.header("cookie", &cookie).header("origin", &app.origin),
                Cred::SessionBadOrigin => req
                    .header("cookie", &cookie)
                    .header("origin", "https://evil.example")
                    .header("x-csrf-token", &csrf),
            };
            let r = req.send().await.unwrap();
            assert_eq!(r.headers()["cache-control"], "no-store", "{path}");
            let (status, body) = if path.ends_with(".csv") && r.status() == 200 {
                (200, Value::Null)
            } else {
                json(r).await
            };
            let unsafe_method = *method != Method::GET;
            let expected: &[u16] = match (cred, operator_route) {
                (Cred::None | Cred::Garbage, _) => &[401],
                (Cred::Ingest, true) => &[403],
                (Cred::Ingest, false) => &[400], // authenticated; the record itself is malformed
                (
                    Cred::OperatorBearer
                    | Cred::Session
                    | Cred::SessionNoCsrf
                    | Cred::SessionBadOrigin,
                    false,
                ) => &[403],
                (Cred::SessionNoCsrf | Cred::SessionBadOrigin, true) if unsafe_method => &[403],
                // Authenticated operators get past auth: 200, or the route's own verdict on the body.
                (_, true) => &[200, 409, 422],
            };
            assert!(
                expected.contains(&status),
                "{method} {path} with {cred:?}: {status} {body}"
            );
            assert!(body["error"].is_null() || body["error"]["code"].is_string());
        }
    }
    // Login, whoami and logout.
    let r = app
        .client
        .post(app.url("/api/internal/session"))
        .json(&json!({"name": OPERATOR, "password": "wrong password!"}))
        .send()
        .await
        .unwrap();
    assert_eq!(json(r).await.0, 401);
    let r = app
        .client
        .post(app.url("/api/internal/session"))
        .header("origin", "https://evil.example")
        .json(&json!({"name": OPERATOR, "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(json(r).await.0, 403);
    let (_, me) = json(
        app.client
            .get(app.url("/api/internal/session"))
            .header("cookie", &cookie)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (me["operator"].as_str(), me["csrf_token"].as_str()),
        (Some(OPERATOR), Some(csrf.as_str()))
    );
    let r = app
        .client
        .delete(app.url("/api/internal/session"))
        .header("cookie", &cookie)
        .header("origin", &app.origin)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403, "logout needs the CSRF token");
    let r = app
        .client
        .delete(app.url("/api/internal/session"))
        .header("cookie", &cookie)
        .header("origin", &app.origin)
        .header("x-csrf-token", &csrf)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    assert!(r.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .contains("Max-Age=0"));
    let r = app
        .client
        .get(app.url("/api/internal/runs"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401, "the session is gone");
}

#[tokio::test]
async fn sessions_cookie_flags_renewal_form_csrf_and_idle_expiry() {
    let app = spawn_with(|s| s.session_idle_seconds = 2).await;
    let r = app
        .client
        .post(app.url("/api/internal/session"))
        .header("origin", &app.origin)
        .json(&json!({"name": OPERATOR, "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    let set_cookie = r.headers()["set-cookie"].to_str().unwrap().to_string();
    for flag in [
        "__Host-vkae_session=",
        "Secure",
        "HttpOnly",
        "SameSite=Strict",
        "Path=/",
    ] {
        assert!(set_cookie.contains(flag), "{set_cookie}");
    }
    let (first, csrf) = app.login().await;
    // A login presenting the old cookie gets a new session; the old one stops working.
    let r = app
        .client
        .post(app.url("/api/internal/session"))
        .header("origin", &app.origin)
        .header("cookie", &first)
        .json(&json!({"name": OPERATOR, "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    let second = r.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    assert_ne!(first, second);
    let r = app
        .client
        .get(app.url("/api/internal/runs"))
        .header("cookie", &first)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let _ = csrf;

    // A browser form posts the CSRF token as a field.
    assert_eq!(app.ingest(record("f")).await.status(), 201);
    let me: Value = app
        .client
        .get(app.url("/api/internal/session"))
        .header("cookie", &second)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = me["csrf_token"].as_str().unwrap();
    let r = app
        .client
        .post(app.url("/api/internal/runs/f/promote"))
        .header("cookie", &second)
        .header("origin", &app.origin)
        .form(&[
            ("level", "preview-smoke"),
            ("reason", "form post"),
            ("csrf_token", token),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = app
        .client
        .post(app.url("/api/internal/runs/f/retract"))
        .header("cookie", &second)
        .header("origin", &app.origin)
        .form(&[("reason", "form post"), ("csrf_token", "wrong")])
        .send()
        .await
        .unwrap();
    assert_eq!(json(r).await.1["error"]["code"], "csrf_mismatch");

    // Idle expiry: after more than 2 s without a request the session is gone.
    tokio::time::sleep(std::time::Duration::from_millis(3100)).await;
    let r = app
        .client
        .get(app.url("/api/internal/runs"))
        .header("cookie", &second)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
}

#[tokio::test]
async fn security_headers_and_openapi_cover_every_public_route() {
    let app = spawn().await;
    let r = app.get("/api/v1/claims").await;
    let h = r.headers();
    let csp = h["content-security-policy"].to_str().unwrap();
    assert!(
        csp.contains("default-src 'self'")
            && csp.contains("'wasm-unsafe-eval'")
            && csp.contains("frame-ancestors 'none'"),
        "{csp}"
    );
    assert_eq!(h["x-content-type-options"], "nosniff");
    assert_eq!(h["referrer-policy"], "strict-origin-when-cross-origin");
    assert_eq!(h["x-frame-options"], "DENY");
    assert_ne!(h["cache-control"], "no-store");

    // Compression when asked.
    let r = app
        .client
        .get(app.url("/api/v1/models"))
        .header("accept-encoding", "gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["content-encoding"], "gzip");

    let (status, doc) = json(app.get("/api/v1/openapi.json").await).await;
    assert_eq!(status, 200);
    assert_eq!(doc["openapi"], "3.1.0");
    let paths = doc["paths"].as_object().unwrap();
    for (method, path) in vkae_evidence::http::PUBLIC_ROUTES {
        let op = &paths
            .get(*path)
            .unwrap_or_else(|| panic!("{path} missing from OpenAPI"))[method.to_ascii_lowercase()];
        assert!(op.is_object(), "{method} {path} missing from OpenAPI");
        // A templated path is served by its own handler: with no such claim it answers its own 404.
        if path.contains('{') {
            let (status, body) = json(app.get(&path.replace("{run_id}", "none")).await).await;
            assert_eq!(
                (status, body["error"]["code"].as_str()),
                (404, Some("claim_not_found")),
                "{method} {path}: {body}"
            );
            continue;
        }
        // And the route is served (a GET answers 200; the POST answers a validation error, not 404/405).
        let r = app
            .client
            .request(
                Method::from_bytes(method.as_bytes()).unwrap(),
                app.url(path),
            )
            .json(&json!({}))
            .send()
            .await
            .unwrap();
        assert!(
            ![404, 405].contains(&r.status().as_u16()),
            "{method} {path}: {}",
            r.status()
        );
    }
    for (method, path, _) in vkae_evidence::http::INTERNAL_ROUTES {
        assert!(
            paths
                .get(*path)
                .is_some_and(|p| p[method.to_ascii_lowercase()].is_object()),
            "{method} {path} missing from OpenAPI"
        );
    }
    // Every documented public path is a known route (no stale entries).
    for path in paths.keys().filter(|p| !p.starts_with("/api/internal")) {
        assert!(
            vkae_evidence::http::PUBLIC_ROUTES
                .iter()
                .any(|(_, p)| p == path),
            "{path} documented but not routed"
        );
    }
}

#[tokio::test]
async fn append_only_in_sql_and_public_code_reads_only_the_view() {
    let app = spawn().await;
    assert_eq!(app.ingest(record("a")).await.status(), 201);
    for sql in [
        "UPDATE audit_log SET actor = 'x'",
        "DELETE FROM audit_log",
        "UPDATE runs SET record_json = '{}'",
        "DELETE FROM runs",
        "UPDATE lane_verdicts SET passed = 1",
        "DELETE FROM lane_verdicts",
    ] {
        let e = sqlx::query(sql)
            .execute(&app.state.db.writer)
            .await
            .unwrap_err();
        assert!(e.to_string().contains("append-only"), "{sql}: {e}");
    }
    let (wal,): (String,) = sqlx::query_as("PRAGMA journal_mode")
        .fetch_one(&app.state.db.writer)
        .await
        .unwrap();
    let (sync,): (i64,) = sqlx::query_as("PRAGMA synchronous")
        .fetch_one(&app.state.db.writer)
        .await
        .unwrap();
    let (fk,): (i64,) = sqlx::query_as("PRAGMA foreign_keys")
        .fetch_one(&app.state.db.writer)
        .await
        .unwrap();
    assert_eq!((wal.as_str(), sync, fk), ("wal", 2, 1));
    // The public module's SQL names only the public_claims view.
    let source = include_str!("../src/public.rs");
    let mut tables = Vec::new();
    for kw in ["FROM ", "JOIN "] {
        for (i, _) in source.match_indices(kw) {
            let name: String = source[i + kw.len()..]
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            tables.push(name);
        }
    }
    assert!(!tables.is_empty());
    assert!(tables.iter().all(|t| t == "public_claims"), "{tables:?}");
}

#[tokio::test]
async fn backup_is_a_consistent_copy() {
    let app = spawn().await;
    assert_eq!(app.ingest(record("b")).await.status(), 201);
    let target = app._dir.0.join("backup.db");
    app.state.db.backup(&target).await.unwrap();
    assert!(
        app.state.db.backup(&target).await.is_err(),
        "never overwrites"
    );
    let copy = vkae_evidence::db::Db::open(target.to_str().unwrap())
        .await
        .unwrap();
    assert_eq!(copy.integrity_check().await.unwrap(), "ok");
    let (n,): (i64,) = sqlx::query_as("SELECT count(*) FROM runs")
        .fetch_one(&copy.reader)
        .await
        .unwrap();
    assert_eq!(n, 1);
}

/// Bad inputs for the internal routes, sent by an authenticated operator: status, code and field.
#[tokio::test]
async fn internal_bad_inputs() {
    let app = spawn().await;
    assert_eq!(app.ingest(record("x")).await.status(), 201);
    let p = "/api/internal/runs/x/promote";
    let r = "/api/internal/runs/x/retract";
    let cases: Vec<(Method, &str, Option<Value>, u16, &str, Option<&str>)> = vec![
        (
            Method::POST,
            p,
            Some(json!({"level": "best", "reason": "r"})),
            422,
            "invalid_field",
            Some("level"),
        ),
        (
            Method::POST,
            p,
            Some(json!({"level": "vkae-path", "reason": "  "})),
            422,
            "invalid_field",
            Some("reason"),
        ),
        (
            Method::POST,
            p,
            Some(json!({"level": "vkae-path", "reason": "r".repeat(2001)})),
            422,
            "invalid_field",
            Some("reason"),
        ),
        (
            Method::POST,
            p,
            Some(json!({"level": "vkae-path"})),
            400,
            "invalid_body",
            Some("reason"),
        ),
        (
            Method::POST,
            p,
            Some(json!({"level": 3, "reason": "r"})),
            400,
            "invalid_body",
            Some("level"),
        ),
        (
            Method::POST,
            p,
            Some(json!({"level": "vkae-path", "reason": "r", "force": true})),
            400,
            "invalid_body",
            Some("force"),
        ),
        (
            Method::POST,
            "/api/internal/runs/nope/promote",
            Some(json!({"level": "vkae-path", "reason": "r"})),
            404,
            "not_found",
            None,
        ),
        (
            Method::POST,
            r,
            Some(json!({})),
            400,
            "invalid_body",
            Some("reason"),
        ),
        (
            Method::POST,
            r,
            Some(json!({"reason": "r"})),
            409,
            "not_promoted",
            None,
        ),
        (
            Method::POST,
            "/api/internal/runs/nope/retract",
            Some(json!({"reason": "r"})),
            404,
            "not_found",
            None,
        ),
        (
            Method::GET,
            "/api/internal/runs/nope",
            None,
            404,
            "not_found",
            None,
        ),
        (
            Method::GET,
            "/api/internal/audit?limit=0",
            None,
            400,
            "invalid_query",
            Some("limit"),
        ),
        (
            Method::GET,
            "/api/internal/audit?limit=many",
            None,
            400,
            "invalid_query",
            None,
        ),
        (
            Method::GET,
            "/api/internal/audit?page=2",
            None,
            400,
            "invalid_query",
            Some("page"),
        ),
        (
            Method::PUT,
            "/api/internal/runs",
            None,
            405,
            "method_not_allowed",
            None,
        ),
    ];
    for (method, path, body, status, code, field) in cases {
        let (got, err) = json(app.as_operator(method.clone(), path, body.clone()).await).await;
        assert_eq!(got, status, "{method} {path} {body:?}: {err}");
        assert_eq!(err["error"]["code"], code, "{method} {path}: {err}");
        assert_eq!(
            err["error"]["field"].as_str(),
            field,
            "{method} {path}: {err}"
        );
    }
    // Non-JSON bodies.
    let resp = app
        .client
        .post(app.url(p))
        .bearer_auth(&app.operator_token)
        .header("content-type", "text/plain")
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(
        json(resp).await.1["error"]["code"],
        "unsupported_media_type"
    );
    // Login inputs.
    let login_cases: Vec<(Value, u16, &str, Option<&str>)> = vec![
        (
            json!({"name": OPERATOR}),
            400,
            "invalid_body",
            Some("password"),
        ),
        (
            json!({"name": OPERATOR, "password": 1}),
            400,
            "invalid_body",
            Some("password"),
        ),
        (
            json!({"name": "nobody", "password": PASSWORD}),
            401,
            "unauthorized",
            None,
        ),
    ];
    for (body, status, code, field) in login_cases {
        let (got, err) = json(
            app.client
                .post(app.url("/api/internal/session"))
                .json(&body)
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(
            (
                got,
                err["error"]["code"].as_str(),
                err["error"]["field"].as_str()
            ),
            (status, Some(code), field),
            "{body}"
        );
    }
    // Nothing above changed the store: one run, unpromoted; only the ingest and the lane key in the audit log.
    let (_, audit) = json(
        app.as_operator(Method::GET, "/api/internal/audit", None)
            .await,
    )
    .await;
    assert_eq!(audit["entries"].as_array().unwrap().len(), 2);
}
