//! Credentials: operator accounts (argon2id passwords), bearer tokens (ingest and operator; only a SHA-256 is
//! stored), browser sessions (cookie `__Host-vkae_session`, only a SHA-256 of the session token stored, idle
//! expiry, CSRF token per session) and the checks every internal route runs.
//!
//! Choice for non-browser clients: scripts and the harness send `Authorization: Bearer <token>`; bearer requests
//! carry no ambient credential, so they need no CSRF token. Browser requests authenticate with the session cookie
//! and every state-changing one must carry an `Origin` equal to the configured public origin AND the session's
//! CSRF token (`x-csrf-token` header or `csrf_token` form field).

use crate::db::{now_rfc3339, now_unix};
use crate::error::{ApiError, ApiResult};
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use axum::http::{header, HeaderMap, Method, StatusCode};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use sha2::{Digest, Sha256};
use sqlx::SqlitePool;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;

/// The session cookie's name. The `__Host-` prefix makes browsers insist on Secure, Path=/ and no Domain.
pub const SESSION_COOKIE: &str = "__Host-vkae_session";
/// Header carrying the CSRF token.
pub const CSRF_HEADER: &str = "x-csrf-token";

/// What a bearer token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenKind {
    Ingest,
    Operator,
}

impl TokenKind {
    fn as_str(self) -> &'static str {
        match self {
            TokenKind::Ingest => "ingest",
            TokenKind::Operator => "operator",
        }
    }
}

/// An authenticated operator. Only this module makes one (from a password, a session, an operator token or a
/// name looked up by the CLI), so a function taking `&Operator` cannot be called unauthenticated by mistake.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Operator {
    pub id: i64,
    pub name: String,
}

impl Operator {
    fn new(id: i64, name: String) -> Self {
        Operator { id, name }
    }
}

/// How a request to an internal route authenticated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    /// An ingest token (may only ingest).
    Ingest { token_id: i64 },
    /// An operator, by bearer token or session.
    Operator(Operator),
}

/// A live browser session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub operator: Operator,
    pub csrf_token: String,
    pub token_hash: String,
}

/// A session just created by [`login`]: the cookie value is shown once, to be set on the response.
#[derive(Debug, Clone)]
pub struct NewSession {
    pub operator: Operator,
    pub session_token: String,
    pub csrf_token: String,
}

/// 32 random bytes, base64url.
pub fn random_token() -> String {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).expect("the operating system's random source is available");
    URL_SAFE_NO_PAD.encode(bytes)
}

fn new_salt() -> SaltString {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).expect("the operating system's random source is available");
    SaltString::encode_b64(&bytes).expect("16 bytes make a valid salt")
}

