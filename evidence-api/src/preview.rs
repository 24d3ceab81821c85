//! Private-preview requests: validation per field, a honeypot, a per-client rate limit, storage, and the internal
//! list and CSV export.

use crate::content::Content;
use crate::db::{now_rfc3339, Db};
use crate::error::{ApiError, ApiResult};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The honeypot field: hidden from people by the form, filled by bots.
pub const HONEYPOT_FIELD: &str = "website";
/// Longest message accepted, in characters.
pub const MESSAGE_MAX_CHARS: usize = 2000;
/// Values of `model_family` and `gpu` besides catalog ids.
pub const UNDECIDED: &str = "undecided";

/// A request as submitted (JSON or form-encoded). Every field is a string; absent means empty.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PreviewInput {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub email: String,
    #[serde(default)]
    pub company: String,
    #[serde(default)]
    pub service_path: String,
    #[serde(default)]
    pub model_family: String,
    #[serde(default)]
    pub gpu: String,
    #[serde(default)]
    pub message: String,
    /// The honeypot.
    #[serde(default)]
    pub website: String,
    /// Present when a browser form posts it; ignored here.
    #[serde(default)]
    pub csrf_token: Option<String>,
}

/// A stored request.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, PartialEq)]
pub struct PreviewRequest {
    pub id: i64,
    pub received_at: String,
    pub name: String,
    pub email: String,
    pub company: String,
    pub service_path: String,
    pub model_family: String,
    pub gpu: String,
    pub message: String,
}

/// Free mail domains: a preview request needs a work email.
const FREE_MAIL: &[&str] = &[
    "gmail.com",
    "googlemail.com",
    "yahoo.com",
    "yahoo.co.uk",
    "hotmail.com",
    "outlook.com",
    "live.com",
    "msn.com",
    "icloud.com",
    "me.com",
    "aol.com",
    "proton.me",
    "protonmail.com",
    "gmx.com",
    "gmx.de",
    "mail.com",
    "yandex.com",
    "yandex.ru",
    "mail.ru",
    "qq.com",
    "163.com",
    "126.com",
    "naver.com",
    "hanmail.net",
    "web.de",
    "zoho.com",
];

fn text_field(field: &str, value: &str, max: usize) -> ApiResult<String> {
    let v = value.trim();
    if v.is_empty() {
        return Err(ApiError::invalid_field(
            field,
            format!("{field} is required"),
        ));
    }
    if v.chars().count() > max {
        return Err(ApiError::invalid_field(
            field,
            format!("{field} is at most {max} characters"),
        ));
    }
    if v.chars().any(|c| c.is_control()) {
        return Err(ApiError::invalid_field(
            field,
            format!("{field} may not contain control characters"),
        ));
    }
    Ok(v.to_string())
}

fn validate_email(value: &str) -> ApiResult<String> {
    let email = value.trim().to_ascii_lowercase();
    let bad = || ApiError::invalid_field("email", "a valid work email address is required");
    if email.len() > 254 || email.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(bad());
    }
    let (local, domain) = email.rsplit_once('@').ok_or_else(bad)?;
    if local.is_empty() || local.contains('@') || domain.len() < 4 || !domain.contains('.') {
        return Err(bad());
    }
    let labels_ok = domain.split('.').all(|l| {
        !l.is_empty()
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
    });
    if !labels_ok {
        return Err(bad());
    }
    if FREE_MAIL.contains(&domain) {
        return Err(ApiError::invalid_field(
            "email",
            format!("please use a work email address ({domain} is a personal mail provider)"),
        ));
    }
    Ok(email)
}

/// A validated request, ready to store.
#[derive(Debug, Clone, PartialEq)]
pub struct ValidPreview {
    pub name: String,
    pub email: String,
    pub company: String,
    pub service_path: String,
    pub model_family: String,
    pub gpu: String,
    pub message: String,
}

/// Validates each field; the first failing field is named in the error (422).
pub fn validate(input: &PreviewInput, content: &Content) -> ApiResult<ValidPreview> {
    let name = text_field("name", &input.name, 200)?;
    let email = validate_email(&input.email)?;
    let company = text_field("company", &input.company, 200)?;
    let service_path = input.service_path.trim().to_string();
    if content.service_path(&service_path).is_none() {
        return Err(ApiError::invalid_field(
            "service_path",
            "one of report, managed-endpoint, private-docker, on-prem, custom-build",
        ));
    }
    let model_family = input.model_family.trim().to_string();
    if model_family != UNDECIDED && content.family(&model_family).is_none() {
        let slugs: Vec<&str> = content
            .catalog
            .families
            .iter()
            .map(|f| f.slug.as_str())
            .collect();
        return Err(ApiError::invalid_field(
            "model_family",
            format!("one of {} or {UNDECIDED}", slugs.join(", ")),
        ));
    }
    let gpu = input.gpu.trim().to_string();
    if gpu != UNDECIDED && content.gpu(&gpu).is_none() {
        let ids: Vec<&str> = content.gpus.iter().map(|g| g.id.as_str()).collect();
        return Err(ApiError::invalid_field(
            "gpu",
            format!("one of {} or {UNDECIDED}", ids.join(", ")),
        ));
    }
    let message = input.message.trim().to_string();
    if message.chars().count() > MESSAGE_MAX_CHARS {
        return Err(ApiError::invalid_field(
            "message",
            format!("message is at most {MESSAGE_MAX_CHARS} characters"),
        ));
    }
    Ok(ValidPreview {
        name,
        email,
        company,
        service_path,
        model_family,
        gpu,
        message,
    })
}

