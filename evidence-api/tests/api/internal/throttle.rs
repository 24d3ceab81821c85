//! Login throttling and bounded password hashing: back-off per account and per client address (the same for
//! unknown names), a burst of parallel bogus logins that leaves the real operator able to log in, failed logins
//! in the audit log, and the absolute session lifetime.

use crate::common::*;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

/// A login from `client` (the server trusts X-Forwarded-For in these tests, so each test picks its clients).
async fn login_from(app: &TestApp, client: &str, name: &str, password: &str) -> reqwest::Response {
    app.client
        .post(app.url("/api/internal/session"))
        .header("origin", &app.origin)
        .header("x-forwarded-for", client)
        .json(&json!({ "name": name, "password": password }))
        .send()
        .await
        .unwrap()
}

async fn trusting_proxy() -> TestApp {
    spawn_with(|s| s.trust_forwarded_for = true).await
}

#[tokio::test]
async fn five_failures_then_back_off_alike_for_real_and_unknown_names() {
    let app = trusting_proxy().await;
    let mut refusals = Vec::new();
    for (name, client) in [(OPERATOR, "10.0.0.1"), ("nobody-at-all", "10.0.0.2")] {
        for attempt in 1..=5 {
            let (status, body) =
                json(login_from(&app, client, name, &format!("wrong-{attempt}")).await).await;
            assert_eq!(status, 401, "{name} attempt {attempt}: {body}");
        }
        let r = login_from(&app, client, name, "wrong-6").await;
        let retry_after = r.headers()["retry-after"].to_str().unwrap().to_string();
        let (status, body) = json(r).await;
        assert_eq!(status, 429, "{name}: {body}");
        assert_eq!(body["error"]["code"], "login_throttled");
        refusals.push((retry_after, body));
    }
    assert_eq!(
        refusals[0], refusals[1],
        "an unknown name is throttled exactly like a real one"
    );

    // The account backs off whichever address tries it, even with the right password ...
    let (status, _) = json(login_from(&app, "10.0.0.3", OPERATOR, PASSWORD).await).await;
    assert_eq!(status, 429);
    // ... and one address backs off whichever names it tries.
    let app = trusting_proxy().await;
    for attempt in 1..=5 {
        let (status, _) =
            json(login_from(&app, "10.0.0.9", &format!("guess-{attempt}"), "x").await).await;
        assert_eq!(status, 401);
    }
    let (status, _) = json(login_from(&app, "10.0.0.9", OPERATOR, PASSWORD).await).await;
    assert_eq!(status, 429, "the address is backing off");
    let (status, _) = json(login_from(&app, "10.0.0.10", OPERATOR, PASSWORD).await).await;
    assert_eq!(status, 200, "another address logs in");
}

#[tokio::test]
async fn back_off_ends_and_grows_and_a_success_clears_it() {
    let app = trusting_proxy().await;
    for attempt in 1..=5 {
        login_from(&app, "10.1.0.1", OPERATOR, &format!("wrong-{attempt}")).await;
    }
    let r = login_from(&app, "10.1.0.1", OPERATOR, PASSWORD).await;
    assert_eq!(r.status(), 429);
    assert_eq!(
        r.headers()["retry-after"],
        "1",
        "the first back-off is one second"
    );
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (status, _) = json(login_from(&app, "10.1.0.1", OPERATOR, "wrong-6").await).await;
    assert_eq!(status, 401, "checked again once the back-off has passed");
    let r = login_from(&app, "10.1.0.1", OPERATOR, PASSWORD).await;
    assert_eq!(
        r.headers()["retry-after"],
        "2",
        "each further failure doubles the wait"
    );
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert_eq!(
        login_from(&app, "10.1.0.1", OPERATOR, PASSWORD)
            .await
            .status(),
        200
    );
    // The success cleared the streak: one more failure is a plain 401.
    let (status, _) = json(login_from(&app, "10.1.0.1", OPERATOR, "wrong-7").await).await;
    assert_eq!(status, 401);
}

#[tokio::test]
async fn the_operator_logs_in_during_a_burst_of_64_parallel_bogus_logins() {
    let app = trusting_proxy().await;
    let started = Instant::now();
    let burst: Vec<_> = (0..64)
        .map(|i| {
            let client = app.client.clone();
            let url = app.url("/api/internal/session");
            let origin = app.origin.clone();
            tokio::spawn(async move {
                client
                    .post(url)
                    .header("origin", origin)
                    .header("x-forwarded-for", format!("192.0.2.{}", i % 8))
                    .json(&json!({ "name": format!("bogus-{i}"), "password": "not the password" }))
                    .send()
                    .await
                    .map(|r| r.status().as_u16())
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(50)).await;
    let mut operator_status = 0;
    // Refused fast while every hashing slot is busy (503 + Retry-After); the operator retries as told.
    while started.elapsed() < Duration::from_secs(10) {
        let r = login_from(&app, "198.51.100.7", OPERATOR, PASSWORD).await;
        operator_status = r.status().as_u16();
        if operator_status != 503 {
            break;
        }
        assert_eq!(r.headers()["retry-after"], "1");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let operator_took = started.elapsed();
    assert_eq!(operator_status, 200, "after {operator_took:?}");
    assert!(operator_took < Duration::from_secs(10), "{operator_took:?}");
    let mut statuses = std::collections::BTreeMap::<u16, u32>::new();
    for attempt in burst {
        *statuses.entry(attempt.await.unwrap().unwrap()).or_default() += 1;
    }
    assert!(
        statuses.keys().all(|s| [401, 429, 503].contains(s)),
        "bogus logins are refused, never timed out: {statuses:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "the burst ends promptly: {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn failed_logins_are_audited_with_the_client_address() {
    let app = trusting_proxy().await;
    login_from(&app, "203.0.113.5", OPERATOR, "wrong password!").await;
    login_from(&app, "203.0.113.6", "nobody", "whatever it is").await;
    let audit: Value = app
        .as_operator(reqwest::Method::GET, "/api/internal/audit", None)
        .await
        .json()
        .await
        .unwrap();
    let failed: Vec<&Value> = audit["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .filter(|e| e["action"] == "login_failed")
        .collect();
    assert_eq!(failed.len(), 2, "{audit}");
    let detail = |e: &Value| -> Value {
        match &e["detail"] {
            Value::String(s) => serde_json::from_str(s).unwrap(),
            other => other.clone(),
        }
    };
    let details: Vec<Value> = failed.iter().map(|e| detail(e)).collect();
    assert!(
        details
            .iter()
            .any(|d| d["client"] == "203.0.113.5" && d["name"] == OPERATOR),
        "{details:?}"
    );
    assert!(
        details
            .iter()
            .any(|d| d["client"] == "203.0.113.6" && d["name"] == "nobody"),
        "{details:?}"
    );
    assert!(failed.iter().all(|e| e["actor"] == "security"));
}

#[tokio::test]
async fn a_session_ends_at_its_absolute_lifetime_however_active() {
    let app = spawn_with(|s| s.session_absolute_seconds = 2).await;
    let (cookie, _) = app.login().await;
    let whoami = |cookie: String| {
        let app = &app;
        async move {
            app.client
                .get(app.url("/api/internal/session"))
                .header("cookie", cookie)
                .send()
                .await
                .unwrap()
                .status()
        }
    };
    // Active all along: well inside the idle limit each time.
    for _ in 0..2 {
        assert_eq!(whoami(cookie.clone()).await, 200);
        tokio::time::sleep(Duration::from_millis(1100)).await;
    }
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert_eq!(
        whoami(cookie.clone()).await,
        401,
        "older than the absolute lifetime"
    );
}