/// Lower-case hex SHA-256.
pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn validate_operator_name(name: &str) -> ApiResult<()> {
    if (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    {
        Ok(())
    } else {
        Err(ApiError::invalid_field(
            "name",
            "an operator name is 1 to 64 of A-Z a-z 0-9 . _ -",
        ))
    }
}

/// Creates an operator with an argon2id-hashed password (at least 12 characters).
pub async fn add_operator(pool: &SqlitePool, name: &str, password: &str) -> ApiResult<Operator> {
    validate_operator_name(name)?;
    if password.chars().count() < 12 {
        return Err(ApiError::invalid_field(
            "password",
            "a password has at least 12 characters",
        ));
    }
    let salt = new_salt();
    let hash = Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map_err(|e| ApiError::internal("argon2 hashing failed", e))?
        .to_string();
    let result =
        sqlx::query("INSERT INTO operators (name, password_hash, created_at) VALUES (?, ?, ?)")
            .bind(name)
            .bind(&hash)
            .bind(now_rfc3339())
            .execute(pool)
            .await;
    match result {
        Ok(done) => Ok(Operator::new(done.last_insert_rowid(), name.to_string())),
        Err(sqlx::Error::Database(e)) if e.is_unique_violation() => Err(ApiError::conflict(
            "operator_exists",
            format!("operator {name:?} exists"),
        )
        .with_field("name")),
        Err(e) => Err(e.into()),
    }
}

/// Looks an operator up by name.
pub async fn find_operator(pool: &SqlitePool, name: &str) -> ApiResult<Option<Operator>> {
    let row: Option<(i64, String)> =
        sqlx::query_as("SELECT id, name FROM operators WHERE name = ?")
            .bind(name)
            .fetch_optional(pool)
            .await?;
    Ok(row.map(|(id, name)| Operator::new(id, name)))
}

/// Failed logins a key (an account name or a client address) may make before back-off starts.
pub const FREE_LOGIN_FAILURES: u32 = 5;
/// The longest back-off after repeated failures.
const MAX_LOGIN_BACKOFF: Duration = Duration::from_secs(15 * 60);
/// A failure streak is forgotten after this long without a new failure.
const FAILURE_MEMORY: Duration = Duration::from_secs(60 * 60);
/// How long a login waits for a free password-hashing slot before it is refused.
const HASHING_WAIT: Duration = Duration::from_millis(500);

#[derive(Debug, Clone, Copy)]
struct FailureStreak {
    count: u32,
    last: Instant,
    blocked_until: Instant,
}

/// Bounds password checking: at most one argon2 verification per core at a time (each takes ~19 MiB), and
/// exponential back-off per account name and per client address after [`FREE_LOGIN_FAILURES`] failures.
/// Unknown names are throttled exactly as real ones, so the answers do not tell them apart.
#[derive(Debug)]
pub struct LoginGuard {
    hashing: Arc<Semaphore>,
    streaks: Mutex<HashMap<String, FailureStreak>>,
}

impl Default for LoginGuard {
    fn default() -> Self {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        LoginGuard::new(cores)
    }
}

impl LoginGuard {
    /// A guard allowing `hashing_slots` password verifications at once.
    pub fn new(hashing_slots: usize) -> Self {
        LoginGuard {
            hashing: Arc::new(Semaphore::new(hashing_slots.max(1))),
            streaks: Mutex::new(HashMap::new()),
        }
    }

    fn keys(name: &str, client: &str) -> [String; 2] {
        [format!("account:{name}"), format!("client:{client}")]
    }

    /// Seconds to wait when either key is backing off.
    fn blocked_for(&self, keys: &[String; 2]) -> Option<u64> {
        let now = Instant::now();
        let streaks = self.streaks.lock().unwrap_or_else(|p| p.into_inner());
        keys.iter()
            .filter_map(|k| streaks.get(k))
            .filter(|s| s.blocked_until > now)
            .map(|s| (s.blocked_until - now).as_secs_f64().ceil() as u64)
            .max()
            .map(|s| s.max(1))
    }

    fn record_failure(&self, keys: &[String; 2]) {
        let now = Instant::now();
        let mut streaks = self.streaks.lock().unwrap_or_else(|p| p.into_inner());
        if streaks.len() > 10_000 {
            // Bound memory: forget streaks that have gone quiet.
            streaks.retain(|_, s| now.duration_since(s.last) < FAILURE_MEMORY);
        }
        for key in keys {
            let streak = streaks.entry(key.clone()).or_insert(FailureStreak {
                count: 0,
                last: now,
                blocked_until: now,
            });
            if now.duration_since(streak.last) >= FAILURE_MEMORY {
                streak.count = 0;
            }
            streak.count += 1;
            streak.last = now;
            if streak.count >= FREE_LOGIN_FAILURES {
                let doublings = (streak.count - FREE_LOGIN_FAILURES).min(20);
                let backoff = Duration::from_secs(1u64 << doublings).min(MAX_LOGIN_BACKOFF);
                streak.blocked_until = now + backoff;
            }
        }
    }

    fn record_success(&self, keys: &[String; 2]) {
        let mut streaks = self.streaks.lock().unwrap_or_else(|p| p.into_inner());
        for key in keys {
            streaks.remove(key);
        }
    }
}

fn too_many_logins(seconds: u64) -> ApiError {
    let mut e = ApiError::new(
        StatusCode::TOO_MANY_REQUESTS,
        "login_throttled",
        format!("too many failed logins; retry in {seconds} s"),
    );
    e.retry_after = Some(seconds);
    e
}

/// Checks a name and password from `client` (its address). Unknown names and wrong passwords give the same
/// error and take argon2's time; a name or client backing off gets 429 without a check; when every hashing slot
/// stays busy the attempt is refused with 503 rather than queued.
pub async fn check_password(
    pool: &SqlitePool,
    guard: &LoginGuard,
    client: &str,
    name: &str,
    password: &str,
) -> ApiResult<Operator> {
    let keys = LoginGuard::keys(name, client);
    if let Some(seconds) = guard.blocked_for(&keys) {
        return Err(too_many_logins(seconds));
    }
    let permit =
        match tokio::time::timeout(HASHING_WAIT, guard.hashing.clone().acquire_owned()).await {
            Ok(Ok(permit)) => permit,
            _ => {
                let mut e = ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "busy",
                    "too many logins at once; retry shortly",
                );
                e.retry_after = Some(1);
                return Err(e);
            }
        };
    let row: Option<(i64, String, String)> =
        sqlx::query_as("SELECT id, name, password_hash FROM operators WHERE name = ?")
            .bind(name)
            .fetch_optional(pool)
            .await?;
    // An unknown name still pays for one argon2 verification, so timing does not tell names apart.
    static DUMMY: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
        let salt = new_salt();
        Argon2::default()
            .hash_password(random_token().as_bytes(), &salt)
            .map(|h| h.to_string())
            .unwrap_or_default()
    });
    let (operator, hash) = match &row {
        Some((id, name, hash)) => (Some(Operator::new(*id, name.clone())), hash.as_str()),
        None => (None, DUMMY.as_str()),
    };
    let hash = hash.to_string();
    let password = password.to_string();
    // The permit moves into the blocking task: a request that times out does not free the slot before the
    // hashing it started has finished.
    let verified = tokio::task::spawn_blocking(move || {
        let _permit = permit;
        PasswordHash::new(&hash)
            .map(|parsed| {
                Argon2::default()
                    .verify_password(password.as_bytes(), &parsed)
                    .is_ok()
            })
            .unwrap_or(false)
    })
    .await
    .map_err(|e| ApiError::internal("password check task failed", e))?;
    match operator {
        Some(op) if verified => {
            guard.record_success(&keys);
            Ok(op)
        }
        _ => {
            guard.record_failure(&keys);
            Err(ApiError::unauthorized("unknown operator or wrong password"))
        }
    }
}

