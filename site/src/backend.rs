//! What the site needs from the evidence store, as one trait. The server implements it over `vkae_evidence`
//! in-process (`evidence.rs`); server functions reach it through Leptos context. Keeping it a trait keeps the
//! pages independent of how the store names its functions.

use crate::model::{ClaimLevel, InternalData, PublicData};
use crate::preview_form::{PreviewInput, PreviewOutcome};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A failure of the store itself (not a refusal): shown as a clear state, logged on the server.
pub type StoreResult<T> = Result<T, String>;

/// An operator's live session, found from the request's cookie.
#[derive(Clone, Debug)]
pub struct OperatorSession {
    pub operator: String,
    pub csrf_token: String,
}

/// A successful login: the session and the `Set-Cookie` header value that carries it.
#[derive(Clone, Debug)]
pub struct NewSession {
    pub session: OperatorSession,
    pub set_cookie: String,
}

pub trait Backend: Send + Sync + 'static {
    fn public_data(&self) -> BoxFuture<'_, StoreResult<PublicData>>;

    /// Stores a preview request that already passed the form's validation; the store validates again.
    /// `client` identifies the sender for rate limiting.
    fn submit_preview(
        &self,
        input: PreviewInput,
        client: String,
    ) -> BoxFuture<'_, StoreResult<PreviewOutcome>>;

    /// `Ok(None)` for a wrong name or password.
    fn login(
        &self,
        name: String,
        password: String,
    ) -> BoxFuture<'_, StoreResult<Option<NewSession>>>;

    /// The session named by the request's `Cookie` header, if it is live.
    fn session(&self, cookie_header: String)
        -> BoxFuture<'_, StoreResult<Option<OperatorSession>>>;

    /// Ends the session; returns the `Set-Cookie` value that clears the cookie.
    fn logout(&self, cookie_header: String) -> BoxFuture<'_, StoreResult<String>>;

    fn internal_data(&self, session: OperatorSession) -> BoxFuture<'_, StoreResult<InternalData>>;

    /// `Ok(Err(reason))` when the store refuses (failing lanes named, porting-track family, ...).
    fn promote(
        &self,
        operator: String,
        run_id: String,
        level: ClaimLevel,
        reason: String,
    ) -> BoxFuture<'_, StoreResult<Result<(), String>>>;

    fn retract(
        &self,
        operator: String,
        run_id: String,
        reason: String,
    ) -> BoxFuture<'_, StoreResult<Result<(), String>>>;

    /// The preview inbox as CSV.
    fn inbox_csv(&self) -> BoxFuture<'_, StoreResult<String>>;
}

/// The backend as the site holds it.
pub type SharedBackend = Arc<dyn Backend>;
