//! HTTP caching of the public reads (`GET /api/v1/*`) and the site's public pages: each answer is built once per
//! promotion epoch (the audit log's latest promote, retract or ingest) and the clock's hour, kept in memory, and sent with a strong `ETag`
//! (the epoch and a digest of the body); `If-None-Match` gets 304. API answers may be kept by other caches
//! (`Cache-Control: public, max-age=60, stale-while-revalidate=600`); pages are `no-cache`, so a browser
//! revalidates each visit (a 304 from memory) and an operator sees a retraction at once. A kept page cannot
//! carry a per-response nonce, so its Content-Security-Policy names the SHA-256 of each inline script instead.

use crate::auth::sha256_hex;
use crate::state::AppState;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::collections::HashMap;
use std::sync::Mutex;

/// What public reads send: shared caches may keep them a minute, and serve them stale while revalidating.
pub const PUBLIC_CACHE_CONTROL: &str = "public, max-age=60, stale-while-revalidate=600";
/// What kept pages send: any cache may store them, but must revalidate (cheap: a 304 from memory) before use.
pub const PAGE_CACHE_CONTROL: &str = "no-cache";
/// Distinct URLs (path and query) kept; past this the cache starts again empty, so odd queries cannot grow it.
const MAX_ENTRIES: usize = 256;
/// The largest answer kept.
const MAX_BODY_BYTES: usize = 4 << 20;

#[derive(Debug, Clone)]
struct Entry {
    epoch: (i64, i64),
    etag: HeaderValue,
    content_type: Option<HeaderValue>,
    csp: Option<HeaderValue>,
    cache_control: &'static str,
    body: Bytes,
}

/// The answers kept, by URL.
#[derive(Debug, Default)]
pub struct PublicCache {
    entries: Mutex<HashMap<String, Entry>>,
}

impl PublicCache {
    fn get(&self, url: &str, epoch: (i64, i64)) -> Option<Entry> {
        let entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        entries.get(url).filter(|e| e.epoch == epoch).cloned()
    }

    fn put(&self, url: String, entry: Entry) {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if entries.len() >= MAX_ENTRIES && !entries.contains_key(&url) {
            entries.clear();
        }
        entries.insert(url, entry);
    }
}

/// The promotion epoch: the sequence number of the latest promote, retract or ingest in the audit log (0 before
/// any; an ingest can dispute a claim). Read from the store on each request, so a promotion made by another
/// process (the CLI) is seen at once.
pub async fn promotion_epoch(state: &AppState) -> Option<i64> {
    sqlx::query_scalar::<_, i64>(
        "SELECT seq FROM audit_log WHERE action IN ('promote', 'retract', 'ingest') ORDER BY seq DESC LIMIT 1",
    )
    .fetch_optional(&state.db.reader)
    .await
    .map(|seq| seq.unwrap_or(0))
    .map_err(|e| tracing::warn!(%e, "cannot read the promotion epoch; answering uncached"))
    .ok()
}

/// The cache's key beside the epoch: the hour by the server's clock, so a claim that ages past its profile's
/// `claim_current_days` shows as stale within the hour although nothing was promoted.
fn clock_hour(state: &AppState) -> i64 {
    state.settings.now().unix_seconds.div_euclid(3600)
}

fn matches_etag(headers: &HeaderMap, etag: &HeaderValue) -> bool {
    let Some(value) = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let etag = etag.to_str().unwrap_or_default();
    value.trim() == "*" || value.split(',').any(|candidate| candidate.trim() == etag)
}

fn answer(entry: &Entry, request_headers: &HeaderMap) -> Response {
    let mut response = if matches_etag(request_headers, &entry.etag) {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        let mut response = Response::new(Body::from(entry.body.clone()));
        if let Some(content_type) = &entry.content_type {
            response
                .headers_mut()
                .insert(header::CONTENT_TYPE, content_type.clone());
        }
        response
    };
    if let Some(csp) = &entry.csp {
        response
            .headers_mut()
            .insert(header::CONTENT_SECURITY_POLICY, csp.clone());
    }
    let headers = response.headers_mut();
    headers.insert(header::ETAG, entry.etag.clone());
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static(entry.cache_control),
    );
    response
}

