//! `/api/internal/session`: cookie flags, renewal, form CSRF, idle expiry.

use crate::common::*;
use serde_json::{json, Value};

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
