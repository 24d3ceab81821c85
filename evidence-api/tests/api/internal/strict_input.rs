//! Strict input at the edge: one JSON object per body (no trailing data, no arrays), 415 for an ingest that is
//! not JSON (audited with its reason), and the one JSON error shape with `no-store` for refusals raised outside
//! the handlers (the body limit).

use crate::common::*;
use serde_json::{json, Value};

async fn post_raw(app: &TestApp, path: &str, content_type: &str, body: &str) -> reqwest::Response {
    app.client
        .post(app.url(path))
        .header("origin", &app.origin)
        .header("content-type", content_type)
        .body(body.to_string())
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn json_bodies_are_one_object_with_nothing_after_it() {
    let app = spawn().await;
    let login = format!(r#"{{"name":"{OPERATOR}","password":"{PASSWORD}"}}"#);
    for body in [
        format!("{login} trailing"),
        format!("{login}{login}"),
        format!(r#"["{OPERATOR}","{PASSWORD}"]"#),
        "\"a string\"".to_string(),
    ] {
        let (status, err) =
            json(post_raw(&app, "/api/internal/session", "application/json", &body).await).await;
        assert_eq!(status, 400, "{body}: {err}");
        assert_eq!(err["error"]["code"], "invalid_body", "{body}");
    }
    let (status, _) = json(
        post_raw(
            &app,
            "/api/internal/session",
            "application/json",
            &format!(" {login}\n"),
        )
        .await,
    )
    .await;
    assert_eq!(status, 200, "whitespace around the object is fine");

    // The preview form read an array positionally and stored it.
    let preview = r#"["Ada","ada@example.com","Engines","report","E4B","h200","hello",""]"#;
    let (status, err) = json(
        post_raw(
            &app,
            "/api/v1/preview-requests",
            "application/json",
            preview,
        )
        .await,
    )
    .await;
    assert_eq!(status, 400, "{err}");
    let stored: Value = app
        .as_operator(reqwest::Method::GET, "/api/internal/preview-requests", None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        stored["requests"].as_array().map(Vec::len),
        Some(0),
        "{stored}"
    );
}

#[tokio::test]
async fn an_ingest_that_is_not_json_is_415_and_audited() {
    let app = spawn().await;
    let bytes = signed(record("plain"), &app.key);
    for content_type in [
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
        None,
    ] {
        let mut request = app
            .client
            .post(app.url("/api/internal/runs"))
            .bearer_auth(&app.ingest_token)
            .body(bytes.clone());
        if let Some(ct) = content_type {
            request = request.header("content-type", ct);
        }
        let (status, err) = json(request.send().await.unwrap()).await;
        assert_eq!(status, 415, "{content_type:?}: {err}");
        assert_eq!(err["error"]["code"], "unsupported_media_type");
    }
    let (status, _) = json(
        app.as_operator(reqwest::Method::GET, "/api/internal/runs/plain", None)
            .await,
    )
    .await;
    assert_eq!(status, 404, "nothing stored");
    // A refused record is audited with its reason too.
    let mut unsigned = record("unsigned");
    unsigned.signature = None;
    let r = app.ingest_bytes(unsigned.to_json_bytes()).await;
    assert_eq!(r.status(), 422);
    let audit: Value = app
        .as_operator(reqwest::Method::GET, "/api/internal/audit", None)
        .await
        .json()
        .await
        .unwrap();
    let refused: Vec<&Value> = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "ingest_refused")
        .collect();
    assert_eq!(refused.len(), 4, "{audit}");
    assert!(
        refused
            .iter()
            .any(|e| e["detail"]["code"] == "unsupported_media_type"),
        "{audit}"
    );
    assert!(
        refused
            .iter()
            .any(|e| e["detail"]["code"] != "unsupported_media_type"
                && e["detail"]["reason"]
                    .as_str()
                    .is_some_and(|r| !r.is_empty())),
        "{audit}"
    );
}

#[tokio::test]
async fn an_oversized_body_is_the_json_413_with_no_store() {
    let app = spawn_with(|s| s.max_body_bytes = 1024).await;
    let big = format!(r#"{{"name":"{}","password":"x"}}"#, "a".repeat(4096));
    for path in ["/api/internal/session", "/api/v1/preview-requests"] {
        let r = post_raw(&app, path, "application/json", &big).await;
        let cache = r.headers().get("cache-control").cloned();
        assert!(
            r.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("application/json"),
            "{path}"
        );
        let (status, err) = json(r).await;
        assert_eq!(status, 413, "{path}: {err}");
        assert_eq!(err["error"]["code"], "too_large", "{path}");
        if path.starts_with("/api/internal/") {
            assert_eq!(cache.unwrap(), "no-store");
        }
    }
    let _ = json!({});
}
