//! The evidence store's write side and internal reads: lane keys, ingest, promotion, retraction, the internal run
//! list and the append-only audit log. Every write is one transaction on the single writer connection.

use crate::auth::{sha256_hex, Operator};
use crate::content::Content;
use crate::db::{now_rfc3339, Db};
use crate::error::{ApiError, ApiResult};
use crate::lanes::{self, Lane, Verdict};
use axum::http::StatusCode;
use serde::Serialize;
use serde_json::{json, Value};
use sqlx::{Sqlite, Transaction};
use vkae_domain::{ClaimLevel, GpuSlug};
use vkae_record::{RecordErrorKind, RunRecord};

/// Who did something, as the audit log records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Actor {
    Operator(Operator),
    IngestToken(i64),
    /// The `vkae` CLI run by someone with access to the database file.
    Cli,
}

impl Actor {
    pub fn label(&self) -> String {
        match self {
            Actor::Operator(o) => o.name.clone(),
            Actor::IngestToken(id) => format!("ingest-token:{id}"),
            Actor::Cli => "cli".to_string(),
        }
    }
}

/// The answer to an ingest.
#[derive(Debug, Clone, Serialize)]
pub struct IngestOutcome {
    /// The store's id of the run.
    pub id: i64,
    pub run_id: String,
    /// false when an identical record was already stored (idempotent re-send).
    pub created: bool,
    pub lanes: Vec<Verdict>,
}

