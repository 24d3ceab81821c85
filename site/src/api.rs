//! Server functions: the site's only way to the evidence store. Each one that changes state checks, itself,
//! the request's Origin against the configured public origin and, for operators, the live session and its
//! CSRF token (through `vkae_evidence::service`); none relies on the page that called it.

use crate::model::{InternalData, PublicData};
use crate::preview_form::{PreviewInput, PreviewOutcome};
use leptos::prelude::*;

#[server(prefix = "/_site", endpoint = "public-data")]
pub async fn load_public() -> Result<PublicData, ServerFnError> {
    let state = ssr::state()?;
    crate::evidence::public_data(&state)
        .await
        .map_err(ssr::fail)
}

#[server(prefix = "/_site", endpoint = "preview-request")]
pub async fn submit_preview(input: PreviewInput) -> Result<PreviewOutcome, ServerFnError> {
    use crate::preview_form::{form_errors, FieldError};
    let state = ssr::state()?;
    ssr::check_origin(&state)?;
    let data = crate::evidence::public_data(&state)
        .await
        .map_err(ssr::fail)?;
    if input.website.is_empty() {
        let errors = form_errors(&input, &data.preview_choices());
        if !errors.is_empty() {
            return Ok(PreviewOutcome::Invalid { errors });
        }
    }
    match crate::evidence::submit_preview(&state, &ssr::client_key(&state), &input).await {
        Ok(Some(id)) => Ok(PreviewOutcome::Accepted {
            reference: format!("PR-{id}"),
        }),
        // The honeypot: answer as if accepted, store nothing.
        Ok(None) => Ok(PreviewOutcome::Accepted {
            reference: "received".into(),
        }),
        Err(e) if e.status == 429 => Ok(PreviewOutcome::RateLimited {
            retry_after_s: e.retry_after.unwrap_or(60),
        }),
        Err(e) if e.status == 422 => Ok(PreviewOutcome::Invalid {
            errors: vec![FieldError {
                field: e.field.unwrap_or_else(|| "form".into()),
                message: e.message,
            }],
        }),
        Err(e) => Err(ssr::fail(e)),
    }
}

/// What the login form gets back.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum LoginOutcome {
    LoggedIn,
    Refused(String),
}

#[server(prefix = "/_site", endpoint = "login")]
pub async fn login(name: String, password: String) -> Result<LoginOutcome, ServerFnError> {
    let state = ssr::state()?;
    ssr::check_origin(&state)?;
    if name.trim().is_empty() || password.is_empty() {
        return Ok(LoginOutcome::Refused(
            "Enter your operator name and password.".into(),
        ));
    }
    let headers = ssr::headers()?;
    let origin = ssr::header(&headers, "origin");
    let cookie = ssr::header(&headers, "cookie");
    let client = ssr::client_key(&state);
    match vkae_evidence::service::login(
        &state,
        &client,
        name.trim(),
        &password,
        origin.as_deref(),
        cookie.as_deref(),
    )
    .await
    {
        Ok(login) => {
            ssr::set_cookie(&login.set_cookie)?;
            Ok(LoginOutcome::LoggedIn)
        }
        Err(e) if e.status.as_u16() == 401 => Ok(LoginOutcome::Refused(
            "That name and password do not match an operator.".into(),
        )),
        // Back-off after failed logins, or every hashing slot busy: the status and Retry-After go out as the
        // JSON API sends them, with the reason in words for the form.
        Err(e) if matches!(e.status.as_u16(), 429 | 503) => {
            ssr::refuse_for(e.status.as_u16(), e.retry_after.unwrap_or(1));
            Ok(LoginOutcome::Refused(format!(
                "Too many login attempts; try again in {} s.",
                e.retry_after.unwrap_or(1)
            )))
        }
        Err(e) => Err(ssr::fail(e.into())),
    }
}

#[server(prefix = "/_site", endpoint = "logout")]
pub async fn logout(csrf: String) -> Result<(), ServerFnError> {
    let (state, _session) = ssr::operator(&csrf).await?;
    let cookie = ssr::header(&ssr::headers()?, "cookie");
    vkae_evidence::service::logout(&state, cookie.as_deref())
        .await
        .map_err(|e| ssr::fail(e.into()))?;
    ssr::set_cookie(&vkae_evidence::auth::clear_session_cookie())
}

/// The internal page's data, or `None` when the visitor is not logged in.
#[server(prefix = "/_site", endpoint = "internal-data")]
pub async fn load_internal() -> Result<Option<InternalData>, ServerFnError> {
    let state = ssr::state()?;
    let Some(session) = ssr::session(&state).await? else {
        return Ok(None);
    };
    crate::evidence::internal_data(&state, &session)
        .await
        .map(Some)
        .map_err(ssr::fail)
}

/// The result of promote or retract: `Err` carries the store's refusal, in words for the operator.
pub type Decision = Result<(), String>;

#[server(prefix = "/_site", endpoint = "promote")]
pub async fn promote(
    run_id: String,
    level: String,
    reason: String,
    csrf: String,
) -> Result<Decision, ServerFnError> {
    let (state, session) = ssr::operator(&csrf).await?;
    ssr::decision(
        vkae_evidence::service::promote(&state, &session.operator, &run_id, &level, reason.trim())
            .await,
    )
}

