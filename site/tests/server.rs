//! The whole `vkae serve` router (evidence API + site) driven in-process over a fresh SQLite file: every page
//! renders from the real store, the blocked-number rule holds, and server functions refuse what they must.

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use tower::ServiceExt;
use vkae_evidence::{AppState, Settings};

struct Site {
    router: axum::Router,
    state: AppState,
    _dir: TempDir,
}

struct TempDir(std::path::PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

async fn site() -> Site {
    let dir = std::env::temp_dir().join(format!(
        "vkae-site-test-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let settings = Settings::for_test(dir.join("vkae.db").to_string_lossy().to_string());
    let state = AppState::open(settings).await.unwrap();
    let site_settings = vkae_site::server::SiteSettings::from_env();
    let routes: vkae_evidence::SiteRoutes =
        Box::new(move |state| vkae_site::server::routes(state, site_settings));
    Site {
        router: vkae_evidence::routes::router(state.clone(), Some(routes)),
        state,
        _dir: TempDir(dir),
    }
}

async fn get(site: &Site, path: &str) -> (StatusCode, String, axum::http::HeaderMap) {
    let response = site
        .router
        .clone()
        .oneshot(Request::get(path).body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let body = axum::body::to_bytes(response.into_body(), 4 << 20)
        .await
        .unwrap();
    (status, String::from_utf8(body.to_vec()).unwrap(), headers)
}

#[tokio::test]
async fn every_page_renders_from_the_store() {
    let site = site().await;
    for (path, title) in [
        ("/", "VKAE — a model-specialised engine for Gemma 4"),
        ("/models", "Gemma 4 model catalog — VKAE"),
        ("/sizing", "GPU sizing and family speed — VKAE"),
        ("/evidence", "Measured benchmark evidence — VKAE"),
        ("/engine", "The VKAE engine stack"),
        ("/preview", "Request private preview — VKAE"),
        ("/internal", "Evidence promotion — VKAE internal"),
    ] {
        let (status, html, headers) = get(&site, path).await;
        assert_eq!(status, StatusCode::OK, "{path}: {html}");
        assert!(
            html.contains(&format!("<title>{title}</title>")),
            "{path}: {html}"
        );
        assert!(html.contains("<meta name=\"description\""), "{path}");
        let csp = headers[header::CONTENT_SECURITY_POLICY].to_str().unwrap();
        if vkae_site::server::PUBLIC_PAGES.contains(&path) {
            // A kept page: the CSP names the hash of every inline script, and no nonce.
            assert!(!csp.contains("'nonce-"), "{path}: {csp}");
            let scripts = vkae_evidence::routes::cache::inline_scripts(&html);
            assert_eq!(
                vkae_evidence::routes::cache::csp_with_script_hashes("script-src 'self'", &html)
                    .matches("'sha256-")
                    .count()
                    .min(1),
                scripts.len().min(1),
                "{path}"
            );
            let expected = vkae_evidence::routes::cache::csp_with_script_hashes(
                &site.state.settings.csp,
                &html,
            );
            assert_eq!(csp, expected, "{path}");
            assert!(headers.contains_key(header::ETAG), "{path}");
        } else {
            // The CSP names the nonce Leptos puts on its inline scripts.
            let nonce = csp
                .split("'nonce-")
                .nth(1)
                .and_then(|r| r.split('\'').next())
                .expect("nonce in CSP");
            for script in html
                .match_indices("<script")
                .map(|(i, _)| &html[i..i + 80.min(html.len() - i)])
            {
                assert!(
                    script.contains(&format!("nonce=\"{nonce}\"")),
                    "{path}: script without the nonce: {script}"
                );
            }
        }
        // Only pages with islands load the bundle.
        let loads_wasm = html.contains("vkae_site.js");
        assert_eq!(
            loads_wasm,
            vkae_site::PAGES_WITH_ISLANDS.contains(&path),
            "{path}"
        );
    }
}

#[tokio::test]
async fn an_unknown_path_is_a_404_page_and_unknown_api_paths_stay_json() {
    let site = site().await;
    let (status, html, _) = get(&site, "/no-such-page").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(html.contains("Page not found"), "{html}");
    let (status, body, _) = get(&site, "/api/v1/no-such-route").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(body.starts_with('{'), "{body}");
}

#[tokio::test]
async fn a_store_that_cannot_answer_shows_a_clear_state_not_a_panic() {
    let site = site().await;
    site.state.db.close().await;
    for path in ["/", "/evidence", "/sizing"] {
        let (status, html, _) = get(&site, path).await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "{path}");
        assert!(html.contains("Data unavailable"), "{path}: {html}");
        assert!(!html.contains("tok/s"), "{path}");
    }
    // A page that needs no data still renders.
    let (status, _, _) = get(&site, "/engine").await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn fresh_store_shows_no_claim_and_blocks_porting_tracks() {
    let site = site().await;
    let (_, home, _) = get(&site, "/").await;
    assert!(home.contains("id=\"no-claim\""), "{home}");
    assert!(!home.contains("tok/s"));
    // Catalog counts come from content/: 15 repos in 5 families.
    assert!(home.contains("<strong>15</strong>") && home.contains("<strong>5</strong>"));
    let (_, evidence, _) = get(&site, "/evidence").await;
    assert_eq!(
        evidence.matches("class=\"blocked-row\"").count(),
        4,
        "{evidence}"
    );
    assert_eq!(
        evidence
            .matches("No promoted run at this level yet.")
            .count(),
        4
    );
    let (_, models, _) = get(&site, "/models").await;
    assert_eq!(models.matches("<li><code>google/gemma-4-").count(), 15);
    assert_eq!(models.matches("badge ready").count(), 1);
    let (_, sizing, _) = get(&site, "/sizing").await;
    assert!(sizing.contains("id=\"no-measured\""));
    assert!(
        sizing.contains("planning\n"),
        "the server draws the chart for the first paint"
    );
    assert!(!sizing.contains("tok/s measured"));
}

#[tokio::test]
async fn internal_needs_a_login_and_the_csv_export_is_refused_without_one() {
    let site = site().await;
    let (_, internal, headers) = get(&site, "/internal").await;
    assert_eq!(headers[header::CACHE_CONTROL], "no-store");
    assert!(internal.contains("id=\"login-form\""));
    assert!(!internal.contains("Ingested runs"));
    let (status, _, headers) = get(&site, "/internal/preview-requests.csv").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(headers[header::CACHE_CONTROL], "no-store");
    let (_, _, headers) = get(&site, "/models").await;
    assert_ne!(
        headers.get(header::CACHE_CONTROL).map(|v| v.as_bytes()),
        Some(&b"no-store"[..]),
        "public pages stay cacheable"
    );
}

#[tokio::test]
async fn server_functions_refuse_other_origins_and_missing_sessions() {
    let site = site().await;
    let post = |path: &str, origin: Option<&str>, body: &str| {
        let mut request =
            Request::post(path).header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
        if let Some(origin) = origin {
            request = request.header(header::ORIGIN, origin);
        }
        site.router
            .clone()
            .oneshot(request.body(Body::from(body.to_string())).unwrap())
    };
    let login = post(
        "/_site/login",
        Some("https://evil.example"),
        "name=a&password=b",
    )
    .await
    .unwrap();
    assert_eq!(login.status(), StatusCode::FORBIDDEN);
    let login = post("/_site/login", None, "name=a&password=b")
        .await
        .unwrap();
    assert_eq!(
        login.status(),
        StatusCode::FORBIDDEN,
        "a login without Origin is refused"
    );
    let promote = post(
        "/_site/promote",
        Some("http://127.0.0.1:8080"),
        "run_id=x&level=vkae-path&reason=r&csrf=t",
    )
    .await
    .unwrap();
    assert_eq!(promote.status(), StatusCode::UNAUTHORIZED);
    let preview = post(
        "/_site/preview-request",
        Some("https://evil.example"),
        "input[name]=a",
    )
    .await
    .unwrap();
    assert_eq!(preview.status(), StatusCode::FORBIDDEN);
}

async fn post_form(
    site: &Site,
    path: &str,
    body: &str,
) -> (StatusCode, String, axum::http::HeaderMap) {
    let request = Request::post(path)
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header(header::ORIGIN, "http://127.0.0.1:8080")
        .body(Body::from(body.to_string()))
        .unwrap();
    let response = site.router.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let body = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .unwrap();
    (status, String::from_utf8_lossy(&body).to_string(), headers)
}

#[tokio::test]
async fn server_functions_with_missing_arguments_are_bad_requests() {
    let site = site().await;
    for (path, body) in [
        ("/_site/retract", "run_id=x&reason=r"),
        ("/_site/promote", "run_id=x"),
        ("/_site/login", "name=a"),
        ("/_site/logout", ""),
    ] {
        let (status, text, headers) = post_form(&site, path, body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{path} {body:?}: {text}");
        assert_eq!(headers[header::CACHE_CONTROL], "no-store", "{path}");
    }
}

#[tokio::test]
async fn site_logins_back_off_after_five_failures() {
    let site = site().await;
    vkae_evidence::auth::add_operator(&site.state.db.writer, "ada", "correct horse battery")
        .await
        .unwrap();
    for attempt in 1..=5 {
        let (status, text, _) = post_form(
            &site,
            "/_site/login",
            &format!("name=ada&password=wrong-{attempt}"),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "attempt {attempt}: {text}");
        assert!(text.contains("do not match"), "{text}");
    }
    // Backing off: even the right password is not checked now.
    let (status, text, headers) = post_form(
        &site,
        "/_site/login",
        "name=ada&password=correct+horse+battery",
    )
    .await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{text}");
    assert!(text.contains("Too many login attempts"), "{text}");
    assert!(!headers.contains_key(header::SET_COOKIE));
    let retry: u64 = headers[header::RETRY_AFTER]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=900).contains(&retry), "{retry}");
}

#[tokio::test]
async fn public_pages_are_kept_per_epoch_with_an_etag_and_operator_pages_never() {
    let site = site().await;
    let (_, no_claim, headers) = get(&site, "/evidence").await;
    let evidence_etag = headers[header::ETAG].to_str().unwrap().to_string();
    let (status, first, headers) = get(&site, "/sizing").await;
    assert_eq!(status, StatusCode::OK);
    let etag = headers[header::ETAG].to_str().unwrap().to_string();
    assert_eq!(
        headers[header::CACHE_CONTROL],
        "no-cache",
        "browsers revalidate each visit"
    );
    let (_, second, headers) = get(&site, "/sizing").await;
    assert_eq!(
        second, first,
        "served from memory: the same bytes, nonce included"
    );
    assert_eq!(headers[header::ETAG].to_str().unwrap(), etag);
    let response = site
        .router
        .clone()
        .oneshot(
            Request::get("/sizing")
                .header(header::IF_NONE_MATCH, &etag)
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NOT_MODIFIED);
    let (_, _, headers) = get(&site, "/internal").await;
    assert!(!headers.contains_key(header::ETAG));
    assert_eq!(headers[header::CACHE_CONTROL], "no-store");
    let (_, a, _) = get(&site, "/internal").await;
    let (_, b, _) = get(&site, "/internal").await;
    assert_ne!(a, b, "operator pages render each time (a fresh nonce)");

    // A promotion is a new epoch: the kept page is rendered again and shows the claim.
    use vkae_evidence::store::{self, Actor};
    let (key, public) = vkae_record::keygen();
    store::add_lane_key(
        &site.state.db,
        &Actor::Cli,
        "lab",
        &vkae_record::encode_verifying_key(&public),
    )
    .await
    .unwrap();
    let mut record = vkae_record::RunRecord::parse(vkae_record::SAMPLE_RECORD.as_bytes()).unwrap();
    record.run_id = "epoch-run".into();
    // The E4B profile's declared baseline (content/profiles.toml), so the record can be promoted.
    for p in &mut record.paths {
        if p.role == vkae_record::Role::Baseline {
            p.name = "hf-transformers-static-cudagraph".into();
        }
    }
    record.sign("lab", &key).unwrap();
    store::ingest(
        &site.state.db,
        &site.state.content,
        &Actor::Cli,
        &record.to_json_bytes(),
        1 << 20,
    )
    .await
    .unwrap();
    let operator =
        vkae_evidence::auth::add_operator(&site.state.db.writer, "ada", "correct horse battery")
            .await
            .unwrap();
    vkae_evidence::service::promote(&site.state, &operator, "epoch-run", "vkae-path", "reviewed")
        .await
        .unwrap();
    let response = site
        .router
        .clone()
        .oneshot(
            Request::get("/evidence")
                .header(header::IF_NONE_MATCH, &evidence_etag)
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_ne!(
        response.headers()[header::ETAG].to_str().unwrap(),
        evidence_etag
    );
    let body = axum::body::to_bytes(response.into_body(), 4 << 20)
        .await
        .unwrap();
    let html = String::from_utf8(body.to_vec()).unwrap();
    assert!(html.contains("epoch-run") && !no_claim.contains("epoch-run"));
}
