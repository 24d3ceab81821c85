//! `/api/internal/runs`: ingest a signed record (ingest token), list runs and read one with lane verdicts and
//! claim state, promote a run to a public claim or retract it (operator; a form post carries its CSRF token in
//! the body).

use crate::auth::{Need, Operator, Principal};
use crate::error::ApiResult;
use crate::routes::extract::{
    authenticate, operator, parse_body, require_json, AuthenticatedOperator,
};
use crate::service;
use crate::state::AppState;
use crate::store::Actor;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{json, Value};

pub async fn ingest(
    State(state): State<AppState>,
    method: Method,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    let actor = match authenticate(&state, &headers, &method, Need::Ingest, None).await? {
        Principal::Ingest { token_id } => Actor::IngestToken(token_id),
        Principal::Operator(_) => unreachable!("authenticate checks the need"),
    };
    if let Err(e) = require_json(&headers) {
        service::record_refused_ingest(&state, &actor, &e).await;
        return Err(e);
    }
    let outcome = service::ingest(&state, &actor, &body).await?;
    let status = if outcome.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(outcome)).into_response())
}

pub async fn list(
    State(state): State<AppState>,
    AuthenticatedOperator(op): AuthenticatedOperator,
) -> ApiResult<Json<Value>> {
    Ok(Json(
        json!({ "runs": service::internal_runs(&state, &op).await? }),
    ))
}

pub async fn one(
    State(state): State<AppState>,
    AuthenticatedOperator(op): AuthenticatedOperator,
    Path(run_id): Path<String>,
) -> ApiResult<Json<Value>> {
    Ok(Json(
        serde_json::to_value(service::internal_run(&state, &op, &run_id).await?)
            .expect("serialises"),
    ))
}

/// A body that may carry the form's CSRF token.
trait FormCsrf {
    fn csrf_token(&self) -> Option<&str>;
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

macro_rules! form_csrf {
    ($($body:ty),*) => {$(
        impl FormCsrf for $body {
            fn csrf_token(&self) -> Option<&str> {
                self.csrf_token.as_deref()
            }
        }
    )*};
}

form_csrf!(PromoteBody, RetractBody);

/// The operator and the parsed body of a decision. Authentication comes before the body's content is judged:
/// an anonymous caller learns nothing from validation errors.
async fn operator_and_body<T: DeserializeOwned + FormCsrf>(
    state: &AppState,
    method: &Method,
    headers: &HeaderMap,
    body: &[u8],
) -> ApiResult<(Operator, T)> {
    let parsed: ApiResult<T> = parse_body(headers, body);
    let csrf = parsed.as_ref().ok().and_then(|b| b.csrf_token());
    let op = operator(state, headers, method, csrf).await?;
    Ok((op, parsed?))
}

/// A decision as JSON.
fn decision_json(decision: crate::store::Decision) -> Json<Value> {
    Json(serde_json::to_value(decision).expect("serialises"))
}

pub async fn promote(
    State(state): State<AppState>,
    method: Method,
    headers: HeaderMap,
    Path(run_id): Path<String>,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    let (op, b) = operator_and_body::<PromoteBody>(&state, &method, &headers, &body).await?;
    Ok(decision_json(
        service::promote(&state, &op, &run_id, &b.level, &b.reason).await?,
    ))
}

pub async fn retract(
    State(state): State<AppState>,
    method: Method,
    headers: HeaderMap,
    Path(run_id): Path<String>,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    let (op, b) = operator_and_body::<RetractBody>(&state, &method, &headers, &body).await?;
    Ok(decision_json(
        service::retract(&state, &op, &run_id, &b.reason).await?,
    ))
}
