//! The library surface the site calls in-process (Leptos server functions and pages), and that the HTTP
//! handlers call too: one implementation per operation.
//!
//! - Public reads (no authentication; only promoted claims and catalog data can come out):
//!   [`public_claims`], [`public_claim_record`], [`public_models`], [`public_gpus`], [`public_sizing`],
//!   [`submit_preview_request`].
//! - Sessions: [`login`], [`logout`], [`session_from_cookie_header`], [`check_csrf`], [`authenticate_operator`].
//! - Internal (take an [`Operator`], which only authentication produces): [`internal_runs`], [`internal_run`],
//!   [`promote`], [`retract`], [`audit_log`], [`preview_requests`], [`preview_requests_csv`]; for the
//!   operator page, [`internal_data`] (the same runs, the latest audit entries and the inbox, without records).
//! - Ingest: [`ingest`].
//!
//! A Leptos server function that changes state must call [`check_csrf`] (or [`authenticate_operator`] with the
//! request's headers) before acting: the session cookie alone is not enough.

use crate::auth::{self, Need, NewSession, Principal};
use crate::content_evidence::ContentEvidenceReport;
use crate::error::{ApiError, ApiResult};
use crate::preview::{self, PreviewInput, PreviewRequest, Submitted};
use crate::public::{self, ClaimFilter};
use crate::state::AppState;
use crate::store::{self, Actor, Decision, IngestOutcome, StoredRun};
use axum::http::{HeaderMap, Method};
use vkae_domain::{
    AuditEntry, ClaimsDocument, ContentRefusal, GpusDocument, InternalData, ModelsDocument,
    SizingDocument,
};

pub use crate::auth::{Operator, Session, CSRF_HEADER, SESSION_COOKIE};

/// `GET /api/v1/claims`: promoted claims only, with derived figures labelled derived.
pub async fn public_claims(state: &AppState, filter: &ClaimFilter) -> ApiResult<ClaimsDocument> {
    public::claims_document(
        &state.db.reader,
        &state.content,
        filter,
        state.settings.now(),
    )
    .await
}

/// `GET /api/v1/claims/{run_id}/record`: the signed record behind a promoted claim, exactly as stored; 404 for
/// any run id that has no promoted, unretracted claim.
pub async fn public_claim_record(state: &AppState, run_id: &str) -> ApiResult<String> {
    public::claim_record(&state.db.reader, run_id).await
}

/// `GET /api/v1/models`: the catalog with profiles, the adjacent lane, exclusions and service paths.
pub fn public_models(state: &AppState) -> ModelsDocument {
    public::models_document(&state.content)
}

/// `GET /api/v1/gpus`: GPU specs with their datasheet sources.
pub fn public_gpus(state: &AppState) -> GpusDocument {
    public::gpus_document(&state.content)
}

/// `GET /api/v1/sizing`: min/recommended lanes, memory arithmetic, planning index, measured where promoted.
pub async fn public_sizing(state: &AppState, family: Option<&str>) -> ApiResult<SizingDocument> {
    public::sizing_document(&state.db.reader, &state.content, family).await
}

/// `POST /api/v1/preview-requests`: rate limit per `client_key` (429 with `retry_after`), honeypot, validation.
pub async fn submit_preview_request(
    state: &AppState,
    client_key: &str,
    input: &PreviewInput,
) -> ApiResult<Submitted> {
    preview::submit(
        &state.db,
        &state.content,
        &state.preview_limiter,
        client_key,
        input,
    )
    .await
}

/// A successful login: the session and the `Set-Cookie` header value to send.
#[derive(Debug, Clone)]
pub struct Login {
    pub session: NewSession,
    pub set_cookie: String,
}

