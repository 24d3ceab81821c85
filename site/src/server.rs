//! The site's half of `vkae serve`: the Leptos pages, their server functions, the CSS and the WebAssembly
//! bundle, as one axum router that `vkae_evidence::cli` merges next to the JSON API on the same port.

use crate::backend::SharedBackend;
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

/// The HTML document around every page. Only pages with islands load the WebAssembly bundle.
pub fn shell(options: LeptosOptions) -> impl IntoView {
    let path = use_context::<http::request::Parts>()
        .map(|p| p.uri.path().to_string())
        .unwrap_or_default();
    let with_islands = PAGES_WITH_ISLANDS.contains(&path.as_str());
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
pub fn routes(backend: SharedBackend, settings: SiteSettings) -> Router {
    let options = LeptosOptions::builder()
        .output_name("vkae_site")
        .site_root(settings.site_root.to_string_lossy().to_string())
        .site_pkg_dir("pkg")
        .build();
    let pkg = settings.site_root.join("pkg");
    let context = {
        let backend = backend.clone();
        move || provide_context(backend.clone())
    };
    let app = {
        let options = options.clone();
        move || shell(options.clone())
    };
    Router::new()
        .leptos_routes_with_context(&options, generate_route_list(App), context, app)
        .route(CSS_HREF, get(css))
        .route(
            "/internal/preview-requests.csv",
            get(inbox_csv).with_state(backend),
        )
        .nest_service(
            "/pkg",
            tower_http::services::ServeDir::new(pkg).precompressed_gzip(),
        )
        .with_state(options)
        .layer(tower_http::compression::CompressionLayer::new().gzip(true))
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
async fn inbox_csv(State(backend): State<SharedBackend>, headers: HeaderMap) -> Response {
    let cookie = headers
        .get(header::COOKIE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    match backend.session(cookie).await {
        Ok(Some(_)) => {}
        Ok(None) => {
            return (StatusCode::UNAUTHORIZED, "log in at /internal first\n").into_response()
        }
        Err(error) => return store_unavailable(error),
    }
    match backend.inbox_csv().await {
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
        Err(error) => store_unavailable(error),
    }
}

fn store_unavailable(error: String) -> Response {
    eprintln!("vkae site: evidence store error: {error}");
    (
        StatusCode::SERVICE_UNAVAILABLE,
        "the evidence store could not answer\n",
    )
        .into_response()
}
