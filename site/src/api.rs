//! Server functions: the site's only way to the evidence store. Each state-changing function checks, itself,
//! that the request came from our own origin and (for operators) that the session is live and the CSRF token
//! matches; none relies on the page that called it.

use crate::model::{ClaimLevel, InternalData, PublicData};
use crate::preview_form::{PreviewInput, PreviewOutcome};
use leptos::prelude::*;
use leptos::server_fn::codec::{Json, PostUrl};

/// Server functions live under their own prefix so they never collide with the JSON API's `/api/v1`.
pub const PREFIX: &str = "/_site";

#[server(prefix = "/_site", endpoint = "public-data")]
pub async fn load_public() -> Result<PublicData, ServerFnError> {
    let backend = ssr::backend()?;
    backend.public_data().await.map_err(ssr::store_error)
}

#[server(prefix = "/_site", endpoint = "preview-request", input = PostUrl, output = Json)]
pub async fn submit_preview(input: PreviewInput) -> Result<PreviewOutcome, ServerFnError> {
    ssr::same_origin()?;
    let backend = ssr::backend()?;
    if !input.website.is_empty() {
        // The honeypot: answer as if accepted, store nothing.
        return Ok(PreviewOutcome::Accepted {
            reference: "received".into(),
        });
    }
    let data = backend.public_data().await.map_err(ssr::store_error)?;
    let families: Vec<String> = data
        .catalog
        .families
        .iter()
        .map(|f| f.name.clone())
        .collect();
    let gpus: Vec<String> = data.gpus.iter().map(|g| g.name.clone()).collect();
    let errors = input.validate(&families, &gpus);
    if !errors.is_empty() {
        return Ok(PreviewOutcome::Invalid { errors });
    }
    backend
        .submit_preview(input, ssr::client_id())
        .await
        .map_err(ssr::store_error)
}

/// What the login form gets back.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum LoginOutcome {
    LoggedIn,
    Refused(String),
}

#[server(prefix = "/_site", endpoint = "login")]
pub async fn login(name: String, password: String) -> Result<LoginOutcome, ServerFnError> {
    ssr::same_origin()?;
    if name.trim().is_empty() || password.is_empty() {
        return Ok(LoginOutcome::Refused(
            "Enter your operator name and password.".into(),
        ));
    }
    let backend = ssr::backend()?;
    match backend
        .login(name.trim().to_string(), password)
        .await
        .map_err(ssr::store_error)?
    {
        Some(new) => {
            ssr::set_cookie(&new.set_cookie)?;
            Ok(LoginOutcome::LoggedIn)
        }
        None => Ok(LoginOutcome::Refused(
            "That name and password do not match an operator.".into(),
        )),
    }
}

#[server(prefix = "/_site", endpoint = "logout")]
pub async fn logout(csrf: String) -> Result<(), ServerFnError> {
    let _session = ssr::operator(&csrf).await?;
    let backend = ssr::backend()?;
    let clear = backend
        .logout(ssr::cookie_header())
        .await
        .map_err(ssr::store_error)?;
    ssr::set_cookie(&clear)
}

/// The internal page's data, or `None` when the visitor is not logged in.
#[server(prefix = "/_site", endpoint = "internal-data")]
pub async fn load_internal() -> Result<Option<InternalData>, ServerFnError> {
    let backend = ssr::backend()?;
    let Some(session) = backend
        .session(ssr::cookie_header())
        .await
        .map_err(ssr::store_error)?
    else {
        return Ok(None);
    };
    backend
        .internal_data(session)
        .await
        .map(Some)
        .map_err(ssr::store_error)
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
    let session = ssr::operator(&csrf).await?;
    let level = match ClaimLevel::parse(&level) {
        Ok(level) => level,
        Err(message) => return Ok(Err(message)),
    };
    if reason.trim().is_empty() {
        return Ok(Err("A promotion needs a reason.".into()));
    }
    let backend = ssr::backend()?;
    backend
        .promote(session.operator, run_id, level, reason.trim().to_string())
        .await
        .map_err(ssr::store_error)
}

