//! HTTP caching of public reads: a strong ETag from the promotion epoch and the body, 304 for a matching
//! If-None-Match, the public Cache-Control, and a new ETag (and body) once a promotion changes the epoch.

use crate::common::*;
use vkae_evidence::routes::cache::PUBLIC_CACHE_CONTROL;

async fn get_with(app: &TestApp, path: &str, if_none_match: Option<&str>) -> reqwest::Response {
    let mut request = app.client.get(app.url(path));
    if let Some(etag) = if_none_match {
        request = request.header("if-none-match", etag);
    }
    request.send().await.unwrap()
}

#[tokio::test]
async fn public_reads_carry_an_etag_and_answer_304_until_a_promotion() {
    let app = spawn().await;
    assert_eq!(app.ingest(record("cached")).await.status(), 201);
    for path in [
        "/api/v1/claims",
        "/api/v1/models",
        "/api/v1/gpus",
        "/api/v1/sizing",
        "/api/v1/openapi.json",
    ] {
        let r = get_with(&app, path, None).await;
        assert_eq!(r.status(), 200, "{path}");
        assert_eq!(r.headers()["cache-control"], PUBLIC_CACHE_CONTROL, "{path}");
        let etag = r.headers()["etag"].to_str().unwrap().to_string();
        // "<epoch>.<clock hour>-<digest>", strong (no W/ prefix).
        let inner = etag.trim_matches('"');
        let (epoch, digest) = inner.split_once('-').expect("epoch-digest");
        assert!(
            etag.starts_with('"')
                && etag.ends_with('"')
                && epoch.split('.').count() == 2
                && epoch.split('.').all(|n| n.parse::<i64>().is_ok())
                && digest.len() == 32,
            "a strong ETag: {etag}"
        );
        let first = r.text().await.unwrap();
        let again = get_with(&app, path, None).await;
        assert_eq!(again.headers()["etag"].to_str().unwrap(), etag, "{path}");
        assert_eq!(again.text().await.unwrap(), first, "{path}: the same bytes");
        let r = get_with(&app, path, Some(&etag)).await;
        assert_eq!(r.status(), 304, "{path}");
        assert_eq!(r.headers()["etag"].to_str().unwrap(), etag);
        assert!(r.text().await.unwrap().is_empty());
        let r = get_with(&app, path, Some("\"0-other\", W/\"x\"")).await;
        assert_eq!(r.status(), 200, "{path}: another validator");
    }
    let before = get_with(&app, "/api/v1/claims", None).await;
    let etag = before.headers()["etag"].to_str().unwrap().to_string();
    assert!(!before.text().await.unwrap().contains("cached"));
    assert_eq!(app.promote("cached").await.status(), 200);
    let after = get_with(&app, "/api/v1/claims", Some(&etag)).await;
    assert_eq!(after.status(), 200, "the promotion changed the epoch");
    let new_etag = after.headers()["etag"].to_str().unwrap().to_string();
    assert_ne!(new_etag, etag);
    assert!(after.text().await.unwrap().contains("cached"));
    assert_eq!(app.retract("cached").await.status(), 200);
    let retracted = get_with(&app, "/api/v1/claims", Some(&new_etag)).await;
    assert_eq!(retracted.status(), 200, "the retraction changed the epoch");
    assert!(!retracted.text().await.unwrap().contains("cached"));
    // Refusals are not cached and keep their JSON shape.
    let r = get_with(&app, "/api/v1/claims?family=", None).await;
    assert!(r.headers().get("etag").is_none());
    let r = get_with(&app, "/api/v1/claims/nope/record", None).await;
    assert_eq!(r.status(), 404);
    assert!(r.headers().get("etag").is_none());
}
