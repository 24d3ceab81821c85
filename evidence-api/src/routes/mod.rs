//! HTTP: the router, per URL space. Handlers are thin: they parse, authenticate and call [`crate::service`].
//!
//! - [`public`]: `/healthz` and `/api/v1/*` (no authentication; only promoted claims and catalog data).
//! - [`internal`]: `/api/internal/*` (ingest token, operator token or operator session).
//! - [`extract`]: query and body parsing, client keys, operator authentication, JSON documents.
//! - [`cache`]: public reads built once per promotion epoch, with ETag and 304.
//! - [`errors`]: the one JSON error shape for every failure under `/api/` and `/healthz`.

pub mod cache;
pub mod errors;
pub mod extract;
pub mod internal;
pub mod public;

use crate::state::AppState;
use axum::http::{header, HeaderName, HeaderValue, StatusCode};
use axum::middleware;
use axum::Router;
use tower_http::compression::CompressionLayer;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

pub use public::health::OPENAPI;

/// Every public route as (method, path template); a test checks each is routed and in the OpenAPI document.
pub const PUBLIC_ROUTES: &[(&str, &str)] = &[
    ("GET", "/healthz"),
    ("GET", "/api/v1/openapi.json"),
    ("GET", "/api/v1/claims"),
    ("GET", "/api/v1/claims/{run_id}/record"),
    ("GET", "/api/v1/models"),
    ("GET", "/api/v1/gpus"),
    ("GET", "/api/v1/sizing"),
    ("POST", "/api/v1/preview-requests"),
];

/// Every internal route and what it accepts.
pub const INTERNAL_ROUTES: &[(&str, &str, &str)] = &[
    ("POST", "/api/internal/runs", "ingest token"),
    ("GET", "/api/internal/runs", "operator"),
    ("GET", "/api/internal/runs/{run_id}", "operator"),
    ("POST", "/api/internal/runs/{run_id}/promote", "operator"),
    ("POST", "/api/internal/runs/{run_id}/retract", "operator"),
    ("GET", "/api/internal/audit", "operator"),
    ("GET", "/api/internal/preview-requests", "operator"),
    ("GET", "/api/internal/preview-requests.csv", "operator"),
    ("POST", "/api/internal/session", "name + password"),
    ("GET", "/api/internal/session", "operator session"),
    ("DELETE", "/api/internal/session", "operator session"),
];

/// Routes the site adds beside the API (pages, server functions, assets); they share the API's middleware.
pub type SiteRoutes = Box<dyn FnOnce(AppState) -> Router + Send>;

/// The whole application router: the API, the site's routes (if any) beside it, and the middleware.
pub fn router(state: AppState, site: Option<SiteRoutes>) -> Router {
    let mut app = public::router()
        .merge(internal::router())
        .with_state(state.clone());
    if let Some(site) = site {
        app = app.merge(site(state.clone()));
    }
    let settings = &state.settings;
    let csp = HeaderValue::from_str(&settings.csp)
        .unwrap_or_else(|_| HeaderValue::from_static(crate::settings::DEFAULT_CSP));
    // Listed innermost first. The error mapping sits outside the body limit and the timeout, so their 413 and
    // 408 get the one JSON shape too, and inside compression, which it could not read through.
    app.layer(RequestBodyLimitLayer::new(settings.max_body_bytes))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            settings.request_timeout,
        ))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            cache::public_reads,
        ))
        .layer(middleware::from_fn(errors::json_errors))
        .layer(middleware::from_fn(errors::no_store_internal))
        .layer(CompressionLayer::new())
        .layer(SetResponseHeaderLayer::if_not_present(
            header::CONTENT_SECURITY_POLICY,
            csp,
        ))
        .layer(SetResponseHeaderLayer::overriding(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            header::X_FRAME_OPTIONS,
            HeaderValue::from_static("DENY"),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            header::REFERRER_POLICY,
            HeaderValue::from_static("strict-origin-when-cross-origin"),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            HeaderName::from_static("cross-origin-opener-policy"),
            HeaderValue::from_static("same-origin"),
        ))
        .layer(TraceLayer::new_for_http())
}
