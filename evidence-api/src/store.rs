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
use vkae_domain::{
    AuditDetail, AuditEntry, BaselineContext, ClaimLevel, GpuSlug, LaneVerdict, RunSummary,
};
use vkae_record::{stats, RecordErrorKind, Role, RunRecord};

/// Who did something, as the audit log records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Actor {
    Operator(Operator),
    IngestToken(i64),
    /// The `vkae` CLI run by someone with access to the database file.
    Cli,
    /// Reviewed content applied at start: the records and `promotions.toml` of `content/evidence/`.
    Content,
}

impl Actor {
    pub fn label(&self) -> String {
        match self {
            Actor::Operator(o) => o.name.clone(),
            Actor::IngestToken(id) => format!("ingest-token:{id}"),
            Actor::Cli => "cli".to_string(),
            Actor::Content => "content".to_string(),
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
    detail: AuditDetail,
) -> ApiResult<()> {
    sqlx::query("INSERT INTO audit_log (at, actor, action, run_id, detail) VALUES (?, ?, ?, ?, ?)")
        .bind(now_rfc3339())
        .bind(actor.label())
        .bind(action)
        .bind(run_id)
        .bind(serde_json::to_string(&detail).expect("an audit detail serialises"))
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Appends a security event (a failed login, a refused ingest) to the audit log, actor `security`. A failure to
/// write is logged, not raised: the refusal it records is answered either way.
pub async fn record_security_event(db: &Db, action: &str, detail: AuditDetail) {
    let result = sqlx::query(
        "INSERT INTO audit_log (at, actor, action, run_id, detail) VALUES (?, 'security', ?, NULL, ?)",
    )
    .bind(now_rfc3339())
    .bind(action)
    .bind(serde_json::to_string(&detail).expect("an audit detail serialises"))
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
        AuditDetail {
            name: Some(name.to_string()),
            public_key: Some(encoded),
            ..AuditDetail::default()
        },
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// Registers a lane key unless one of that name is registered already with the same public key (then nothing is
/// written); a different key under that name is a conflict.
pub async fn ensure_lane_key(
    db: &Db,
    actor: &Actor,
    name: &str,
    public_key_base64: &str,
) -> ApiResult<()> {
    let stored: Option<(String,)> =
        sqlx::query_as("SELECT public_key FROM lane_keys WHERE name = ?")
            .bind(name)
            .fetch_optional(&db.writer)
            .await?;
    match stored {
        None => add_lane_key(db, actor, name, public_key_base64).await,
        Some((key,)) if key == public_key_base64 => Ok(()),
        Some(_) => Err(ApiError::conflict(
            "lane_key_exists",
            format!("lane key {name:?} is registered with a different public key"),
        )
        .with_field("name")),
    }
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
    record_disputes(&mut tx, id, &record).await?;
    let lanes = verdicts
        .iter()
        .map(|v| (v.lane.as_str().to_string(), v.passed))
        .collect();
    audit(
        &mut tx,
        actor,
        "ingest",
        Some(&record.run_id),
        AuditDetail {
            id: Some(id),
            sha256: Some(digest.clone()),
            lanes: Some(lanes),
            ..AuditDetail::default()
        },
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

/// A promoted claim is disputed by a newer record of the same family, GPU and recipe whose VKAE median is more
/// than this fraction below the claim's (MLPerf's Preview-to-Available rule).
pub const DISPUTE_FRACTION: f64 = 0.02;

fn vkae_median(record: &RunRecord) -> Option<f64> {
    let path = record
        .paths
        .iter()
        .find(|p| p.role == vkae_record::Role::Vkae)?;
    vkae_record::stats::median(&path.tokens_per_s)
}

/// Records a dispute against every promoted claim the newly stored record (`id`) is newer and slower than.
async fn record_disputes(
    tx: &mut Transaction<'_, Sqlite>,
    id: i64,
    record: &RunRecord,
) -> ApiResult<()> {
    let Some(new_median) = vkae_median(record) else {
        return Ok(());
    };
    let Ok(new_finished) = vkae_record::Timestamp::parse(&record.finished_at) else {
        return Ok(());
    };
    let claims: Vec<(i64, String)> = sqlx::query_as(
        "SELECT c.run_id, r.record_json FROM claims c JOIN runs r ON r.id = c.run_id
         WHERE c.retracted_at IS NULL AND r.family = ? AND r.id <> ?",
    )
    .bind(&record.model.family)
    .bind(id)
    .fetch_all(&mut **tx)
    .await?;
    for (claim_id, claim_json) in claims {
        let claim = RunRecord::parse(claim_json.as_bytes())
            .map_err(|e| ApiError::internal("stored record unreadable", e))?;
        let comparable = claim.hardware.gpu == record.hardware.gpu
            && claim.hardware.gpu_count == record.hardware.gpu_count
            && claim.recipe == record.recipe
            && claim.model.weights == record.model.weights;
        let newer = vkae_record::Timestamp::parse(&claim.finished_at)
            .is_ok_and(|claim_finished| new_finished > claim_finished);
        let Some(claim_median) = vkae_median(&claim) else {
            continue;
        };
        if comparable && newer && new_median < claim_median * (1.0 - DISPUTE_FRACTION) {
            sqlx::query(
                "INSERT OR IGNORE INTO claim_disputes (claim_run_id, run_id, claim_median, run_median, found_at) VALUES (?, ?, ?, ?, ?)",
            )
            .bind(claim_id)
            .bind(id)
            .bind(claim_median)
            .bind(new_median)
            .bind(now_rfc3339())
            .execute(&mut **tx)
            .await?;
        }
    }
    Ok(())
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

/// Who promotes: an operator of this store, or a reviewed entry of `content/evidence/promotions.toml` (naming the
/// operator who reviewed it and the date).
#[derive(Debug, Clone, Copy)]
pub enum Promoter<'a> {
    Operator(&'a Operator),
    Content { operator: &'a str, date: &'a str },
}

/// Promotes a run to a public claim. Refused (409, failing lanes named in `details.blockers`, decision audited)
/// unless the artifact, benchmark and quality lanes passed and the family's profile is claim-ready. A promoted
/// claim may be promoted again only while it is disputed (which settles the dispute).
pub async fn promote(
    db: &Db,
    content: &Content,
    operator: &Operator,
    run_id: &str,
    level: &str,
    reason: &str,
) -> ApiResult<Decision> {
    promote_by(
        db,
        content,
        Promoter::Operator(operator),
        run_id,
        level,
        reason,
    )
    .await
}

/// [`promote`] for either promoter, through the same gate. A content promotion applies once: a run that has a
/// claim row (promoted, disputed or retracted by an operator) answers 409 `already_decided`, and a refusal is
/// not audited (start-up reports it instead), so applying the same file again writes nothing.
pub async fn promote_by(
    db: &Db,
    content: &Content,
    promoter: Promoter<'_>,
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
    let (actor, operator_id, content_operator, by) = match promoter {
        Promoter::Operator(o) => (Actor::Operator(o.clone()), Some(o.id), None, o.name.clone()),
        Promoter::Content { operator, .. } => {
            (Actor::Content, None, Some(operator), operator.to_string())
        }
    };
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
    let existing: Option<(Option<String>, bool)> = sqlx::query_as(
        "SELECT retracted_at, EXISTS (SELECT 1 FROM claim_disputes WHERE claim_run_id = ?1) FROM claims WHERE run_id = ?1",
    )
    .bind(id)
    .fetch_optional(&mut *tx)
    .await?;
    match (promoter, existing) {
        (Promoter::Content { .. }, Some(_)) => {
            return Err(ApiError::conflict(
                "already_decided",
                format!("run {run_id} has a claim already; content promotes a run only once"),
            ))
        }
        (Promoter::Operator(_), Some((None, false))) => {
            return Err(ApiError::conflict(
                "already_promoted",
                format!("run {run_id} is a public claim already; retract it first to change it"),
            ))
        }
        _ => {}
    }
    let record = RunRecord::parse(record_json.as_bytes())
        .map_err(|e| ApiError::internal("stored record unreadable", e))?;
    let verdicts = verdicts_for(&mut tx, id).await?;
    let blockers = lanes::promotion_blockers(&record, &verdicts, content);
    if !blockers.is_empty() {
        if let Promoter::Operator(_) = promoter {
            audit(
                &mut tx,
                &actor,
                "promote-refused",
                Some(run_id),
                AuditDetail {
                    level: Some(level.slug().to_string()),
                    reason: Some(reason.to_string()),
                    blockers: Some(blockers.clone()),
                    ..AuditDetail::default()
                },
            )
            .await?;
            tx.commit().await?;
        }
        let names: Vec<&str> = blockers.iter().map(|b| b.lane.as_str()).collect();
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
    let public = lanes::public_claim(&record, gpu_id, content)
        .map_err(|e| ApiError::internal("stored record has an unreadable id", e))?;
    // Stored with sorted keys, as the claims document writes them.
    let public = serde_json::to_value(&public)
        .map_err(|e| ApiError::internal("claim does not serialise", e))?;
    let at = now_rfc3339();
    sqlx::query(
        "INSERT INTO claims (run_id, level, promoted_by, content_operator, promoted_at, reason, public_json) VALUES (?, ?, ?, ?, ?, ?, ?)
         ON CONFLICT(run_id) DO UPDATE SET level = excluded.level, promoted_by = excluded.promoted_by,
           content_operator = excluded.content_operator, promoted_at = excluded.promoted_at, reason = excluded.reason,
           public_json = excluded.public_json, retracted_at = NULL, retracted_by = NULL, retract_reason = NULL",
    )
    .bind(id)
    .bind(level.slug())
    .bind(operator_id)
    .bind(content_operator)
    .bind(&at)
    .bind(reason)
    .bind(public.to_string())
    .execute(&mut *tx)
    .await?;
    let settled: Vec<(String,)> = sqlx::query_as(
        "SELECT r.run_id FROM claim_disputes d JOIN runs r ON r.id = d.run_id WHERE d.claim_run_id = ? ORDER BY r.id",
    )
    .bind(id)
    .fetch_all(&mut *tx)
    .await?;
    sqlx::query("DELETE FROM claim_disputes WHERE claim_run_id = ?")
        .bind(id)
        .execute(&mut *tx)
        .await?;
    let mut detail = AuditDetail {
        level: Some(level.slug().to_string()),
        reason: Some(reason.to_string()),
        ..AuditDetail::default()
    };
    if !settled.is_empty() {
        detail.settles_disputes_by = Some(settled.into_iter().map(|(r,)| r).collect());
    }
    if let Promoter::Content { operator, date } = promoter {
        detail.source = Some("content/evidence/promotions.toml".to_string());
        detail.operator = Some(operator.to_string());
        detail.date = Some(date.to_string());
    }
    let decision = Decision {
        run_id: run_id.to_string(),
        status: "promoted",
        level: Some(level.slug()),
        by,
        at,
    };
    commit_decision(tx, &actor, "promote", detail, decision).await
}

/// Audits an operator's decision, commits it with what the transaction changed, and answers it.
async fn commit_decision(
    mut tx: Transaction<'_, Sqlite>,
    actor: &Actor,
    action: &str,
    detail: AuditDetail,
    decision: Decision,
) -> ApiResult<Decision> {
    audit(&mut tx, actor, action, Some(&decision.run_id), detail).await?;
    tx.commit().await?;
    Ok(decision)
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
    let detail = AuditDetail {
        reason: Some(reason.to_string()),
        ..AuditDetail::default()
    };
    let decision = Decision {
        run_id: run_id.to_string(),
        status: "retracted",
        level: None,
        by: operator.name.clone(),
        at,
    };
    let actor = Actor::Operator(operator.clone());
    commit_decision(tx, &actor, "retract", detail, decision).await
}

/// A run as the internal API serves it: the operators' summary and the record as stored.
#[derive(Debug, Clone, Serialize)]
pub struct StoredRun {
    #[serde(flatten)]
    pub summary: RunSummary,
    pub record: Value,
}

#[derive(sqlx::FromRow)]
struct RunRow {
    id: i64,
    run_id: String,
    family: String,
    repo: String,
    gpu: String,
    gpu_id: Option<String>,
    lane_key: String,
    ingested_at: String,
    record_json: String,
    level: Option<String>,
    retracted_at: Option<String>,
}

/// Every run, newest first, with lanes, claim state and each run's baseline beside the comparable runs'
/// (internal).
pub async fn list_runs(
    db: &Db,
    content: &Content,
    run_id: Option<&str>,
) -> ApiResult<Vec<StoredRun>> {
    let rows: Vec<RunRow> = sqlx::query_as(
        "SELECT r.id, r.run_id, r.family, r.repo, r.gpu, r.gpu_id, k.name AS lane_key, r.ingested_at, r.record_json, c.level, c.retracted_at
         FROM runs r JOIN lane_keys k ON k.id = r.lane_key_id LEFT JOIN claims c ON c.run_id = r.id
         ORDER BY r.id DESC",
    )
    .fetch_all(&db.reader)
    .await?;
    let verdict_rows: Vec<(i64, String, bool, String)> =
        sqlx::query_as("SELECT run_id, lane, passed, reasons FROM lane_verdicts")
            .fetch_all(&db.reader)
            .await?;
    let (mut summaries, mut records) = (Vec::new(), Vec::new());
    for row in rows {
        let lanes = rows_to_verdicts(
            verdict_rows
                .iter()
                .filter(|v| v.0 == row.id)
                .map(|v| (v.1.clone(), v.2, v.3.clone()))
                .collect(),
        )?;
        let (summary, record) = run_summary(row, lanes, content)?;
        summaries.push(summary);
        records.push(record);
    }
    // The comparison needs every run, so one run is picked only after it.
    baseline_contexts(&mut summaries);
    Ok(summaries
        .into_iter()
        .zip(records)
        .map(|(summary, record)| StoredRun { summary, record })
        .filter(|r| run_id.is_none_or(|id| r.summary.run_id == id))
        .collect())
}

fn run_summary(
    row: RunRow,
    lanes: Vec<Verdict>,
    content: &Content,
) -> ApiResult<(RunSummary, Value)> {
    let claim_status = match (&row.level, &row.retracted_at) {
        (Some(_), None) => "promoted",
        (Some(_), Some(_)) => "retracted",
        _ => "unpromoted",
    };
    let claim_level = row
        .level
        .as_deref()
        .map(ClaimLevel::parse)
        .transpose()
        .map_err(|e| ApiError::internal("stored claim level unreadable", e))?;
    let parsed = RunRecord::parse(row.record_json.as_bytes())
        .map_err(|e| ApiError::internal("stored record unreadable", e))?;
    let record: Value = serde_json::from_str(&row.record_json)
        .map_err(|e| ApiError::internal("stored record unreadable", e))?;
    let median = |role: Role| {
        parsed
            .paths
            .iter()
            .find(|p| p.role == role)
            .and_then(|p| stats::median(&p.tokens_per_s))
    };
    let recipe = &parsed.recipe;
    let comparable = parsed
        .paths
        .iter()
        .find(|p| p.role == Role::Baseline)
        .map(|b| {
            format!(
                "{}|{}|{}|{}|{}|{}|{}",
                row.family,
                parsed.model.weights,
                row.gpu,
                recipe.batch,
                recipe.prompt_tokens,
                recipe.output_tokens,
                b.name,
            )
        })
        .unwrap_or_default();
    let summary = RunSummary {
        id: row.id,
        profile_status: content
            .profile(&row.family)
            .map(|p| p.status.as_str().to_string()),
        run_id: row.run_id,
        family: row.family,
        repo: row.repo,
        gpu: row.gpu,
        gpu_id: row.gpu_id,
        lane_key: row.lane_key,
        ingested_at: row.ingested_at,
        lanes: lanes
            .into_iter()
            .map(|v| LaneVerdict {
                lane: v.lane.as_str().to_string(),
                passed: v.passed,
                reasons: v.reasons,
            })
            .collect(),
        claim_status: claim_status.to_string(),
        claim_level,
        batch: recipe.batch,
        baseline_tokens_per_s: median(Role::Baseline),
        vkae_tokens_per_s: median(Role::Vkae),
        comparable,
        baseline_context: None,
    };
    Ok((summary, record))
}

/// Fills each run's [`RunSummary::baseline_context`] from the other runs with the same `comparable` key that
/// have a baseline; needs at least two others.
pub fn baseline_contexts(runs: &mut [RunSummary]) {
    let medians: Vec<(String, Option<f64>)> = runs
        .iter()
        .map(|r| (r.comparable.clone(), r.baseline_tokens_per_s))
        .collect();
    for (i, run) in runs.iter_mut().enumerate() {
        let Some(own) = run.baseline_tokens_per_s else {
            continue;
        };
        let others: Vec<f64> = medians
            .iter()
            .enumerate()
            .filter(|(j, (key, _))| *j != i && !key.is_empty() && *key == run.comparable)
            .filter_map(|(_, (_, b))| *b)
            .collect();
        if others.len() < 2 {
            continue;
        }
        let Some(mid) = stats::median(&others) else {
            continue;
        };
        run.baseline_context = Some(BaselineContext {
            others: others.len(),
            others_median: mid,
            deviation: own / mid - 1.0,
        });
    }
}

#[derive(sqlx::FromRow)]
struct AuditRow {
    seq: i64,
    at: String,
    actor: String,
    action: String,
    run_id: Option<String>,
    detail: String,
}

/// The audit log, newest first, `limit` entries before sequence number `before` (all when None).
pub async fn audit_log(db: &Db, before: Option<i64>, limit: u32) -> ApiResult<Vec<AuditEntry>> {
    let rows: Vec<AuditRow> = sqlx::query_as("SELECT seq, at, actor, action, run_id, detail FROM audit_log WHERE (?1 IS NULL OR seq < ?1) ORDER BY seq DESC LIMIT ?2")
        .bind(before)
        .bind(limit)
        .fetch_all(&db.reader)
        .await?;
    rows.into_iter()
        .map(|row| {
            let detail: AuditDetail = serde_json::from_str(&row.detail)
                .map_err(|e| ApiError::internal("stored audit detail unreadable", e))?;
            Ok(AuditEntry {
                seq: row.seq,
                at: row.at,
                actor: row.actor,
                action: row.action,
                run_id: row.run_id,
                detail,
            })
        })
        .collect()
}