/// Issues a bearer token and stores only its hash. `operator` is required for operator tokens.
pub async fn issue_token(
    pool: &SqlitePool,
    kind: TokenKind,
    operator: Option<&Operator>,
    label: &str,
) -> ApiResult<String> {
    if (kind == TokenKind::Operator) != operator.is_some() {
        return Err(ApiError::bad_request(
            "bad_token_kind",
            "operator tokens name an operator; ingest tokens do not",
        ));
    }
    let token = format!("vkae_{}_{}", kind.as_str(), random_token());
    sqlx::query("INSERT INTO api_tokens (token_hash, kind, operator_id, label, created_at) VALUES (?, ?, ?, ?, ?)")
        .bind(sha256_hex(token.as_bytes()))
        .bind(kind.as_str())
        .bind(operator.map(|o| o.id))
        .bind(label)
        .bind(now_rfc3339())
        .execute(pool)
        .await?;
    Ok(token)
}

/// Resolves a bearer token.
pub async fn principal_for_token(pool: &SqlitePool, token: &str) -> ApiResult<Option<Principal>> {
    let row: Option<(i64, String, Option<i64>, Option<String>)> = sqlx::query_as(
        "SELECT t.id, t.kind, o.id, o.name FROM api_tokens t LEFT JOIN operators o ON o.id = t.operator_id WHERE t.token_hash = ?",
    )
    .bind(sha256_hex(token.as_bytes()))
    .fetch_optional(pool)
    .await?;
    Ok(row.and_then(
        |(token_id, kind, op_id, op_name)| match (kind.as_str(), op_id, op_name) {
            ("ingest", _, _) => Some(Principal::Ingest { token_id }),
            ("operator", Some(id), Some(name)) => {
                Some(Principal::Operator(Operator::new(id, name)))
            }
            _ => None,
        },
    ))
}

/// Logs in: checks the password, drops the session the browser presented (if any) and creates a fresh one.
pub async fn login(
    pool: &SqlitePool,
    guard: &LoginGuard,
    client: &str,
    name: &str,
    password: &str,
    previous_cookie_header: Option<&str>,
) -> ApiResult<NewSession> {
    let operator = check_password(pool, guard, client, name, password).await?;
    if let Some(old) = previous_cookie_header.and_then(session_token_from_cookie_header) {
        sqlx::query("DELETE FROM sessions WHERE token_hash = ?")
            .bind(sha256_hex(old.as_bytes()))
            .execute(pool)
            .await?;
    }
    let session_token = random_token();
    let csrf_token = random_token();
    let now = now_unix();
    sqlx::query("INSERT INTO sessions (token_hash, operator_id, csrf_token, created_at, last_seen_at) VALUES (?, ?, ?, ?, ?)")
        .bind(sha256_hex(session_token.as_bytes()))
        .bind(operator.id)
        .bind(&csrf_token)
        .bind(now)
        .bind(now)
        .execute(pool)
        .await?;
    Ok(NewSession {
        operator,
        session_token,
        csrf_token,
    })
}