/// A sliding-window limit per client key.
#[derive(Debug)]
pub struct RateLimiter {
    limit: usize,
    window: Duration,
    hits: Mutex<HashMap<String, VecDeque<Instant>>>,
}

impl RateLimiter {
    pub fn new(limit: usize, window: Duration) -> Self {
        RateLimiter {
            limit,
            window,
            hits: Mutex::new(HashMap::new()),
        }
    }

    /// Counts a hit; `Err(seconds)` to wait when over the limit.
    pub fn check(&self, key: &str) -> Result<(), u64> {
        let now = Instant::now();
        let mut hits = self.hits.lock().unwrap_or_else(|p| p.into_inner());
        if hits.len() > 10_000 {
            // Bound memory: forget clients whose window has passed.
            hits.retain(|_, q| {
                q.back()
                    .is_some_and(|t| now.duration_since(*t) < self.window)
            });
        }
        let queue = hits.entry(key.to_string()).or_default();
        while queue
            .front()
            .is_some_and(|t| now.duration_since(*t) >= self.window)
        {
            queue.pop_front();
        }
        if queue.len() >= self.limit {
            let oldest = *queue.front().expect("non-empty at the limit");
            let wait = self.window.saturating_sub(now.duration_since(oldest));
            return Err(wait.as_secs().max(1));
        }
        queue.push_back(now);
        Ok(())
    }
}

/// What a submission did (both answer the client the same way).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Submitted {
    Stored(i64),
    /// The honeypot was filled: nothing stored, the client is not told.
    Discarded,
}

/// Rate-limits by `client_key`, drops honeypot hits silently, validates and stores.
pub async fn submit(
    db: &Db,
    content: &Content,
    limiter: &RateLimiter,
    client_key: &str,
    input: &PreviewInput,
) -> ApiResult<Submitted> {
    if let Err(seconds) = limiter.check(client_key) {
        let mut e = ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            format!("too many requests; retry in {seconds} s"),
        );
        e.retry_after = Some(seconds);
        return Err(e);
    }
    if !input.website.trim().is_empty() {
        tracing::info!(
            client = client_key,
            "preview request honeypot filled; discarded"
        );
        return Ok(Submitted::Discarded);
    }
    let v = validate(input, content)?;
    let id = sqlx::query(
        "INSERT INTO preview_requests (received_at, name, email, company, service_path, model_family, gpu, message) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(now_rfc3339())
    .bind(&v.name)
    .bind(&v.email)
    .bind(&v.company)
    .bind(&v.service_path)
    .bind(&v.model_family)
    .bind(&v.gpu)
    .bind(&v.message)
    .execute(&db.writer)
    .await?
    .last_insert_rowid();
    Ok(Submitted::Stored(id))
}

/// All stored requests, newest first.
pub async fn list(db: &Db) -> ApiResult<Vec<PreviewRequest>> {
    Ok(sqlx::query_as(
        "SELECT id, received_at, name, email, company, service_path, model_family, gpu, message FROM preview_requests ORDER BY id DESC",
    )
    .fetch_all(&db.reader)
    .await?)
}

fn csv_field(s: &str) -> String {
    // Neutralise spreadsheet formulas, then quote per RFC 4180.
    let s = if s.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{s}")
    } else {
        s.to_string()
    };
    format!("\"{}\"", s.replace('"', "\"\""))
}

/// RFC 4180 CSV of the requests (header row first, CRLF line ends).
pub fn to_csv(requests: &[PreviewRequest]) -> String {
    let mut out =
        String::from("id,received_at,name,email,company,service_path,model_family,gpu,message\r\n");
    for r in requests {
        let fields = [
            r.id.to_string(),
            csv_field(&r.received_at),
            csv_field(&r.name),
            csv_field(&r.email),
            csv_field(&r.company),
            csv_field(&r.service_path),
            csv_field(&r.model_family),
            csv_field(&r.gpu),
            csv_field(&r.message),
        ];
        out.push_str(&fields.join(","));
        out.push_str("\r\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_limiter_counts_per_client() {
        let l = RateLimiter::new(2, Duration::from_secs(60));
        assert!(l.check("a").is_ok());
        assert!(l.check("a").is_ok());
        let wait = l.check("a").unwrap_err();
        assert!((1..=60).contains(&wait));
        assert!(l.check("b").is_ok());
    }

    #[test]
    fn csv_quotes_and_neutralises() {
        let r = PreviewRequest {
            id: 1,
            received_at: "t".into(),
            name: "A \"B\"".into(),
            email: "a@b.co".into(),
            company: "=HYPERLINK()".into(),
            service_path: "report".into(),
            model_family: "E4B".into(),
            gpu: "h200".into(),
            message: "line1\nline2, more".into(),
        };
        let csv = to_csv(&[r]);
        assert!(csv.contains("\"A \"\"B\"\"\""));
        assert!(csv.contains("\"'=HYPERLINK()\""));
        assert!(csv.contains("\"line1\nline2, more\""));
    }

    #[test]
    fn emails() {
        assert!(validate_email("Ada@Example.COM").is_ok());
        for bad in [
            "",
            "a",
            "a@b",
            "@example.com",
            "a@gmail.com",
            "a b@example.com",
            "a@-x.com",
            "a@x..com",
        ] {
            assert!(validate_email(bad).is_err(), "{bad}");
        }
    }
}
