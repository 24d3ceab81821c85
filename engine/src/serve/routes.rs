//! The HTTP routes: `/v1/completions`, `/v1/chat/completions` (JSON or SSE), `/v1/models`, `/health`,
//! `/metrics`, and OpenAI-shaped errors for everything else. `/v1/*` needs the bearer key when one is set.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{header, Method, StatusCode, Uri};
use axum::middleware::{self, Next};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};

use super::api::{parse_json, ChatRequest, CompletionRequest, Generation};
use super::error::ApiError;
use super::metrics::Outcome;
use super::output::TextOutput;
use super::scheduler::{Event, Finish, Job, SubmitError};
use super::state::AppState;

pub fn router(state: Arc<AppState>) -> Router {
    let v1 = Router::new()
        .route("/v1/completions", post(completions))
        .route("/v1/chat/completions", post(chat))
        .route("/v1/models", get(models))
        .route_layer(middleware::from_fn_with_state(state.clone(), require_key));
    Router::new()
        .merge(v1)
        .route("/health", get(health))
        .route("/metrics", get(metrics))
        .fallback(no_route)
        .method_not_allowed_fallback(wrong_method)
        .layer(DefaultBodyLimit::max(state.max_body_bytes))
        .with_state(state)
}

async fn require_key(State(s): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    if let Some(key) = &s.api_key {
        let given = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        if !given.is_some_and(|g| same_secret(g.as_bytes(), key.as_bytes())) {
            return ApiError::unauthorized().into_response();
        }
    }
    next.run(req).await
}

/// Compares without an early exit, so the time taken does not reveal how much of the key matched.
fn same_secret(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn no_route(method: Method, uri: Uri) -> ApiError {
    ApiError::no_route(method.as_str(), uri.path())
}

async fn wrong_method(method: Method, uri: Uri) -> ApiError {
    ApiError::method_not_allowed(method.as_str(), uri.path())
}

async fn health(State(s): State<Arc<AppState>>) -> Response {
    if s.engine_running.load(Ordering::Relaxed) {
        Json(json!({"status": "ok"})).into_response()
    } else {
        ApiError::unavailable("the engine has stopped").into_response()
    }
}

async fn metrics(State(s): State<Arc<AppState>>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        s.metrics.render(),
    )
        .into_response()
}

async fn models(State(s): State<Arc<AppState>>) -> Json<Value> {
    Json(json!({"object": "list", "data": [{
        "id": s.name, "object": "model", "created": s.created, "owned_by": "vkae",
        "max_model_len": s.context, "recipe": {"name": s.recipe.recipe.name, "sha256": s.recipe.sha256},
    }]}))
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Completion,
    Chat,
}

async fn completions(
    State(s): State<Arc<AppState>>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    respond(s, body, Kind::Completion).await
}

async fn chat(State(s): State<Arc<AppState>>, body: Result<Bytes, BytesRejection>) -> Response {
    respond(s, body, Kind::Chat).await
}

async fn respond(s: Arc<AppState>, body: Result<Bytes, BytesRejection>, kind: Kind) -> Response {
    match start(s, body, kind).await {
        Ok(r) => r,
        Err(e) => {
            tracing::info!(status = e.status.as_u16(), message = %e.message, "request refused");
            e.into_response()
        }
    }
}