/// Logs an operator in from `client` (its address, for back-off and the audit log). A present `Origin` must be
/// the public origin. Any session the browser presented is dropped and a fresh one is created (new cookie and
/// CSRF token on every login). Failed and throttled attempts are written to the audit log.
pub async fn login(
    state: &AppState,
    client: &str,
    name: &str,
    password: &str,
    origin: Option<&str>,
    cookie_header: Option<&str>,
) -> ApiResult<Login> {
    auth::check_origin(state.settings.public_origin.as_str(), origin, false)?;
    let session = match auth::login(
        &state.db.writer,
        &state.login_guard,
        client,
        name,
        password,
        cookie_header,
    )
    .await
    {
        Ok(session) => session,
        Err(e) => {
            if e.status.is_client_error() || e.status.as_u16() == 503 {
                store::record_security_event(
                    &state.db,
                    "login_failed",
                    vkae_domain::AuditDetail {
                        name: Some(name.to_string()),
                        client: Some(client.to_string()),
                        code: Some(e.code.to_string()),
                        ..Default::default()
                    },
                )
                .await;
            }
            return Err(e);
        }
    };
    let set_cookie =
        auth::session_cookie(&session.session_token, state.settings.session_idle_seconds);
    Ok(Login {
        session,
        set_cookie,
    })
}

/// Ends the session in `cookie_header`; send [`auth::clear_session_cookie`] as `Set-Cookie`.
pub async fn logout(state: &AppState, cookie_header: Option<&str>) -> ApiResult<()> {
    auth::logout(&state.db.writer, cookie_header).await
}

/// The live session for a `Cookie` header (renews the idle timer), or None.
pub async fn session_from_cookie_header(
    state: &AppState,
    cookie_header: Option<&str>,
) -> ApiResult<Option<Session>> {
    auth::session_from_cookie_header(
        &state.db.writer,
        cookie_header,
        state.settings.session_lifetime(),
    )
    .await
}

/// Checks a state-changing browser request: Origin equals the public origin and the CSRF token matches.
pub fn check_csrf(
    state: &AppState,
    session: &Session,
    origin: Option<&str>,
    csrf_token: Option<&str>,
) -> ApiResult<()> {
    auth::check_csrf(
        session,
        state.settings.public_origin.as_str(),
        origin,
        csrf_token,
    )
}

/// Authenticates an operator from request headers: `Authorization: Bearer <operator token>`, or the session
/// cookie (with the CSRF check for methods other than GET/HEAD/OPTIONS; `form_csrf` is a `csrf_token` field).
pub async fn authenticate_operator(
    state: &AppState,
    headers: &HeaderMap,
    method: &Method,
    form_csrf: Option<&str>,
) -> ApiResult<Operator> {
    let s = &state.settings;
    match auth::authenticate(
        &state.db.writer,
        headers,
        method,
        Need::Operator,
        s.public_origin.as_str(),
        s.session_lifetime(),
        form_csrf,
    )
    .await?
    {
        Principal::Operator(op) => Ok(op),
        Principal::Ingest { .. } => Err(ApiError::forbidden(
            "wrong_credential",
            "an ingest token may only ingest runs",
        )),
    }
}

/// Every run with lane verdicts, reasons and claim state, newest first.
pub async fn internal_runs(state: &AppState, _operator: &Operator) -> ApiResult<Vec<StoredRun>> {
    store::list_runs(&state.db, &state.content, None).await
}

/// One run by `run_id` (404 when unknown).
pub async fn internal_run(
    state: &AppState,
    _operator: &Operator,
    run_id: &str,
) -> ApiResult<StoredRun> {
    store::list_runs(&state.db, &state.content, Some(run_id))
        .await?
        .pop()
        .ok_or_else(|| ApiError::not_found(format!("no run with run_id {run_id:?}")))
}

/// What the operator page shows: every run (without its record), the latest 200 audit entries and the
/// preview inbox.
pub async fn internal_data(state: &AppState, session: &Session) -> ApiResult<InternalData> {
    let operator = &session.operator;
    let runs = internal_runs(state, operator).await?;
    Ok(InternalData {
        operator: operator.name.clone(),
        csrf_token: session.csrf_token.clone(),
        runs: runs.into_iter().map(|r| r.summary).collect(),
        audit: audit_log(state, operator, None, 200).await?,
        inbox: preview_requests(state, operator).await?,
        content_refusals: content_refusals(&content_evidence(state, operator)),
    })
}