/// Ends the session named by the cookie header (no error when there is none).
pub async fn logout(pool: &SqlitePool, cookie_header: Option<&str>) -> ApiResult<()> {
    if let Some(token) = cookie_header.and_then(session_token_from_cookie_header) {
        sqlx::query("DELETE FROM sessions WHERE token_hash = ?")
            .bind(sha256_hex(token.as_bytes()))
            .execute(pool)
            .await?;
    }
    Ok(())
}

/// The session token in a `Cookie` header, if any.
pub fn session_token_from_cookie_header(cookie_header: &str) -> Option<String> {
    cookie_header.split(';').find_map(|pair| {
        let (name, value) = pair.trim().split_once('=')?;
        (name == SESSION_COOKIE && !value.is_empty()).then(|| value.to_string())
    })
}

/// How long a session lives: `idle_seconds` without a request, and `absolute_seconds` after login at most,
/// however active it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionLifetime {
    pub idle_seconds: i64,
    pub absolute_seconds: i64,
}

/// Finds the live session for a `Cookie` header and renews its idle timer. Expired sessions are removed.
pub async fn session_from_cookie_header(
    pool: &SqlitePool,
    cookie_header: Option<&str>,
    lifetime: SessionLifetime,
) -> ApiResult<Option<Session>> {
    let Some(token) = cookie_header.and_then(session_token_from_cookie_header) else {
        return Ok(None);
    };
    let token_hash = sha256_hex(token.as_bytes());
    let row: Option<(i64, String, String, i64, i64)> = sqlx::query_as(
        "SELECT o.id, o.name, s.csrf_token, s.last_seen_at, s.created_at FROM sessions s JOIN operators o ON o.id = s.operator_id WHERE s.token_hash = ?",
    )
    .bind(&token_hash)
    .fetch_optional(pool)
    .await?;
    let Some((id, name, csrf_token, last_seen, created)) = row else {
        return Ok(None);
    };
    let now = now_unix();
    if now - last_seen > lifetime.idle_seconds || now - created > lifetime.absolute_seconds {
        sqlx::query("DELETE FROM sessions WHERE token_hash = ?")
            .bind(&token_hash)
            .execute(pool)
            .await?;
        return Ok(None);
    }
    // Touch at most once a minute: a page with many requests should not write on each.
    if now - last_seen >= 60 {
        sqlx::query("UPDATE sessions SET last_seen_at = ? WHERE token_hash = ?")
            .bind(now)
            .bind(&token_hash)
            .execute(pool)
            .await?;
    }
    Ok(Some(Session {
        operator: Operator::new(id, name),
        csrf_token,
        token_hash,
    }))
}

/// The `Set-Cookie` value for a new session.
pub fn session_cookie(token: &str, idle_seconds: i64) -> String {
    format!("{SESSION_COOKIE}={token}; Path=/; Secure; HttpOnly; SameSite=Strict; Max-Age={idle_seconds}")
}

/// The `Set-Cookie` value that clears the session cookie.
pub fn clear_session_cookie() -> String {
    format!("{SESSION_COOKIE}=; Path=/; Secure; HttpOnly; SameSite=Strict; Max-Age=0")
}

/// Checks a browser's state-changing request: `Origin` must equal `public_origin`, and the presented CSRF token
/// (header or form field) must equal the session's.
pub fn check_csrf(
    session: &Session,
    public_origin: &str,
    origin: Option<&str>,
    presented: Option<&str>,
) -> ApiResult<()> {
    check_origin(public_origin, origin, true)?;
    match presented {
        Some(token) if constant_time_eq(token.as_bytes(), session.csrf_token.as_bytes()) => Ok(()),
        Some(_) => Err(ApiError::forbidden("csrf_mismatch", "the CSRF token does not match this session")),
        None => Err(ApiError::forbidden("csrf_missing", "a state-changing request needs the session's CSRF token (x-csrf-token header or csrf_token field)")),
    }
}

