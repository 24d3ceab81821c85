//! HTTP: routes, handlers and middleware. Handlers are thin: they parse, authenticate and call [`crate::service`].

use crate::app::{AppState, SiteRoutes};
use crate::auth::{self, Need, Principal};
use crate::error::{ApiError, ApiResult};
use crate::preview::{PreviewInput, Submitted};
use crate::public::ClaimFilter;
use crate::service;
use crate::store::Actor;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, Path, RawQuery, Request, State};
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use axum::{Json, Router};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{json, Value};
use std::net::SocketAddr;
use tower_http::compression::CompressionLayer;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

/// The OpenAPI 3.1 document served at `/api/v1/openapi.json`.
pub const OPENAPI: &str = include_str!("openapi.json");

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

/// The whole application router: the API, the site's routes (if any) beside it, and the middleware.
pub fn router(state: AppState, site: Option<SiteRoutes>) -> Router {
    let public = Router::new()
        .route("/healthz", get(healthz))
        .route("/api/v1/openapi.json", get(openapi))
        .route("/api/v1/claims", get(claims))
        .route("/api/v1/claims/{run_id}/record", get(claim_record))
        .route("/api/v1/models", get(models))
        .route("/api/v1/gpus", get(gpus))
        .route("/api/v1/sizing", get(sizing))
        .route("/api/v1/preview-requests", post(preview_request))
        .route("/api/v1/{*rest}", any(api_not_found))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::CACHE_CONTROL,
            HeaderValue::from_static("no-cache"),
        ));
    let internal = Router::new()
        .route("/api/internal/runs", post(ingest).get(list_runs))
        .route("/api/internal/runs/{run_id}", get(get_run))
        .route("/api/internal/runs/{run_id}/promote", post(promote))
        .route("/api/internal/runs/{run_id}/retract", post(retract))
        .route("/api/internal/audit", get(audit))
        .route("/api/internal/preview-requests", get(preview_list))
        .route("/api/internal/preview-requests.csv", get(preview_csv))
        .route(
            "/api/internal/session",
            post(login).get(whoami).delete(logout),
        )
        .route("/api/internal/{*rest}", any(api_not_found))
        .layer(SetResponseHeaderLayer::overriding(
            header::CACHE_CONTROL,
            HeaderValue::from_static("no-store"),
        ));
    let mut app = public.merge(internal).with_state(state.clone());
    if let Some(site) = site {
        app = app.merge(site(state.clone()));
    }
    let settings = &state.settings;
    let csp = HeaderValue::from_str(&settings.csp)
        .unwrap_or_else(|_| HeaderValue::from_static(crate::app::DEFAULT_CSP));
    app.layer(middleware::from_fn(json_errors))
        .layer(RequestBodyLimitLayer::new(settings.max_body_bytes))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            settings.request_timeout,
        ))
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

/// Any error under `/api/` or `/healthz` that is not already JSON (a body-limit 413, a 408, a 405, an extractor
/// rejection) is rewritten into the one error shape, keeping status and message.
async fn json_errors(request: Request, next: Next) -> Response {
    let path = request.uri().path().to_string();
    let response = next.run(request).await;
    let status = response.status();
    let is_api =
        path.starts_with("/api/v1/") || path.starts_with("/api/internal/") || path == "/healthz";
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !is_api || !(status.is_client_error() || status.is_server_error()) || is_json {
        return response;
    }
    let (parts, body) = response.into_parts();
    let text = axum::body::to_bytes(body, 64 * 1024)
        .await
        .map(|b| String::from_utf8_lossy(&b).trim().to_string())
        .unwrap_or_default();
    let code = match status {
        StatusCode::PAYLOAD_TOO_LARGE => "too_large",
        StatusCode::REQUEST_TIMEOUT => "timeout",
        StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
        StatusCode::NOT_FOUND => "not_found",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
        s if s.is_server_error() => "internal",
        _ => "bad_request",
    };
    let message = if text.is_empty() {
        status.canonical_reason().unwrap_or("error").to_string()
    } else {
        text
    };
    let mut out = ApiError::new(status, code, message).into_response();
    for (name, value) in parts.headers.iter() {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            out.headers_mut().insert(name.clone(), value.clone());
        }
    }
    out
}