/// The committed promotions the gate refused at start, each failing lane with its reasons in words.
fn content_refusals(report: &ContentEvidenceReport) -> Vec<ContentRefusal> {
    report
        .refused_promotions()
        .map(|p| ContentRefusal {
            run_id: p.entry.run_id.clone(),
            level: p.entry.level.clone(),
            operator: p.entry.operator.clone(),
            date: p.entry.date.clone(),
            message: p.message.clone().unwrap_or_default(),
            reasons: p
                .blockers
                .iter()
                .map(|b| {
                    let reasons: Vec<&str> = b["reasons"]
                        .as_array()
                        .map(|r| r.iter().filter_map(serde_json::Value::as_str).collect())
                        .unwrap_or_default();
                    format!(
                        "{}: {}",
                        b["lane"].as_str().unwrap_or("?"),
                        reasons.join("; ")
                    )
                })
                .collect(),
        })
        .collect()
}

/// Promotes a run (`level`: declared-baseline | vkae-path | optimized-showcase | preview-smoke).
pub async fn promote(
    state: &AppState,
    operator: &Operator,
    run_id: &str,
    level: &str,
    reason: &str,
) -> ApiResult<Decision> {
    store::promote(&state.db, &state.content, operator, run_id, level, reason).await
}

/// Withdraws a public claim.
pub async fn retract(
    state: &AppState,
    operator: &Operator,
    run_id: &str,
    reason: &str,
) -> ApiResult<Decision> {
    store::retract(&state.db, operator, run_id, reason).await
}

/// The audit log, newest first.
pub async fn audit_log(
    state: &AppState,
    _operator: &Operator,
    before: Option<i64>,
    limit: u32,
) -> ApiResult<Vec<AuditEntry>> {
    store::audit_log(&state.db, before, limit).await
}

/// What applying `content/evidence/` at start did: records ingested or skipped, promotions applied or refused
/// with the gate's reasons (empty when it did not run).
pub fn content_evidence(state: &AppState, _operator: &Operator) -> ContentEvidenceReport {
    state.content_evidence.get().cloned().unwrap_or_default()
}

/// Stored preview requests, newest first.
pub async fn preview_requests(
    state: &AppState,
    _operator: &Operator,
) -> ApiResult<Vec<PreviewRequest>> {
    preview::list(&state.db).await
}

/// Stored preview requests as RFC 4180 CSV.
pub async fn preview_requests_csv(state: &AppState, _operator: &Operator) -> ApiResult<String> {
    Ok(preview::to_csv(&preview::list(&state.db).await?))
}

/// Ingests a signed run record (the bytes as received). A record refused from an ingest token (over HTTP) is
/// written to the audit log with its reason; the CLI's caller sees its refusals directly.
pub async fn ingest(state: &AppState, actor: &Actor, record: &[u8]) -> ApiResult<IngestOutcome> {
    let outcome = store::ingest(
        &state.db,
        &state.content,
        actor,
        record,
        state.settings.max_record_bytes,
    )
    .await;
    if let Err(e) = &outcome {
        if e.status.is_client_error() && matches!(actor, Actor::IngestToken(_)) {
            record_refused_ingest(state, actor, e).await;
        }
    }
    outcome
}

/// Writes a refused ingest (by an authenticated ingest token) to the audit log: the code, field and message.
pub async fn record_refused_ingest(state: &AppState, actor: &Actor, e: &ApiError) {
    store::record_security_event(
        &state.db,
        "ingest_refused",
        vkae_domain::AuditDetail {
            actor: Some(actor.label()),
            code: Some(e.code.to_string()),
            field: e.field.as_ref().map(|f| f.to_string()),
            reason: Some(e.message.to_string()),
            ..Default::default()
        },
    )
    .await;
}