async fn start(
    s: Arc<AppState>,
    body: Result<Bytes, BytesRejection>,
    kind: Kind,
) -> Result<Response, ApiError> {
    let body = body.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::too_large(s.max_body_bytes)
        } else {
            ApiError::invalid(None, e.body_text())
        }
    })?;
    let limits = s.limits();
    let g: Generation = match kind {
        Kind::Completion => parse_json::<CompletionRequest>(&body)?.check(&limits)?,
        Kind::Chat => parse_json::<ChatRequest>(&body)?.check(&limits)?,
    };
    let (tx, rx) = Job::channel(g.max_tokens);
    let job = Job {
        prompt: g.prompt.clone(),
        max_tokens: g.max_tokens,
        sampling: g.sampling,
        stop_ids: if g.ignore_eos {
            Arc::from(vec![])
        } else {
            s.stop_ids.clone()
        },
        events: tx,
        arrived: Instant::now(),
    };
    s.queue.submit(job).map_err(|e| match e {
        SubmitError::Full => {
            s.metrics.finished(Outcome::Rejected);
            ApiError::queue_full(s.max_queue)
        }
        SubmitError::Closed => ApiError::unavailable("the engine has stopped"),
    })?;
    let n = s.next_id.fetch_add(1, Ordering::Relaxed);
    let reply = Reply {
        id: match kind {
            Kind::Completion => format!("cmpl-{}-{n}", s.id_prefix),
            Kind::Chat => format!("chatcmpl-{}-{n}", s.id_prefix),
        },
        created: unix_now(),
        kind,
        prompt_tokens: g.prompt.len(),
        out: TextOutput::new(g.stops),
        rx,
        recorded: false,
        state: s,
    };
    tracing::info!(id = %reply.id, prompt_tokens = reply.prompt_tokens, max_tokens = g.max_tokens,
        stream = g.stream, "request queued");
    if g.stream {
        Ok(stream(reply, g.include_usage))
    } else {
        collect(reply).await
    }
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// One request's reply in the making. Dropping it (the client went away) closes the events channel, which
/// frees the request's slot at the scheduler's next iteration.
struct Reply {
    state: Arc<AppState>,
    kind: Kind,
    id: String,
    created: u64,
    prompt_tokens: usize,
    out: TextOutput,
    rx: tokio::sync::mpsc::Receiver<Event>,
    /// The outcome went into the metrics.
    recorded: bool,
}

enum Step {
    /// Text that may be shown now.
    Text(String),
    Done {
        text: String,
        finish: &'static str,
    },
    Failed(String),
}

impl Reply {
    async fn next(&mut self) -> Step {
        let tok = self.state.text.tokenizer.as_ref();
        match self.rx.recv().await {
            Some(Event::Token(id)) => {
                let text = self.out.push(tok, id);
                if self.out.stopped {
                    self.record(Outcome::Stop);
                    Step::Done {
                        text,
                        finish: "stop",
                    }
                } else {
                    Step::Text(text)
                }
            }
            Some(Event::Finished(f)) => {
                let text = self.out.finish(tok);
                let (outcome, finish) = match f {
                    Finish::Stop => (Outcome::Stop, "stop"),
                    Finish::Length => (Outcome::Length, "length"),
                };
                self.record(outcome);
                Step::Done { text, finish }
            }
            Some(Event::Failed(m)) => {
                self.record(Outcome::Error);
                Step::Failed(m)
            }
            None => {
                self.record(Outcome::Error);
                Step::Failed("the engine stopped before the request finished".into())
            }
        }
    }

    fn record(&mut self, o: Outcome) {
        if !self.recorded {
            self.recorded = true;
            self.state.metrics.finished(o);
            tracing::info!(id = %self.id, completion_tokens = self.out.tokens.len(), outcome = ?o, "request done");
        }
    }

    fn usage(&self) -> Value {
        let c = self.out.tokens.len();
        json!({"prompt_tokens": self.prompt_tokens, "completion_tokens": c,
               "total_tokens": self.prompt_tokens + c})
    }

    fn envelope(&self, object: &str, choices: Value) -> Value {
        json!({"id": self.id, "object": object, "created": self.created, "model": self.state.name,
               "choices": choices})
    }

    /// A streamed chunk carrying `text` and the generated ids from `ids_from` on, and the finish reason on
    /// the last one.
    fn chunk(&self, text: &str, ids_from: usize, finish: Option<&str>) -> Value {
        let ids = &self.out.tokens[ids_from..];
        match self.kind {
            Kind::Completion => self.envelope(
                "text_completion",
                json!([{"index": 0, "text": text, "logprobs": null, "finish_reason": finish,
                        "token_ids": ids}]),
            ),
            Kind::Chat => {
                let delta = if finish.is_some() && text.is_empty() {
                    json!({})
                } else {
                    json!({"content": text})
                };
                self.envelope(
                    "chat.completion.chunk",
                    json!([{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}]),
                )
            }
        }
    }
}

