//! Who may call each internal route.

use crate::common::*;
use reqwest::Method;
use serde_json::{json, Value};

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
