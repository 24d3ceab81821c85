//! The public read side. This module reads exactly one database object, the `public_claims` view, which holds
//! only claims that are promoted and not retracted, already shaped for the public (computed at promotion), with
//! the signed record behind each one and the lane key that signed it, so that anyone can check a claim offline.
//! Lane verdicts, unpromoted runs and their records are not reachable from here; a test checks that this file
//! names no other table.

use crate::content::Content;
use crate::error::{ApiError, ApiResult};
use crate::sizing;
use serde::Deserialize;
use sqlx::SqlitePool;
use vkae_domain::{
    CatalogFamily, ClaimFigures, ClaimLevel, ClaimStanding, ClaimState, ClaimsDocument, Dispute,
    FamilyProfile, GpusDocument, LevelEntry, ModelsDocument, Provenance, PublicClaim, RunId,
    SizingDocument, Thresholds,
};
use vkae_record::Timestamp;

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
            if ClaimLevel::parse(l).is_err() {
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

/// A claim's standing at `now`: disputed while it has disputes, else stale past the profile's
/// `claim_current_days` after its run finished, else current.
fn standing(
    content: &Content,
    figures: &ClaimFigures,
    disputes: Vec<Dispute>,
    now: Timestamp,
) -> ApiResult<ClaimStanding> {
    let measured = Timestamp::parse(&figures.measured_at)
        .map_err(|e| ApiError::internal("claim measured_at unreadable", e))?;
    let days = content
        .profile(figures.model.family.as_str())
        .map(|p| p.claim_current_days)
        .unwrap_or(0);
    let until = Timestamp {
        unix_seconds: measured.unix_seconds + i64::from(days) * 86_400,
        nanos: measured.nanos,
    };
    let state = if !disputes.is_empty() {
        ClaimState::Disputed
    } else if now > until {
        ClaimState::Stale
    } else {
        ClaimState::Current
    };
    Ok(ClaimStanding {
        state,
        measured_at: figures.measured_at.clone(),
        current_until: until.to_rfc3339(),
        disputes,
    })
}

/// Promoted claims, newest promotion first, with their standing at `now`.
pub async fn claims(
    pool: &SqlitePool,
    content: &Content,
    filter: &ClaimFilter,
    now: Timestamp,
) -> ApiResult<Vec<PublicClaim>> {
    filter.validate(content)?;
    type Row = (
        String,
        String,
        String,
        String,
        String,
        String,
        String,
        String,
    );
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT run_id, level, promoted_at, public_json, record_sha256, lane_key, lane_public_key, disputes_json
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
            |(
                run_id,
                level,
                promoted_at,
                public_json,
                sha256,
                lane_key,
                lane_public_key,
                disputes,
            )| {
                let mut figures: ClaimFigures = serde_json::from_str(&public_json)
                    .map_err(|e| ApiError::internal("claim unreadable", e))?;
                figures.run_id = RunId::parse(&run_id)
                    .map_err(|e| ApiError::internal("claim run id unreadable", e))?;
                let level = ClaimLevel::parse(&level)
                    .map_err(|e| ApiError::internal("claim level unreadable", e))?;
                let disputes: Vec<Dispute> = serde_json::from_str(&disputes)
                    .map_err(|e| ApiError::internal("claim disputes unreadable", e))?;
                let standing = standing(content, &figures, disputes, now)?;
                Ok(PublicClaim {
                    standing,
                    provenance: Provenance {
                        record: record_path(&run_id),
                        record_sha256: sha256,
                        lane_key,
                        lane_public_key,
                    },
                    figures,
                    level,
                    level_label: level.label().to_string(),
                    promoted_at,
                })
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
    now: Timestamp,
) -> ApiResult<ClaimsDocument> {
    Ok(ClaimsDocument {
        claims: claims(pool, content, filter, now).await?,
        levels: ClaimLevel::ALL
            .iter()
            .map(|&l| LevelEntry {
                slug: l,
                label: l.label().to_string(),
            })
            .collect(),
        note: "Only runs an operator promoted after their artifact, benchmark and quality lanes passed. Figures under `derived` are derived from the run's medians, against the family profile's declared baseline (and, as context, its eager reference). `standing` says whether a claim is current, stale (older than the profile allows) or disputed (a newer comparable record is more than 2% slower).".to_string(),
    })
}

/// The `GET /api/v1/models` document: catalog, profiles, adjacent lane, exclusions, service paths.
pub fn models_document(content: &Content) -> ModelsDocument {
    let families = content
        .catalog
        .families
        .iter()
        .map(|f| CatalogFamily {
            family: f.clone(),
            profile: content.profile(&f.slug).map(|p| FamilyProfile {
                status: p.status,
                note: p.note.clone(),
                thresholds: Thresholds {
                    basis: "transformers BF16 vs f32 on random-weight models (docs/benchmarks/qualification.md)".to_string(),
                    max_ppl_relative: p.max_ppl_relative,
                    min_top1_agreement: p.min_top1_agreement,
                    max_mean_kl: p.max_mean_kl,
                },
            }),
        })
        .collect();
    ModelsDocument {
        families,
        repo_count: content.catalog.families.iter().map(|f| f.repos.len()).sum(),
        adjacent: content.catalog.adjacent.clone(),
        excluded: content.catalog.excluded.clone(),
        benchmark_rules: content.benchmark.clone(),
        service_paths: content.service_paths.clone(),
    }
}

/// The `GET /api/v1/gpus` document.
pub fn gpus_document(content: &Content) -> GpusDocument {
    GpusDocument {
        gpus: content.gpus.clone(),
    }
}

/// The `GET /api/v1/sizing` document (measured figures only from promoted claims).
pub async fn sizing_document(
    pool: &SqlitePool,
    content: &Content,
    family: Option<&str>,
) -> ApiResult<SizingDocument> {
    if let Some(f) = family {
        if content.family(f).is_none() {
            return Err(ApiError::bad_request(
                "invalid_query",
                format!("family {f:?} is not a catalog family"),
            )
            .with_field("family"));
        }
    }
    let claims = claims(pool, content, &ClaimFilter::default(), Timestamp::now()).await?;
    Ok(sizing::sizing(content, &claims, family))
}