async fn api_not_found(method: Method, uri: axum::http::Uri) -> ApiError {
    ApiError::not_found(format!("no route {method} {}", uri.path()))
}

/// Parses a query string into `T` (unknown parameters refused), 400 naming the parameter.
fn parse_query<T: DeserializeOwned + Default>(raw: Option<String>) -> ApiResult<T> {
    let Some(raw) = raw.filter(|r| !r.is_empty()) else {
        return Ok(T::default());
    };
    serde_urlencoded::from_str(&raw).map_err(|e| {
        let message = e.to_string();
        let field = message.split('`').nth(1).unwrap_or_default().to_string();
        ApiError::bad_request("invalid_query", message).with_field(field)
    })
}

/// Parses a JSON or form-encoded body into `T`; 400 naming the field, 415 for other content types.
pub(crate) fn parse_body<T: DeserializeOwned>(headers: &HeaderMap, body: &[u8]) -> ApiResult<T> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let mime = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    match mime.as_str() {
        "application/json" => {
            let mut de = serde_json::Deserializer::from_slice(body);
            serde_path_to_error::deserialize(&mut de).map_err(|e| {
                let field = e.path().to_string();
                let inner = e.into_inner().to_string();
                let field = match inner.strip_prefix("missing field `") {
                    Some(rest) => rest.split('`').next().unwrap_or_default().to_string(),
                    None if field == "." => inner
                        .strip_prefix("unknown field `")
                        .and_then(|r| r.split('`').next())
                        .unwrap_or_default()
                        .to_string(),
                    None => field,
                };
                ApiError::bad_request("invalid_body", inner).with_field(field)
            })
        }
        "application/x-www-form-urlencoded" => serde_urlencoded::from_bytes(body).map_err(|e| {
            let message = e.to_string();
            let field = message.split('`').nth(1).unwrap_or_default().to_string();
            ApiError::bad_request("invalid_body", message).with_field(field)
        }),
        _ => Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "send application/json or application/x-www-form-urlencoded",
        )),
    }
}

fn client_key(
    state: &AppState,
    headers: &HeaderMap,
    connect: Option<&ConnectInfo<SocketAddr>>,
) -> String {
    if state.settings.trust_forwarded_for {
        if let Some(first) = headers
            .get("x-forwarded-for")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(',').next())
        {
            return first.trim().to_string();
        }
    }
    connect
        .map(|c| c.0.ip().to_string())
        .unwrap_or_else(|| "unknown".into())
}

/// A public document as JSON with its object keys in sorted order (the order the API has always written).
fn sorted_json<T: serde::Serialize>(doc: &T) -> ApiResult<Json<Value>> {
    serde_json::to_value(doc)
        .map(Json)
        .map_err(|e| ApiError::internal("document does not serialise", e))
}

async fn healthz(State(state): State<AppState>) -> ApiResult<Json<Value>> {
    sqlx::query("SELECT 1").execute(&state.db.reader).await?;
    Ok(Json(json!({ "status": "ok" })))
}

async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI).into_response()
}