impl Drop for Reply {
    fn drop(&mut self) {
        if !self.recorded {
            self.state.metrics.finished(Outcome::Cancelled);
            tracing::info!(id = %self.id, completion_tokens = self.out.tokens.len(), "client went away");
        }
    }
}

async fn collect(mut r: Reply) -> Result<Response, ApiError> {
    let finish = loop {
        match r.next().await {
            Step::Text(..) => {}
            Step::Done { finish, .. } => break finish,
            Step::Failed(m) => return Err(ApiError::internal(m)),
        }
    };
    let text = r.out.text().to_string();
    let choice = match r.kind {
        Kind::Completion => {
            json!({"index": 0, "text": text, "logprobs": null, "finish_reason": finish,
                                   "token_ids": r.out.tokens})
        }
        Kind::Chat => json!({"index": 0, "message": {"role": "assistant", "content": text},
                             "logprobs": null, "finish_reason": finish}),
    };
    let object = match r.kind {
        Kind::Completion => "text_completion",
        Kind::Chat => "chat.completion",
    };
    let mut v = r.envelope(object, json!([choice]));
    v["usage"] = r.usage();
    Ok(Json(v).into_response())
}

struct Streaming {
    reply: Reply,
    /// Generated ids already carried by a chunk (held-back text's ids ride on the next chunk).
    ids_sent: usize,
    include_usage: bool,
    pending: VecDeque<SseEvent>,
    over: bool,
}

fn data(v: &Value) -> SseEvent {
    SseEvent::default().data(v.to_string())
}

fn stream(reply: Reply, include_usage: bool) -> Response {
    let mut pending = VecDeque::new();
    if reply.kind == Kind::Chat {
        let first = reply.envelope(
            "chat.completion.chunk",
            json!([{"index": 0, "delta": {"role": "assistant", "content": ""}, "logprobs": null,
                    "finish_reason": null}]),
        );
        pending.push_back(data(&first));
    }
    let st = Streaming {
        reply,
        ids_sent: 0,
        include_usage,
        pending,
        over: false,
    };
    let events = futures::stream::unfold(st, |mut st| async move {
        loop {
            if let Some(e) = st.pending.pop_front() {
                return Some((Ok::<_, Infallible>(e), st));
            }
            if st.over {
                return None;
            }
            let no_text = st.reply.state.text.tokenizer.is_none();
            match st.reply.next().await {
                Step::Text(text) => {
                    if !text.is_empty() || no_text {
                        let c = st.reply.chunk(&text, st.ids_sent, None);
                        st.ids_sent = st.reply.out.tokens.len();
                        st.pending.push_back(data(&c));
                    }
                }
                Step::Done { text, finish } => {
                    let c = st.reply.chunk(&text, st.ids_sent, Some(finish));
                    st.pending.push_back(data(&c));
                    if st.include_usage {
                        let mut u = st.reply.envelope(
                            match st.reply.kind {
                                Kind::Completion => "text_completion",
                                Kind::Chat => "chat.completion.chunk",
                            },
                            json!([]),
                        );
                        u["usage"] = st.reply.usage();
                        st.pending.push_back(data(&u));
                    }
                    st.pending.push_back(SseEvent::default().data("[DONE]"));
                    st.over = true;
                }
                Step::Failed(m) => {
                    st.pending.push_back(data(&ApiError::internal(m).body()));
                    st.pending.push_back(SseEvent::default().data("[DONE]"));
                    st.over = true;
                }
            }
        }
    });
    Sse::new(events)
        .keep_alive(KeepAlive::default())
        .into_response()
}