#[server(prefix = "/_site", endpoint = "retract")]
pub async fn retract(
    run_id: String,
    reason: String,
    csrf: String,
) -> Result<Decision, ServerFnError> {
    let session = ssr::operator(&csrf).await?;
    if reason.trim().is_empty() {
        return Ok(Err("A retraction needs a reason.".into()));
    }
    let backend = ssr::backend()?;
    backend
        .retract(session.operator, run_id, reason.trim().to_string())
        .await
        .map_err(ssr::store_error)
}

#[cfg(feature = "ssr")]
pub mod ssr {
    use crate::backend::{OperatorSession, SharedBackend};
    use http::header::{COOKIE, HOST, ORIGIN, SET_COOKIE};
    use http::request::Parts;
    use http::HeaderValue;
    use leptos::prelude::*;
    use leptos_axum::ResponseOptions;

    pub fn backend() -> Result<SharedBackend, ServerFnError> {
        use_context::<SharedBackend>()
            .ok_or_else(|| ServerFnError::new("the evidence store is not connected"))
    }

    pub fn store_error(error: String) -> ServerFnError {
        eprintln!("vkae site: evidence store error: {error}");
        ServerFnError::new("The evidence store could not answer; try again shortly.")
    }

    fn parts() -> Result<Parts, ServerFnError> {
        use_context::<Parts>().ok_or_else(|| ServerFnError::new("no request"))
    }

    pub fn cookie_header() -> String {
        parts()
            .ok()
            .and_then(|p| {
                p.headers
                    .get(COOKIE)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string)
            })
            .unwrap_or_default()
    }

    /// The client's address as the server saw it (for the store's per-client rate limit).
    pub fn client_id() -> String {
        parts()
            .ok()
            .and_then(|p| {
                p.extensions
                    .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
                    .map(|c| c.0.ip().to_string())
            })
            .unwrap_or_else(|| "unknown".into())
    }

    /// A state change must come from a page of ours: the browser's `Origin` must name the host it asked.
    pub fn same_origin() -> Result<(), ServerFnError> {
        let parts = parts()?;
        let origin = parts.headers.get(ORIGIN).and_then(|v| v.to_str().ok());
        let host = parts.headers.get(HOST).and_then(|v| v.to_str().ok());
        match (origin, host) {
            (Some(origin), Some(host))
                if origin
                    .strip_prefix("http://")
                    .or_else(|| origin.strip_prefix("https://"))
                    == Some(host) =>
            {
                Ok(())
            }
            _ => {
                forbid();
                Err(ServerFnError::new(
                    "refused: the request did not come from this site (Origin check)",
                ))
            }
        }
    }

    fn forbid() {
        if let Some(response) = use_context::<ResponseOptions>() {
            response.set_status(http::StatusCode::FORBIDDEN);
        }
    }

    /// The logged-in operator, after the Origin check and the CSRF token check.
    pub async fn operator(csrf: &str) -> Result<OperatorSession, ServerFnError> {
        same_origin()?;
        let backend = backend()?;
        let Some(session) = backend
            .session(cookie_header())
            .await
            .map_err(store_error)?
        else {
            if let Some(response) = use_context::<ResponseOptions>() {
                response.set_status(http::StatusCode::UNAUTHORIZED);
            }
            return Err(ServerFnError::new(
                "not logged in (or the session expired): log in again",
            ));
        };
        if !constant_time_eq(session.csrf_token.as_bytes(), csrf.as_bytes()) {
            forbid();
            return Err(ServerFnError::new(
                "refused: the CSRF token does not match this session",
            ));
        }
        Ok(session)
    }

    fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
        a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
    }

    pub fn set_cookie(value: &str) -> Result<(), ServerFnError> {
        let value = HeaderValue::from_str(value)
            .map_err(|e| ServerFnError::new(format!("bad cookie: {e}")))?;
        let response =
            use_context::<ResponseOptions>().ok_or_else(|| ServerFnError::new("no response"))?;
        response.append_header(SET_COOKIE, value);
        Ok(())
    }
}