async fn claims(State(state): State<AppState>, RawQuery(raw): RawQuery) -> ApiResult<Json<Value>> {
    let filter: ClaimFilter = parse_query(raw)?;
    sorted_json(&service::public_claims(&state, &filter).await?)
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct NoQuery {}

/// The signed record behind a promoted claim, byte for byte as stored (so its signature can be checked).
async fn claim_record(
    State(state): State<AppState>,
    Path(run_id): Path<String>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Response> {
    parse_query::<NoQuery>(raw)?;
    let record = service::public_claim_record(&state, &run_id).await?;
    Ok(([(header::CONTENT_TYPE, "application/json")], record).into_response())
}

async fn models(State(state): State<AppState>, RawQuery(raw): RawQuery) -> ApiResult<Json<Value>> {
    parse_query::<NoQuery>(raw)?;
    sorted_json(&service::public_models(&state))
}

async fn gpus(State(state): State<AppState>, RawQuery(raw): RawQuery) -> ApiResult<Json<Value>> {
    parse_query::<NoQuery>(raw)?;
    sorted_json(&service::public_gpus(&state))
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct SizingQuery {
    family: Option<String>,
}

async fn sizing(State(state): State<AppState>, RawQuery(raw): RawQuery) -> ApiResult<Json<Value>> {
    let q: SizingQuery = parse_query(raw)?;
    sorted_json(&service::public_sizing(&state, q.family.as_deref()).await?)
}

async fn preview_request(
    State(state): State<AppState>,
    extensions: axum::http::Extensions,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    let input: PreviewInput = parse_body(&headers, &body)?;
    let key = client_key(
        &state,
        &headers,
        extensions.get::<ConnectInfo<SocketAddr>>(),
    );
    match service::submit_preview_request(&state, &key, &input).await? {
        Submitted::Stored(_) | Submitted::Discarded => {
            Ok((StatusCode::ACCEPTED, Json(json!({ "status": "received", "message": "Thank you: we will reply to your work email." }))).into_response())
        }
    }
}

async fn authenticate(
    state: &AppState,
    headers: &HeaderMap,
    method: &Method,
    need: Need,
    form_csrf: Option<&str>,
) -> ApiResult<Principal> {
    auth::authenticate(
        &state.db.writer,
        headers,
        method,
        need,
        &state.settings.public_origin,
        state.settings.session_idle_seconds,
        form_csrf,
    )
    .await
}

async fn operator(
    state: &AppState,
    headers: &HeaderMap,
    method: &Method,
    form_csrf: Option<&str>,
) -> ApiResult<auth::Operator> {
    match authenticate(state, headers, method, Need::Operator, form_csrf).await? {
        Principal::Operator(op) => Ok(op),
        Principal::Ingest { .. } => unreachable!("authenticate checks the need"),
    }
}

/// An operator authenticated from the request's head (bearer token, or session cookie + Origin + CSRF header),
/// for routes whose CSRF token cannot come in a form body. Routes that accept a form token (promote, retract)
/// call `operator` themselves once the body is parsed.
struct AuthenticatedOperator(auth::Operator);

impl axum::extract::FromRequestParts<AppState> for AuthenticatedOperator {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        operator(state, &parts.headers, &parts.method, None)
            .await
            .map(AuthenticatedOperator)
    }
}

async fn ingest(
    State(state): State<AppState>,
    method: Method,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    let actor = match authenticate(&state, &headers, &method, Need::Ingest, None).await? {
        Principal::Ingest { token_id } => Actor::IngestToken(token_id),
        Principal::Operator(_) => unreachable!("authenticate checks the need"),
    };
    let outcome = service::ingest(&state, &actor, &body).await?;
    let status = if outcome.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(outcome)).into_response())
}

async fn list_runs(
    State(state): State<AppState>,
    AuthenticatedOperator(op): AuthenticatedOperator,
) -> ApiResult<Json<Value>> {
    Ok(Json(
        json!({ "runs": service::internal_runs(&state, &op).await? }),
    ))
}

