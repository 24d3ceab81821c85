//! `POST /api/v1/preview-requests` and its internal list and CSV export.

use crate::common::*;
use reqwest::Method;
use serde_json::{json, Value};

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
