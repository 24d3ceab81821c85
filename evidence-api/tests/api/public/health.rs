//! `/healthz`, `/api/v1/openapi.json` and the headers every public route sends.

use crate::common::*;
use reqwest::Method;
use serde_json::json;

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
    for (method, path) in vkae_evidence::routes::PUBLIC_ROUTES {
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
    for (method, path, _) in vkae_evidence::routes::INTERNAL_ROUTES {
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
            vkae_evidence::routes::PUBLIC_ROUTES
                .iter()
                .any(|(_, p)| p == path),
            "{path} documented but not routed"
        );
    }
}