async fn audit(
    tx: &mut Transaction<'_, Sqlite>,
    actor: &Actor,
    action: &str,
    run_id: Option<&str>,
    detail: Value,
) -> ApiResult<()> {
    sqlx::query("INSERT INTO audit_log (at, actor, action, run_id, detail) VALUES (?, ?, ?, ?, ?)")
        .bind(now_rfc3339())
        .bind(actor.label())
        .bind(action)
        .bind(run_id)
        .bind(detail.to_string())
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Appends a security event (a failed login, a refused ingest) to the audit log, actor `security`. A failure to
/// write is logged, not raised: the refusal it records is answered either way.
pub async fn record_security_event(db: &Db, action: &str, detail: Value) {
    let result = sqlx::query(
        "INSERT INTO audit_log (at, actor, action, run_id, detail) VALUES (?, 'security', ?, NULL, ?)",
    )
    .bind(now_rfc3339())
    .bind(action)
    .bind(detail.to_string())
    .execute(&db.writer)
    .await;
    if let Err(e) = result {
        tracing::error!(%e, action, "cannot write a security event to the audit log");
    }
}

/// Registers a lane's public key (base64 of 32 bytes) under a name.
pub async fn add_lane_key(
    db: &Db,
    actor: &Actor,
    name: &str,
    public_key_base64: &str,
) -> ApiResult<()> {
    if !(1..=64).contains(&name.len())
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    {
        return Err(ApiError::invalid_field(
            "name",
            "a lane key name is 1 to 64 of A-Z a-z 0-9 . _ -",
        ));
    }
    let key = vkae_record::decode_verifying_key(public_key_base64)
        .map_err(|e| ApiError::invalid_field("public_key", e.message))?;
    let encoded = vkae_record::encode_verifying_key(&key);
    let mut tx = db.writer.begin().await?;
    let inserted =
        sqlx::query("INSERT INTO lane_keys (name, public_key, created_at) VALUES (?, ?, ?)")
            .bind(name)
            .bind(&encoded)
            .bind(now_rfc3339())
            .execute(&mut *tx)
            .await;
    match inserted {
        Ok(_) => {}
        Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
            return Err(ApiError::conflict(
                "lane_key_exists",
                format!("lane key {name:?} is registered already"),
            )
            .with_field("name"))
        }
        Err(e) => return Err(e.into()),
    }
    audit(
        &mut tx,
        actor,
        "lane-key-add",
        None,
        json!({ "name": name, "public_key": encoded }),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

fn record_error(e: vkae_record::RecordError) -> ApiError {
    let status = match e.kind {
        RecordErrorKind::Malformed | RecordErrorKind::UnknownSchema => StatusCode::BAD_REQUEST,
        _ => StatusCode::UNPROCESSABLE_ENTITY,
    };
    ApiError::new(status, e.kind.code(), e.message).with_field(e.field)
}

/// Ingests a signed record: parse (strict), size, signature under a registered key, catalog family; judge the
/// lanes; store run + verdicts + audit entry in one transaction. An identical re-send answers the stored id.
pub async fn ingest(
    db: &Db,
    content: &Content,
    actor: &Actor,
    bytes: &[u8],
    max_bytes: usize,
) -> ApiResult<IngestOutcome> {
    if bytes.len() > max_bytes {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
            format!("a run record is at most {max_bytes} bytes"),
        ));
    }
    let record = RunRecord::parse(bytes).map_err(record_error)?;
    if record.signature.is_none() {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "unsigned",
            "the record has no signature; sign it with its lane key",
        )
        .with_field("signature"));
    }
    let key: Option<(i64, String)> =
        sqlx::query_as("SELECT id, public_key FROM lane_keys WHERE name = ?")
            .bind(&record.lane_key)
            .fetch_optional(&db.writer)
            .await?;
    let Some((key_id, public_key)) = key else {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "unknown_key",
            format!(
                "lane key {:?} is not registered (vkae lane-key add NAME PUBLIC_KEY_BASE64)",
                record.lane_key
            ),
        )
        .with_field("lane_key"));
    };
    let key = vkae_record::decode_verifying_key(&public_key)
        .map_err(|e| ApiError::internal("stored lane key unreadable", e))?;
    record.verify(&key).map_err(record_error)?;
    if content.family(&record.model.family).is_none() {
        return Err(ApiError::invalid_field(
            "model.family",
            format!("{:?} is not a catalog family", record.model.family),
        ));
    }
    let verdicts = lanes::judge(&record, content, &record.lane_key);
    let digest = sha256_hex(&record.canonical_bytes());
    let gpu_id = content
        .gpu_for_name(&record.hardware.gpu)
        .map(|g| g.id.clone());

    let mut tx = db.writer.begin().await?;
    let existing: Option<(i64, String)> =
        sqlx::query_as("SELECT id, content_sha256 FROM runs WHERE run_id = ?")
            .bind(&record.run_id)
            .fetch_optional(&mut *tx)
            .await?;
    if let Some((id, stored_digest)) = existing {
        if stored_digest == digest {
            let lanes = verdicts_for(&mut tx, id).await?;
            return Ok(IngestOutcome {
                id,
                run_id: record.run_id,
                created: false,
                lanes,
            });
        }
        return Err(ApiError::conflict(
            "run_id_conflict",
            format!(
                "run_id {:?} is stored with different content; a run id names one record",
                record.run_id
            ),
        )
        .with_field("run_id"));
    }
    let stored_json = String::from_utf8(record.canonical_bytes()).expect("canonical JSON is UTF-8");
    let id = sqlx::query(
        "INSERT INTO runs (run_id, content_sha256, record_json, family, repo, gpu, gpu_id, lane_key_id, ingested_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(&record.run_id)
    .bind(&digest)
    .bind(&stored_json)
    .bind(&record.model.family)
    .bind(&record.model.repo)
    .bind(&record.hardware.gpu)
    .bind(gpu_id.as_deref())
    .bind(key_id)
    .bind(now_rfc3339())
    .execute(&mut *tx)
    .await?
    .last_insert_rowid();
    for v in &verdicts {
        sqlx::query(
            "INSERT INTO lane_verdicts (run_id, lane, passed, reasons) VALUES (?, ?, ?, ?)",
        )
        .bind(id)
        .bind(v.lane.as_str())
        .bind(v.passed)
        .bind(serde_json::to_string(&v.reasons).expect("strings serialise"))
        .execute(&mut *tx)
        .await?;
    }
    let summary: Value = verdicts
        .iter()
        .map(|v| (v.lane.as_str().to_string(), json!(v.passed)))
        .collect::<serde_json::Map<_, _>>()
        .into();
    audit(
        &mut tx,
        actor,
        "ingest",
        Some(&record.run_id),
        json!({ "id": id, "sha256": digest, "lanes": summary }),
    )
    .await?;
    tx.commit().await?;
    Ok(IngestOutcome {
        id,
        run_id: record.run_id,
        created: true,
        lanes: verdicts,
    })
}