/// Serves `GET /api/v1/*` from the cache when the epoch is unchanged; builds, keeps and validates otherwise.
/// Only 200 answers are kept; errors pass through as they are.
pub async fn public_reads(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let cacheable = request.method() == Method::GET && request.uri().path().starts_with("/api/v1/");
    if !cacheable {
        return next.run(request).await;
    }
    cached(
        &state,
        &state.public_cache,
        None,
        PUBLIC_CACHE_CONTROL,
        request,
        next,
    )
    .await
}

/// The site's public pages, as [`public_reads`]: `is_public_page` picks the paths (never operator pages).
/// The page's own CSP is replaced by the configured one with the hashes of the page's inline scripts.
pub async fn public_pages(
    State((state, is_public_page)): State<(AppState, fn(&str) -> bool)>,
    request: Request,
    next: Next,
) -> Response {
    if request.method() != Method::GET || !is_public_page(request.uri().path()) {
        return next.run(request).await;
    }
    let csp = state.settings.csp.clone();
    cached(
        &state,
        &state.page_cache,
        Some(&csp),
        PAGE_CACHE_CONTROL,
        request,
        next,
    )
    .await
}

async fn cached(
    state: &AppState,
    cache: &PublicCache,
    page_csp: Option<&str>,
    cache_control: &'static str,
    request: Request,
    next: Next,
) -> Response {
    let Some(seq) = promotion_epoch(state).await else {
        return next.run(request).await;
    };
    let epoch = (seq, clock_hour(state));
    let url = request.uri().to_string();
    let request_headers = request.headers().clone();
    if let Some(entry) = cache.get(&url, epoch) {
        return answer(&entry, &request_headers);
    }
    let response = next.run(request).await;
    if response.status() != StatusCode::OK {
        return response;
    }
    let (parts, body) = response.into_parts();
    let Ok(body) = axum::body::to_bytes(body, MAX_BODY_BYTES).await else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    let csp = page_csp.and_then(|csp| {
        let html = std::str::from_utf8(&body).ok()?;
        HeaderValue::from_str(&csp_with_script_hashes(csp, html)).ok()
    });
    let digest = sha256_hex(&body);
    let etag = HeaderValue::from_str(&format!("\"{seq}.{}-{}\"", epoch.1, &digest[..32]))
        .expect("an epoch and hex digits are a valid header");
    let entry = Entry {
        epoch,
        etag,
        content_type: parts.headers.get(header::CONTENT_TYPE).cloned(),
        csp,
        cache_control,
        body,
    };
    cache.put(url, entry.clone());
    answer(&entry, &request_headers)
}

/// The text of each inline `<script>` (one without a `src` attribute) in `html`.
pub fn inline_scripts(html: &str) -> Vec<&str> {
    let mut scripts = Vec::new();
    let mut rest = html;
    while let Some(start) = rest.find("<script") {
        let after = &rest[start..];
        let Some(tag_end) = after.find('>') else {
            break;
        };
        let tag = &after[..tag_end];
        let content = &after[tag_end + 1..];
        let Some(close) = content.find("</script>") else {
            break;
        };
        if !tag.contains(" src=") {
            scripts.push(&content[..close]);
        }
        rest = &content[close..];
    }
    scripts
}

/// `csp` with `script-src` extended by `'sha256-...'` for each inline script of `html`.
pub fn csp_with_script_hashes(csp: &str, html: &str) -> String {
    use base64::Engine as _;
    use sha2::{Digest, Sha256};
    let mut hashes: Vec<String> = inline_scripts(html)
        .into_iter()
        .map(|script| {
            let digest = Sha256::digest(script.as_bytes());
            format!(
                "'sha256-{}'",
                base64::engine::general_purpose::STANDARD.encode(digest)
            )
        })
        .collect();
    hashes.dedup();
    if hashes.is_empty() {
        return csp.to_string();
    }
    csp.replacen(
        "script-src 'self'",
        &format!("script-src 'self' {}", hashes.join(" ")),
        1,
    )
}