async fn get_run(
    State(state): State<AppState>,
    AuthenticatedOperator(op): AuthenticatedOperator,
    Path(run_id): Path<String>,
) -> ApiResult<Json<Value>> {
    Ok(Json(
        serde_json::to_value(service::internal_run(&state, &op, &run_id).await?)
            .expect("serialises"),
    ))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PromoteBody {
    level: String,
    reason: String,
    #[serde(default)]
    csrf_token: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RetractBody {
    reason: String,
    #[serde(default)]
    csrf_token: Option<String>,
}

async fn promote(
    State(state): State<AppState>,
    method: Method,
    headers: HeaderMap,
    Path(run_id): Path<String>,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    // Authenticate before reading the body's content: an anonymous caller learns nothing from validation errors.
    let parsed: ApiResult<PromoteBody> = parse_body(&headers, &body);
    let csrf = parsed.as_ref().ok().and_then(|b| b.csrf_token.clone());
    let op = operator(&state, &headers, &method, csrf.as_deref()).await?;
    let b = parsed?;
    Ok(Json(
        serde_json::to_value(service::promote(&state, &op, &run_id, &b.level, &b.reason).await?)
            .expect("serialises"),
    ))
}

async fn retract(
    State(state): State<AppState>,
    method: Method,
    headers: HeaderMap,
    Path(run_id): Path<String>,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    let parsed: ApiResult<RetractBody> = parse_body(&headers, &body);
    let csrf = parsed.as_ref().ok().and_then(|b| b.csrf_token.clone());
    let op = operator(&state, &headers, &method, csrf.as_deref()).await?;
    let b = parsed?;
    Ok(Json(
        serde_json::to_value(service::retract(&state, &op, &run_id, &b.reason).await?)
            .expect("serialises"),
    ))
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct AuditQuery {
    before: Option<i64>,
    limit: Option<u32>,
}

async fn audit(
    State(state): State<AppState>,
    AuthenticatedOperator(op): AuthenticatedOperator,
    RawQuery(raw): RawQuery,
) -> ApiResult<Json<Value>> {
    let q: AuditQuery = parse_query(raw)?;
    let limit = q.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(
            ApiError::bad_request("invalid_query", "limit is between 1 and 1000")
                .with_field("limit"),
        );
    }
    Ok(Json(
        json!({ "entries": service::audit_log(&state, &op, q.before, limit).await? }),
    ))
}

async fn preview_list(
    State(state): State<AppState>,
    AuthenticatedOperator(op): AuthenticatedOperator,
) -> ApiResult<Json<Value>> {
    Ok(Json(
        json!({ "requests": service::preview_requests(&state, &op).await? }),
    ))
}

async fn preview_csv(
    State(state): State<AppState>,
    AuthenticatedOperator(op): AuthenticatedOperator,
) -> ApiResult<Response> {
    let csv = service::preview_requests_csv(&state, &op).await?;
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
            (
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"preview-requests.csv\"",
            ),
        ],
        csv,
    )
        .into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LoginBody {
    name: String,
    password: String,
}

async fn login(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    let origin = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok());
    let cookie = headers.get(header::COOKIE).and_then(|v| v.to_str().ok());
    let b: LoginBody = parse_body(&headers, &body)?;
    let login = service::login(&state, &b.name, &b.password, origin, cookie).await?;
    let mut response = Json(
        json!({ "operator": login.session.operator.name, "csrf_token": login.session.csrf_token }),
    )
    .into_response();
    response.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_str(&login.set_cookie).expect("cookie is ASCII"),
    );
    Ok(response)
}

async fn whoami(State(state): State<AppState>, headers: HeaderMap) -> ApiResult<Json<Value>> {
    let cookie = headers.get(header::COOKIE).and_then(|v| v.to_str().ok());
    let session = service::session_from_cookie_header(&state, cookie)
        .await?
        .ok_or_else(|| ApiError::unauthorized("no live session"))?;
    Ok(Json(
        json!({ "operator": session.operator.name, "csrf_token": session.csrf_token }),
    ))
}

async fn logout(
    State(state): State<AppState>,
    _operator: AuthenticatedOperator,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let cookie = headers.get(header::COOKIE).and_then(|v| v.to_str().ok());
    service::logout(&state, cookie).await?;
    let mut response = StatusCode::NO_CONTENT.into_response();
    response.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_str(&auth::clear_session_cookie()).expect("ASCII"),
    );
    Ok(response)
}