async fn verdicts_for(tx: &mut Transaction<'_, Sqlite>, id: i64) -> ApiResult<Vec<Verdict>> {
    let rows: Vec<(String, bool, String)> = sqlx::query_as(
        "SELECT lane, passed, reasons FROM lane_verdicts WHERE run_id = ? ORDER BY lane",
    )
    .bind(id)
    .fetch_all(&mut **tx)
    .await?;
    rows_to_verdicts(rows)
}

fn rows_to_verdicts(rows: Vec<(String, bool, String)>) -> ApiResult<Vec<Verdict>> {
    let mut out = Vec::new();
    for (lane, passed, reasons) in rows {
        let lane =
            Lane::parse(&lane).ok_or_else(|| ApiError::internal("unknown lane in store", &lane))?;
        let reasons: Vec<String> = serde_json::from_str(&reasons)
            .map_err(|e| ApiError::internal("lane reasons unreadable", e))?;
        out.push(Verdict {
            lane,
            passed,
            reasons,
        });
    }
    out.sort_by_key(|v| Lane::ALL.iter().position(|l| *l == v.lane));
    Ok(out)
}

fn validate_reason(reason: &str) -> ApiResult<()> {
    let len = reason.trim().chars().count();
    if len == 0 {
        return Err(ApiError::invalid_field(
            "reason",
            "a decision needs a reason",
        ));
    }
    if len > 2000 {
        return Err(ApiError::invalid_field(
            "reason",
            "a reason is at most 2000 characters",
        ));
    }
    Ok(())
}

/// The result of a promotion or retraction.
#[derive(Debug, Clone, Serialize)]
pub struct Decision {
    pub run_id: String,
    pub status: &'static str,
    pub level: Option<&'static str>,
    pub by: String,
    pub at: String,
}

