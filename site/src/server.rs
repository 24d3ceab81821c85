//! The site's half of `vkae serve`: the Leptos pages, their server functions, the CSS and the WebAssembly
//! bundle, as one axum router that `vkae_evidence::cli` merges next to the JSON API on the same port.

use crate::{App, PAGES_WITH_ISLANDS};
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use leptos::prelude::*;
use leptos_axum::{generate_route_list, LeptosRoutes};
use leptos_meta::MetaTags;
use std::path::PathBuf;
use vkae_evidence::{service, AppState};

/// The stylesheet, compiled into the binary so pages are styled even before the WebAssembly is built.
const CSS: &str = include_str!("../style/site.css");
/// Served under a versioned path so browsers may cache it for long.
pub const CSS_HREF: &str = concat!("/assets/site-", env!("CARGO_PKG_VERSION"), ".css");

/// Where the built bundle lives (`scripts/build-site` writes `<site_root>/pkg`).
#[derive(Clone, Debug)]
pub struct SiteSettings {
    pub site_root: PathBuf,
}

impl SiteSettings {
    /// `VKAE_SITE_ROOT` if set, else the `site/` folder of this checkout.
    pub fn from_env() -> Self {
        let site_root = std::env::var_os("VKAE_SITE_ROOT")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")));
        SiteSettings { site_root }
    }
}

/// The HTML document around every page. Only pages with islands load the WebAssembly bundle. Leptos writes a
/// few small inline scripts (its resource bookkeeping, and the module script that starts the islands): a
/// rendered page names a fresh nonce for them in its Content-Security-Policy; a public page kept by the page
/// cache is served with the hashes of those scripts instead (`vkae_evidence::routes::cache`).
pub fn shell(options: LeptosOptions) -> impl IntoView {
    let path = use_context::<http::request::Parts>()
        .map(|p| p.uri.path().to_string())
        .unwrap_or_default();
    let with_islands = PAGES_WITH_ISLANDS.contains(&path.as_str());
    leptos::nonce::provide_nonce();
    let csp = use_context::<AppState>()
        .map(|s| s.settings.csp.clone())
        .unwrap_or_default();
    if let (Some(nonce), Some(response)) = (
        leptos::nonce::use_nonce(),
        use_context::<leptos_axum::ResponseOptions>(),
    ) {
        let csp = csp.replacen(
            "script-src 'self'",
            &format!("script-src 'self' 'nonce-{}'", nonce.as_inner()),
            1,
        );
        if let Ok(value) = http::HeaderValue::from_str(&csp) {
            response.insert_header(header::CONTENT_SECURITY_POLICY, value);
        }
    }
    view! {
        <!DOCTYPE html>
        <html lang="en">
            <head>
                <meta charset="utf-8" />
                <meta name="viewport" content="width=device-width, initial-scale=1" />
                <meta name="color-scheme" content="light" />
                <link rel="stylesheet" href=CSS_HREF />
                <link rel="icon" href="data:," />
                {with_islands.then(|| view! { <HydrationScripts options=options.clone() islands=true /> })}
                <MetaTags />
            </head>
            <body>
                <App />
            </body>
        </html>
    }
}

/// The site's routes, ready to merge into the API's router.
pub fn routes(state: AppState, settings: SiteSettings) -> Router {
    let options = LeptosOptions::builder()
        .output_name("vkae_site")
        .site_root(settings.site_root.to_string_lossy().to_string())
        .site_pkg_dir("pkg")
        .build();
    let pkg = settings.site_root.join("pkg");
    let context = {
        let state = state.clone();
        move || provide_context(state.clone())
    };
    let app = {
        let options = options.clone();
        move || shell(options.clone())
    };
    // Any other path renders the site's "not found" page with status 404.
    let not_found = leptos_axum::render_app_to_stream_with_context(context.clone(), app.clone());
    Router::new()
        .leptos_routes_with_context(&options, generate_route_list(App), context, app)
        .fallback(move |request: axum::extract::Request| not_found(request))
        .route(CSS_HREF, get(css))
        .route(
            "/internal/preview-requests.csv",
            get(inbox_csv).with_state(state.clone()),
        )
        .nest_service(
            "/pkg",
            tower_http::services::ServeDir::new(pkg).precompressed_gzip(),
        )
        .with_state(options)
        .layer(axum::middleware::from_fn_with_state(
            (state, is_public_page as fn(&str) -> bool),
            vkae_evidence::routes::cache::public_pages,
        ))
        .layer(axum::middleware::from_fn(bad_arguments_are_client_errors))
        .layer(axum::middleware::from_fn(no_store_for_private))
}

/// A server function whose arguments are missing or do not parse is answered 500 by Leptos, before the
/// function runs: that is the caller's mistake, so it becomes 400 with the same body.
async fn bad_arguments_are_client_errors(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let server_fn = request.uri().path().starts_with("/_site/");
    let response = next.run(request).await;
    if !server_fn
        || response.status() != StatusCode::INTERNAL_SERVER_ERROR
        || !response.headers().contains_key("serverfnerror")
    {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, 64 * 1024).await else {
        return (StatusCode::INTERNAL_SERVER_ERROR, "").into_response();
    };
    let argument_error = ["Args|", "MissingArg|", "Deserialization|"]
        .iter()
        .any(|prefix| bytes.starts_with(prefix.as_bytes()));
    if argument_error {
        parts.status = StatusCode::BAD_REQUEST;
    }
    Response::from_parts(parts, axum::body::Body::from(bytes))
}

/// The pages anyone may see, rendered once per promotion epoch and served from memory (operator pages never).
pub const PUBLIC_PAGES: [&str; 6] = [
    "/",
    "/models",
    "/sizing",
    "/evidence",
    "/engine",
    "/preview",
];

fn is_public_page(path: &str) -> bool {
    PUBLIC_PAGES.contains(&path)
}

/// Operator pages and server-function answers must never sit in a shared or browser cache. Decided here by
/// path, for every response, rather than inside a page's render, so it holds however the page streams.
async fn no_store_for_private(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let path = request.uri().path();
    let private =
        path == "/internal" || path.starts_with("/internal/") || path.starts_with("/_site/");
    let mut response = next.run(request).await;
    if private {
        response.headers_mut().insert(
            header::CACHE_CONTROL,
            axum::http::HeaderValue::from_static("no-store"),
        );
    }
    response
}

async fn css() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        CSS,
    )
        .into_response()
}

/// The preview inbox as CSV, for a logged-in operator only (a GET changes nothing, so no CSRF token).
async fn inbox_csv(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let cookie = headers.get(header::COOKIE).and_then(|v| v.to_str().ok());
    let session = match service::session_from_cookie_header(&state, cookie).await {
        Ok(Some(session)) => session,
        Ok(None) => {
            return (StatusCode::UNAUTHORIZED, "log in at /internal first\n").into_response()
        }
        Err(error) => return (error.status, format!("{}\n", error.message)).into_response(),
    };
    match service::preview_requests_csv(&state, &session.operator).await {
        Ok(csv) => (
            [
                (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
                (
                    header::CONTENT_DISPOSITION,
                    "attachment; filename=\"preview-requests.csv\"",
                ),
                (header::CACHE_CONTROL, "no-store"),
            ],
            csv,
        )
            .into_response(),
        Err(error) => (error.status, format!("{}\n", error.message)).into_response(),
    }
}
