//! Bad inputs on the internal routes (runs, audit, session) from an authenticated operator.

use crate::common::*;
use reqwest::Method;
use serde_json::{json, Value};

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
    // Nothing above changed the store: one run, unpromoted; in the audit log only the ingest, the lane key and
    // the one failed login (a security event).
    let (_, audit) = json(
        app.as_operator(Method::GET, "/api/internal/audit", None)
            .await,
    )
    .await;
    let entries = audit["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 3, "{audit}");
    assert_eq!(
        (entries[0]["actor"].as_str(), entries[0]["action"].as_str()),
        (Some("security"), Some("login_failed")),
        "{audit}"
    );
}