/// Promotes a run to a public claim. Refused (409, failing lanes named in `details.blockers`, decision audited)
/// unless the artifact, benchmark and quality lanes passed and the family's profile is claim-ready.
pub async fn promote(
    db: &Db,
    content: &Content,
    operator: &Operator,
    run_id: &str,
    level: &str,
    reason: &str,
) -> ApiResult<Decision> {
    let level = ClaimLevel::parse(level).map_err(|_| {
        ApiError::invalid_field(
            "level",
            "one of declared-baseline, vkae-path, optimized-showcase, preview-smoke",
        )
    })?;
    validate_reason(reason)?;
    let actor = Actor::Operator(operator.clone());
    let mut tx = db.writer.begin().await?;
    let run: Option<(i64, String, Option<String>)> =
        sqlx::query_as("SELECT id, record_json, gpu_id FROM runs WHERE run_id = ?")
            .bind(run_id)
            .fetch_optional(&mut *tx)
            .await?;
    let Some((id, record_json, gpu_id)) = run else {
        return Err(ApiError::not_found(format!(
            "no run with run_id {run_id:?}"
        )));
    };
    let active: Option<(Option<String>,)> =
        sqlx::query_as("SELECT retracted_at FROM claims WHERE run_id = ?")
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?;
    if matches!(active, Some((None,))) {
        return Err(ApiError::conflict(
            "already_promoted",
            format!("run {run_id} is a public claim already; retract it first to change it"),
        ));
    }
    let record = RunRecord::parse(record_json.as_bytes())
        .map_err(|e| ApiError::internal("stored record unreadable", e))?;
    let verdicts = verdicts_for(&mut tx, id).await?;
    let blockers = lanes::promotion_blockers(&record, &verdicts, content);
    if !blockers.is_empty() {
        audit(
            &mut tx,
            &actor,
            "promote-refused",
            Some(run_id),
            json!({ "level": level.slug(), "reason": reason, "blockers": blockers }),
        )
        .await?;
        tx.commit().await?;
        let names: Vec<String> = blockers
            .iter()
            .filter_map(|b| b["lane"].as_str().map(str::to_string))
            .collect();
        return Err(ApiError::conflict(
            "promotion_refused",
            format!(
                "run {run_id} cannot be promoted: failing {}",
                names.join(", ")
            ),
        )
        .with_details(json!({ "blockers": blockers })));
    }
    let gpu_id = gpu_id
        .map(|g| GpuSlug::parse(&g))
        .transpose()
        .map_err(|e| ApiError::internal("stored gpu id unreadable", e))?;
    let public = lanes::public_claim(&record, gpu_id)
        .map_err(|e| ApiError::internal("stored record has an unreadable id", e))?;
    // Stored with sorted keys, as the claims document writes them.
    let public = serde_json::to_value(&public)
        .map_err(|e| ApiError::internal("claim does not serialise", e))?;
    let at = now_rfc3339();
    sqlx::query(
        "INSERT INTO claims (run_id, level, promoted_by, promoted_at, reason, public_json) VALUES (?, ?, ?, ?, ?, ?)
         ON CONFLICT(run_id) DO UPDATE SET level = excluded.level, promoted_by = excluded.promoted_by,
           promoted_at = excluded.promoted_at, reason = excluded.reason, public_json = excluded.public_json,
           retracted_at = NULL, retracted_by = NULL, retract_reason = NULL",
    )
    .bind(id)
    .bind(level.slug())
    .bind(operator.id)
    .bind(&at)
    .bind(reason)
    .bind(public.to_string())
    .execute(&mut *tx)
    .await?;
    audit(
        &mut tx,
        &actor,
        "promote",
        Some(run_id),
        json!({ "level": level.slug(), "reason": reason }),
    )
    .await?;
    tx.commit().await?;
    Ok(Decision {
        run_id: run_id.to_string(),
        status: "promoted",
        level: Some(level.slug()),
        by: operator.name.clone(),
        at,
    })
}

/// Withdraws a public claim (409 when the run is not currently promoted).
pub async fn retract(
    db: &Db,
    operator: &Operator,
    run_id: &str,
    reason: &str,
) -> ApiResult<Decision> {
    validate_reason(reason)?;
    let mut tx = db.writer.begin().await?;
    let row: Option<(i64, Option<i64>, Option<String>)> = sqlx::query_as(
        "SELECT r.id, c.run_id, c.retracted_at FROM runs r LEFT JOIN claims c ON c.run_id = r.id WHERE r.run_id = ?",
    )
    .bind(run_id)
    .fetch_optional(&mut *tx)
    .await?;
    let id = match row {
        None => {
            return Err(ApiError::not_found(format!(
                "no run with run_id {run_id:?}"
            )))
        }
        Some((id, Some(_), None)) => id,
        Some(_) => {
            return Err(ApiError::conflict(
                "not_promoted",
                format!("run {run_id} is not a public claim"),
            ))
        }
    };
    let at = now_rfc3339();
    sqlx::query(
        "UPDATE claims SET retracted_at = ?, retracted_by = ?, retract_reason = ? WHERE run_id = ?",
    )
    .bind(&at)
    .bind(operator.id)
    .bind(reason)
    .bind(id)
    .execute(&mut *tx)
    .await?;
    audit(
        &mut tx,
        &Actor::Operator(operator.clone()),
        "retract",
        Some(run_id),
        json!({ "reason": reason }),
    )
    .await?;
    tx.commit().await?;
    Ok(Decision {
        run_id: run_id.to_string(),
        status: "retracted",
        level: None,
        by: operator.name.clone(),
        at,
    })
}