#[server(prefix = "/_site", endpoint = "retract")]
pub async fn retract(
    run_id: String,
    reason: String,
    csrf: String,
) -> Result<Decision, ServerFnError> {
    let (state, session) = ssr::operator(&csrf).await?;
    ssr::decision(
        vkae_evidence::service::retract(&state, &session.operator, &run_id, reason.trim()).await,
    )
}

#[cfg(feature = "ssr")]
pub mod ssr {
    use crate::evidence::StoreError;
    use http::request::Parts;
    use http::{HeaderMap, HeaderValue, StatusCode};
    use leptos::prelude::*;
    use leptos_axum::ResponseOptions;
    use vkae_evidence::service::{self, Session};
    use vkae_evidence::{ApiError, AppState};

    pub fn state() -> Result<AppState, ServerFnError> {
        use_context::<AppState>()
            .ok_or_else(|| ServerFnError::new("the evidence store is not connected"))
    }

    pub fn headers() -> Result<HeaderMap, ServerFnError> {
        use_context::<Parts>()
            .map(|p| p.headers)
            .ok_or_else(|| ServerFnError::new("no request"))
    }

    pub fn header(headers: &HeaderMap, name: &str) -> Option<String> {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    }

    /// Answers with `status` and `Retry-After: seconds` (a throttled login).
    pub fn refuse_for(status: u16, seconds: u64) {
        set_status(status);
        if let Some(response) = use_context::<ResponseOptions>() {
            response.insert_header(http::header::RETRY_AFTER, HeaderValue::from(seconds));
        }
    }

    fn set_status(status: u16) {
        if let (Some(response), Ok(status)) = (
            use_context::<ResponseOptions>(),
            StatusCode::from_u16(status),
        ) {
            response.set_status(status);
        }
    }

    /// A store error as a server-function error: the status is kept, 5xx causes are logged and not shown.
    pub fn fail(e: StoreError) -> ServerFnError {
        set_status(e.status);
        if e.status >= 500 {
            tracing_free_log(&e.message);
            ServerFnError::new("The evidence store could not answer; try again shortly.")
        } else {
            ServerFnError::new(e.message)
        }
    }

    fn tracing_free_log(message: &str) {
        eprintln!("vkae site: evidence store error: {message}");
    }

    /// A state change must carry this site's Origin (the configured public origin).
    pub fn check_origin(state: &AppState) -> Result<(), ServerFnError> {
        let origin = header(&headers()?, "origin");
        vkae_evidence::auth::check_origin(
            state.settings.public_origin.as_str(),
            origin.as_deref(),
            true,
        )
        .map_err(|e| fail(e.into()))
    }

    /// The client key for the store's per-client rate limit: the peer address.
    pub fn client_key(state: &AppState) -> String {
        let parts = use_context::<Parts>();
        let forwarded = state
            .settings
            .trust_forwarded_for
            .then(|| {
                parts
                    .as_ref()
                    .and_then(|p| header(&p.headers, "x-forwarded-for"))
                    .and_then(|v| v.split(',').next().map(|s| s.trim().to_string()))
            })
            .flatten();
        forwarded
            .or_else(|| {
                parts.and_then(|p| {
                    p.extensions
                        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
                        .map(|c| c.0.ip().to_string())
                })
            })
            .unwrap_or_else(|| "unknown".into())
    }

    pub async fn session(state: &AppState) -> Result<Option<Session>, ServerFnError> {
        let cookie = header(&headers()?, "cookie");
        service::session_from_cookie_header(state, cookie.as_deref())
            .await
            .map_err(|e| fail(e.into()))
    }

    /// The logged-in operator, after the store's Origin and CSRF checks.
    pub async fn operator(csrf: &str) -> Result<(AppState, Session), ServerFnError> {
        let state = state()?;
        let Some(session) = session(&state).await? else {
            set_status(401);
            return Err(ServerFnError::new(
                "Not logged in, or the session expired: log in again.",
            ));
        };
        let origin = header(&headers()?, "origin");
        service::check_csrf(&state, &session, origin.as_deref(), Some(csrf))
            .map_err(|e| fail(e.into()))?;
        Ok((state, session))
    }

    /// A promote/retract result: refusals (4xx) go back to the operator in words, failures are errors.
    pub fn decision<T>(result: Result<T, ApiError>) -> Result<Result<(), String>, ServerFnError> {
        match result {
            Ok(_) => Ok(Ok(())),
            Err(e) if e.status.is_client_error() => Ok(Err(e.message)),
            Err(e) => Err(fail(e.into())),
        }
    }

    pub fn set_cookie(value: &str) -> Result<(), ServerFnError> {
        let value = HeaderValue::from_str(value)
            .map_err(|e| ServerFnError::new(format!("bad cookie: {e}")))?;
        let response =
            use_context::<ResponseOptions>().ok_or_else(|| ServerFnError::new("no response"))?;
        response.append_header(http::header::SET_COOKIE, value);
        Ok(())
    }
}