/// Checks an `Origin` header against the configured public origin. `required`: a missing header is refused.
pub fn check_origin(public_origin: &str, origin: Option<&str>, required: bool) -> ApiResult<()> {
    match origin {
        Some(o) if o.trim_end_matches('/') == public_origin.trim_end_matches('/') => Ok(()),
        Some(o) => Err(ApiError::forbidden(
            "bad_origin",
            format!("Origin {o:?} is not this site ({public_origin})"),
        )),
        None if required => Err(ApiError::forbidden(
            "bad_origin",
            "a browser request that changes state must carry an Origin header",
        )),
        None => Ok(()),
    }
}

/// What an internal route accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// Ingest tokens only.
    Ingest,
    /// Operators (bearer token or session).
    Operator,
}

/// Authenticates a request to an internal route. For sessions and unsafe methods the CSRF check runs with
/// `form_csrf` (a `csrf_token` form field) when no header carries the token.
pub async fn authenticate(
    pool: &SqlitePool,
    headers: &HeaderMap,
    method: &Method,
    need: Need,
    public_origin: &str,
    lifetime: SessionLifetime,
    form_csrf: Option<&str>,
) -> ApiResult<Principal> {
    if let Some(value) = headers.get(header::AUTHORIZATION) {
        let value = value
            .to_str()
            .map_err(|_| ApiError::unauthorized("unreadable Authorization header"))?;
        let token = value
            .strip_prefix("Bearer ")
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| ApiError::unauthorized("Authorization must be `Bearer <token>`"))?;
        let principal = principal_for_token(pool, token)
            .await?
            .ok_or_else(|| ApiError::unauthorized("unknown bearer token"))?;
        return match (need, &principal) {
            (Need::Ingest, Principal::Ingest { .. }) | (Need::Operator, Principal::Operator(_)) => {
                Ok(principal)
            }
            (Need::Ingest, Principal::Operator(_)) => Err(ApiError::forbidden(
                "wrong_credential",
                "this route takes an ingest token, not an operator credential",
            )),
            (Need::Operator, Principal::Ingest { .. }) => Err(ApiError::forbidden(
                "wrong_credential",
                "an ingest token may only ingest runs",
            )),
        };
    }
    let cookie = headers.get(header::COOKIE).and_then(|v| v.to_str().ok());
    let session = session_from_cookie_header(pool, cookie, lifetime).await?;
    let Some(session) = session else {
        return Err(ApiError::unauthorized(match need {
            Need::Ingest => "this route needs `Authorization: Bearer <ingest token>`",
            Need::Operator => "log in, or send `Authorization: Bearer <operator token>`",
        }));
    };
    if need == Need::Ingest {
        return Err(ApiError::forbidden(
            "wrong_credential",
            "runs are ingested with an ingest token, not a browser session",
        ));
    }
    if !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS) {
        let origin = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok());
        let presented = headers
            .get(CSRF_HEADER)
            .and_then(|v| v.to_str().ok())
            .or(form_csrf);
        check_csrf(&session, public_origin, origin, presented)?;
    }
    Ok(Principal::Operator(session.operator))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookie_parsing_and_csrf() {
        assert_eq!(
            session_token_from_cookie_header("a=1; __Host-vkae_session=abc; b=2").as_deref(),
            Some("abc")
        );
        assert_eq!(session_token_from_cookie_header("vkae_session=abc"), None);
        let session = Session {
            operator: Operator::new(1, "o".into()),
            csrf_token: "tok".into(),
            token_hash: String::new(),
        };
        let origin = "http://127.0.0.1:8080";
        assert!(check_csrf(&session, origin, Some(origin), Some("tok")).is_ok());
        assert_eq!(
            check_csrf(&session, origin, Some("http://evil.example"), Some("tok"))
                .unwrap_err()
                .code,
            "bad_origin"
        );
        assert_eq!(
            check_csrf(&session, origin, None, Some("tok"))
                .unwrap_err()
                .code,
            "bad_origin"
        );
        assert_eq!(
            check_csrf(&session, origin, Some(origin), Some("tox"))
                .unwrap_err()
                .code,
            "csrf_mismatch"
        );
        assert_eq!(
            check_csrf(&session, origin, Some(origin), None)
                .unwrap_err()
                .code,
            "csrf_missing"
        );
        let cookie = session_cookie("t", 60);
        for part in [
            "__Host-vkae_session=t",
            "Secure",
            "HttpOnly",
            "SameSite=Strict",
            "Path=/",
        ] {
            assert!(cookie.contains(part));
        }
    }
}