/// A run as operators see it: its record, lanes with reasons, and claim state.
#[derive(Debug, Clone, Serialize)]
pub struct RunSummary {
    pub id: i64,
    pub run_id: String,
    pub family: String,
    pub repo: String,
    pub gpu: String,
    pub gpu_id: Option<String>,
    pub lane_key: String,
    pub ingested_at: String,
    pub lanes: Vec<Verdict>,
    /// `promoted`, `retracted` or `unpromoted`.
    pub claim_status: String,
    pub claim_level: Option<String>,
    /// Whether the profile lets this family carry claims.
    pub profile_status: Option<&'static str>,
    pub record: Value,
}

type RunRow = (
    i64,
    String,
    String,
    String,
    String,
    Option<String>,
    String,
    String,
    String,
    Option<String>,
    Option<String>,
);

/// Every run, newest first, with lanes and claim state (internal).
pub async fn list_runs(
    db: &Db,
    content: &Content,
    run_id: Option<&str>,
) -> ApiResult<Vec<RunSummary>> {
    let rows: Vec<RunRow> = sqlx::query_as(
        "SELECT r.id, r.run_id, r.family, r.repo, r.gpu, r.gpu_id, k.name, r.ingested_at, r.record_json, c.level, c.retracted_at
         FROM runs r JOIN lane_keys k ON k.id = r.lane_key_id LEFT JOIN claims c ON c.run_id = r.id
         WHERE (?1 IS NULL OR r.run_id = ?1) ORDER BY r.id DESC",
    )
    .bind(run_id)
    .fetch_all(&db.reader)
    .await?;
    let verdict_rows: Vec<(i64, String, bool, String)> = sqlx::query_as(
        "SELECT v.run_id, v.lane, v.passed, v.reasons FROM lane_verdicts v JOIN runs r ON r.id = v.run_id WHERE (?1 IS NULL OR r.run_id = ?1)",
    )
    .bind(run_id)
    .fetch_all(&db.reader)
    .await?;
    let mut out = Vec::new();
    for (
        id,
        run_id,
        family,
        repo,
        gpu,
        gpu_id,
        lane_key,
        ingested_at,
        record_json,
        level,
        retracted_at,
    ) in rows
    {
        let lanes = rows_to_verdicts(
            verdict_rows
                .iter()
                .filter(|v| v.0 == id)
                .map(|v| (v.1.clone(), v.2, v.3.clone()))
                .collect(),
        )?;
        let claim_status = match (&level, &retracted_at) {
            (Some(_), None) => "promoted",
            (Some(_), Some(_)) => "retracted",
            _ => "unpromoted",
        }
        .to_string();
        let profile_status = content.profile(&family).map(|p| p.status.as_str());
        let record: Value = serde_json::from_str(&record_json)
            .map_err(|e| ApiError::internal("stored record unreadable", e))?;
        out.push(RunSummary {
            id,
            run_id,
            family,
            repo,
            gpu,
            gpu_id,
            lane_key,
            ingested_at,
            lanes,
            claim_status,
            claim_level: level,
            profile_status,
            record,
        });
    }
    Ok(out)
}

/// One entry of the audit log.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct AuditEntry {
    pub seq: i64,
    pub at: String,
    pub actor: String,
    pub action: String,
    pub run_id: Option<String>,
    #[sqlx(try_from = "String")]
    pub detail: JsonText,
}

/// A JSON column, served as JSON.
#[derive(Debug, Clone, Serialize)]
#[serde(transparent)]
pub struct JsonText(pub Value);

impl TryFrom<String> for JsonText {
    type Error = serde_json::Error;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        serde_json::from_str(&s).map(JsonText)
    }
}

/// The audit log, newest first, `limit` entries before sequence number `before` (all when None).
pub async fn audit_log(db: &Db, before: Option<i64>, limit: u32) -> ApiResult<Vec<AuditEntry>> {
    Ok(sqlx::query_as("SELECT seq, at, actor, action, run_id, detail FROM audit_log WHERE (?1 IS NULL OR seq < ?1) ORDER BY seq DESC LIMIT ?2")
        .bind(before)
        .bind(limit)
        .fetch_all(&db.reader)
        .await?)
}
