//! The public read side. This module reads exactly one database object, the `public_claims` view, which holds
//! only claims that are promoted and not retracted, already shaped for the public (computed at promotion), with
//! the signed record behind each one and the lane key that signed it, so that anyone can check a claim offline.
//! Lane verdicts, unpromoted runs and their records are not reachable from here; a test checks that this file
//! names no other table.

use crate::content::Content;
use crate::error::{ApiError, ApiResult};
use crate::lanes::ClaimLevel;
use crate::sizing;
use serde::Deserialize;
use serde_json::{json, Value};
use sqlx::SqlitePool;

/// Filters of `GET /api/v1/claims` (all optional).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClaimFilter {
    pub family: Option<String>,
    pub gpu: Option<String>,
    pub level: Option<String>,
}

impl ClaimFilter {
    /// Refuses values that name nothing in the catalog (400, naming the parameter).
    pub fn validate(&self, content: &Content) -> ApiResult<()> {
        if let Some(f) = &self.family {
            if content.family(f).is_none() {
                return Err(ApiError::bad_request(
                    "invalid_query",
                    format!("family {f:?} is not a catalog family"),
                )
                .with_field("family"));
            }
        }
        if let Some(g) = &self.gpu {
            if content.gpu(g).is_none() {
                return Err(ApiError::bad_request(
                    "invalid_query",
                    format!("gpu {g:?} is not a catalog GPU id"),
                )
                .with_field("gpu"));
            }
        }
        if let Some(l) = &self.level {
            if ClaimLevel::parse(l).is_none() {
                return Err(ApiError::bad_request(
                    "invalid_query",
                    format!("level {l:?} is not a claim level"),
                )
                .with_field("level"));
            }
        }
        Ok(())
    }
}

/// Promoted claims, newest promotion first.
pub async fn claims(
    pool: &SqlitePool,
    content: &Content,
    filter: &ClaimFilter,
) -> ApiResult<Vec<Value>> {
    filter.validate(content)?;
    type Row = (String, String, String, String, String, String, String);
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT run_id, level, promoted_at, public_json, record_sha256, lane_key, lane_public_key
         FROM public_claims
         WHERE (?1 IS NULL OR family = ?1) AND (?2 IS NULL OR gpu_id = ?2) AND (?3 IS NULL OR level = ?3)
         ORDER BY promoted_at DESC, run_id",
    )
    .bind(&filter.family)
    .bind(&filter.gpu)
    .bind(&filter.level)
    .fetch_all(pool)
    .await?;
    rows.into_iter()
        .map(
            |(run_id, level, promoted_at, public_json, sha256, lane_key, lane_public_key)| {
                let mut claim: Value = serde_json::from_str(&public_json)
                    .map_err(|e| ApiError::internal("claim unreadable", e))?;
                claim["provenance"] = json!({
                    "record": record_path(&run_id),
                    "record_sha256": sha256,
                    "lane_key": lane_key,
                    "lane_public_key": lane_public_key,
                });
                claim["run_id"] = json!(run_id);
                claim["level"] = json!(level);
                claim["level_label"] = json!(ClaimLevel::parse(&level).map(|l| l.label()));
                claim["promoted_at"] = json!(promoted_at);
                Ok(claim)
            },
        )
        .collect()
}

/// Where the signed record behind the claim of `run_id` is served.
fn record_path(run_id: &str) -> String {
    format!("/api/v1/claims/{run_id}/record")
}

/// The signed record behind the promoted, unretracted claim of `run_id`, exactly as stored (its RFC 8785
/// canonical form, signature included). 404 when no such claim exists, whether the run is unknown, not
/// promoted or retracted: the answer does not tell them apart.
pub async fn claim_record(pool: &SqlitePool, run_id: &str) -> ApiResult<String> {
    let row: Option<(String,)> =
        sqlx::query_as("SELECT record_json FROM public_claims WHERE run_id = ?")
            .bind(run_id)
            .fetch_optional(pool)
            .await?;
    row.map(|(record,)| record).ok_or_else(|| {
        ApiError::new(
            axum::http::StatusCode::NOT_FOUND,
            "claim_not_found",
            format!("no promoted claim has run id {run_id:?}"),
        )
    })
}

/// The `GET /api/v1/claims` document.
pub async fn claims_document(
    pool: &SqlitePool,
    content: &Content,
    filter: &ClaimFilter,
) -> ApiResult<Value> {
    let claims = claims(pool, content, filter).await?;
    Ok(json!({
        "claims": claims,
        "levels": ClaimLevel::ALL.iter().map(|l| json!({ "slug": l.slug(), "label": l.label() })).collect::<Vec<_>>(),
        "note": "Only runs an operator promoted after their artifact, benchmark and quality lanes passed. Figures under `derived` are derived from the run's medians.",
    }))
}

/// The `GET /api/v1/models` document: catalog, profiles, adjacent lane, exclusions, service paths.
pub fn models_document(content: &Content) -> Value {
    let families: Vec<Value> = content
        .catalog
        .families
        .iter()
        .map(|f| {
            let profile = content.profile(&f.slug);
            let mut v = serde_json::to_value(f).expect("families serialise");
            v["profile"] = json!(profile.map(|p| json!({
                "status": p.status.as_str(),
                "note": p.note,
                "thresholds": {
                    "basis": "transformers BF16 vs f32 on random-weight models (docs/benchmarks/qualification.md)",
                    "max_ppl_relative": p.max_ppl_relative,
                    "min_top1_agreement": p.min_top1_agreement,
                    "max_mean_kl": p.max_mean_kl,
                },
            })));
            v
        })
        .collect();
    json!({
        "families": families,
        "repo_count": content.catalog.families.iter().map(|f| f.repos.len()).sum::<usize>(),
        "adjacent": content.catalog.adjacent,
        "excluded": content.catalog.excluded,
        "benchmark_rules": content.benchmark,
        "service_paths": content.service_paths,
    })
}

/// The `GET /api/v1/gpus` document.
pub fn gpus_document(content: &Content) -> Value {
    json!({ "gpus": content.gpus })
}

/// The `GET /api/v1/sizing` document (measured figures only from promoted claims).
pub async fn sizing_document(
    pool: &SqlitePool,
    content: &Content,
    family: Option<&str>,
) -> ApiResult<Value> {
    if let Some(f) = family {
        if content.family(f).is_none() {
            return Err(ApiError::bad_request(
                "invalid_query",
                format!("family {f:?} is not a catalog family"),
            )
            .with_field("family"));
        }
    }
    let claims = claims(pool, content, &ClaimFilter::default()).await?;
    Ok(sizing::sizing(content, &claims, family))
}
