//! Private-preview requests: validation per field, a honeypot, a per-client rate limit, storage, and the internal
//! list and CSV export.

use crate::content::Content;
use crate::db::{now_rfc3339, Db};
use crate::error::{ApiError, ApiResult};
use axum::http::StatusCode;
use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub use vkae_domain::preview::{HONEYPOT_FIELD, MESSAGE_MAX_CHARS, UNDECIDED};
pub use vkae_domain::{PreviewChoices, PreviewInput, PreviewRequest, ValidPreview};

/// The values the catalog offers for the request's choice fields.
pub fn choices(content: &Content) -> PreviewChoices {
    PreviewChoices {
        service_paths: content
            .service_paths
            .iter()
            .map(|p| p.slug.to_string())
            .collect(),
        families: content
            .catalog
            .families
            .iter()
            .map(|f| f.slug.to_string())
            .collect(),
        gpus: content.gpus.iter().map(|g| g.id.to_string()).collect(),
    }
}

/// Validates each field; the first failing field is named in the error (422).
pub fn validate(input: &PreviewInput, content: &Content) -> ApiResult<ValidPreview> {
    input.validate(&choices(content)).map_err(|problems| {
        let first = &problems[0];
        ApiError::invalid_field(first.field, first.api_message())
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

#[derive(sqlx::FromRow)]
struct PreviewRow {
    id: i64,
    received_at: String,
    name: String,
    email: String,
    company: String,
    service_path: String,
    model_family: String,
    gpu: String,
    message: String,
}

/// All stored requests, newest first.
pub async fn list(db: &Db) -> ApiResult<Vec<PreviewRequest>> {
    let rows: Vec<PreviewRow> = sqlx::query_as(
        "SELECT id, received_at, name, email, company, service_path, model_family, gpu, message FROM preview_requests ORDER BY id DESC",
    )
    .fetch_all(&db.reader)
    .await?;
    Ok(rows
        .into_iter()
        .map(|row| PreviewRequest {
            id: row.id,
            received_at: row.received_at,
            request: ValidPreview {
                name: row.name,
                email: row.email,
                company: row.company,
                service_path: row.service_path,
                model_family: row.model_family,
                gpu: row.gpu,
                message: row.message,
            },
        })
        .collect())
}

fn csv_field(s: &str) -> String {
    // Rows stored before the character policy may still hold controls or invisible characters: write them as
    // visible `\u{..}` escapes, so a spreadsheet or terminal shows them instead of acting on them.
    let mut visible = String::with_capacity(s.len());
    for c in s.chars() {
        if vkae_domain::preview::is_forbidden_control(c)
            || vkae_domain::preview::is_invisible_or_bidi(c)
        {
            visible.push_str(&format!("\\u{{{:04X}}}", c as u32));
        } else {
            visible.push(c);
        }
    }
    // Neutralise spreadsheet formulas, then quote per RFC 4180.
    let s = if visible.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{visible}")
    } else {
        visible
    };
    format!("\"{}\"", s.replace('"', "\"\""))
}

/// RFC 4180 CSV of the requests (header row first, CRLF line ends).
pub fn to_csv(requests: &[PreviewRequest]) -> String {
    let mut out =
        String::from("id,received_at,name,email,company,service_path,model_family,gpu,message\r\n");
    for stored in requests {
        let r = &stored.request;
        let fields = [
            stored.id.to_string(),
            csv_field(&stored.received_at),
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
            request: ValidPreview {
                name: "A \"B\"".into(),
                email: "a@b.co".into(),
                company: "=HYPERLINK()".into(),
                service_path: "report".into(),
                model_family: "E4B".into(),
                gpu: "h200".into(),
                message: "line1\nline2, more".into(),
            },
        };
        let csv = to_csv(&[r]);
        assert!(csv.contains("\"A \"\"B\"\"\""));
        assert!(csv.contains("\"'=HYPERLINK()\""));
        assert!(csv.contains("\"line1\nline2, more\""));
    }

    #[test]
    fn csv_shows_controls_and_invisible_characters_as_escapes() {
        let r = PreviewRequest {
            id: 2,
            received_at: "t".into(),
            request: ValidPreview {
                name: "Ada\u{202E}txt".into(),
                email: "a@b.co".into(),
                company: "Zero\u{200B}Width".into(),
                service_path: "report".into(),
                model_family: "E4B".into(),
                gpu: "h200".into(),
                message: "bell\u{7} nul\u{0} esc\u{1b}[2J\tok\nok".into(),
            },
        };
        let csv = to_csv(&[r]);
        assert!(csv.contains("\"Ada\\u{202E}txt\""), "{csv}");
        assert!(csv.contains("\"Zero\\u{200B}Width\""), "{csv}");
        assert!(
            csv.contains("bell\\u{0007} nul\\u{0000} esc\\u{001B}[2J\tok\nok"),
            "{csv}"
        );
        assert!(!csv
            .chars()
            .any(|c| c == '\u{7}' || c == '\u{0}' || c == '\u{1b}' || c == '\u{202E}'));
    }
}
