//! The site's reads and writes over the evidence store's library, in-process: the same `vkae_evidence::service`
//! functions the JSON API's handlers call, so the pages can show nothing the public API could not. Public
//! documents arrive as the typed documents of `vkae_domain` and are read into the site's view types here, in
//! one place.

use crate::model::*;
use vkae_domain as d;
use vkae_evidence::service;
use vkae_evidence::{ApiError, AppState};

/// A refusal or failure from the store, as the site reports it.
#[derive(Clone, Debug)]
pub struct StoreError {
    pub status: u16,
    pub message: String,
    pub field: Option<String>,
    pub retry_after: Option<u64>,
}

impl From<ApiError> for StoreError {
    fn from(e: ApiError) -> Self {
        StoreError {
            status: e.status.as_u16(),
            message: e.message,
            field: e.field,
            retry_after: e.retry_after,
        }
    }
}

impl From<String> for StoreError {
    fn from(message: String) -> Self {
        StoreError {
            status: 500,
            message,
            field: None,
            retry_after: None,
        }
    }
}

pub type StoreResult<T> = Result<T, StoreError>;

/// Everything the public pages show.
pub async fn public_data(state: &AppState) -> StoreResult<PublicData> {
    let claims = service::public_claims(state, &Default::default()).await?;
    let models = service::public_models(state);
    let gpus = service::public_gpus(state);
    let sizing = service::public_sizing(state, None).await?;
    Ok(PublicData {
        claims: read_claims(&claims)?,
        catalog: read_catalog(&models),
        gpus: gpus.gpus,
        sizing: read_sizing(&sizing),
        service_paths: models.service_paths.clone(),
    })
}

pub fn read_claims(doc: &d::ClaimsDocument) -> StoreResult<Vec<Claim>> {
    doc.claims
        .iter()
        .map(|c| {
            let f = &c.figures;
            let vkae = f.median(d::PathRole::Vkae).ok_or_else(|| {
                StoreError::from(format!("claim {} has no VKAE median", f.run_id))
            })?;
            Ok(Claim {
                run_id: f.run_id.to_string(),
                family: f.model.family.to_string(),
                repo: f.model.repo.clone(),
                weights: f.model.weights.clone(),
                level: c.level,
                gpu: f.hardware.gpu.clone(),
                gpu_count: f.hardware.gpu_count,
                precision: f.recipe.precision.clone(),
                batch: f.recipe.batch,
                prompt_tokens: f.recipe.prompt_tokens,
                output_tokens: f.recipe.output_tokens,
                baseline_name: f.path(d::PathRole::Baseline).map(|p| p.name.clone()),
                baseline_tokens_per_s: f.median(d::PathRole::Baseline),
                vkae_tokens_per_s: vkae,
                derived: f.derived.as_ref().map(|d| Derived {
                    lift: d.lift,
                    additional_tokens_per_s: d.additional_tokens_per_s,
                    cost_reduction: d.token_cost_reduction,
                    eager: d.eager_reference.as_ref().map(|e| EagerLift {
                        path: e.path.clone(),
                        tokens_per_s: e.tokens_per_s,
                        lift: e.lift,
                    }),
                }),
                quality: Quality {
                    reference_ppl: f.quality.reference_ppl,
                    vkae_ppl: f.quality.vkae_ppl,
                    top1_agreement: f.quality.top1_agreement,
                    mean_kl: f.quality.mean_kl,
                },
                engine_commit: f.engine.commit.clone().unwrap_or_default(),
                record_url: c.provenance.record.clone(),
                lane_key: c.provenance.lane_key.clone(),
                lane_public_key: c.provenance.lane_public_key.clone(),
                measured_at: f.measured_at.clone(),
                promoted_at: c.promoted_at.clone(),
                standing: Standing {
                    state: c.standing.state,
                    current_until: c.standing.current_until.clone(),
                    disputed_by: c
                        .standing
                        .disputes
                        .iter()
                        .map(|d| d.run_id.clone())
                        .collect(),
                },
            })
        })
        .collect()
}

fn billions(v: f64) -> String {
    format!("{v}B")
}

pub fn read_catalog(doc: &d::ModelsDocument) -> Catalog {
    let families = doc
        .families
        .iter()
        .map(|entry| {
            let f = &entry.family;
            let (total, effective) = (f.params_total_b, f.params_effective_b);
            let params = if (total - effective).abs() < 1e-9 {
                billions(total)
            } else {
                format!(
                    "{} total / {} effective",
                    billions(total),
                    billions(effective)
                )
            };
            Family {
                name: f.slug.to_string(),
                description: f.name.clone(),
                repos: f.repos.clone(),
                claim_ready: entry
                    .profile
                    .as_ref()
                    .is_some_and(|p| p.status == d::ProfileStatus::ClaimReady),
                params,
                layers: f.num_hidden_layers,
                context_tokens: u64::from(f.max_context),
                weights_gb: f.bf16_weights_gb,
            }
        })
        .collect();
    Catalog {
        families,
        adjacent: vec![doc.adjacent.clone()],
        excluded: doc.excluded.clone(),
    }
}

pub fn read_sizing(doc: &d::SizingDocument) -> Sizing {
    let mut rows = Vec::new();
    let mut speed = Vec::new();
    for f in &doc.families {
        let family = f.family.to_string();
        rows.push(SizingRow {
            family: family.clone(),
            minimum: f.minimum.clone(),
            recommended: f.recommended.clone(),
        });
        for g in &f.speed {
            if let Some(measured) = &g.measured {
                if let Some(value) = measured.tokens_per_s {
                    speed.push(SpeedPoint {
                        family: family.clone(),
                        gpu: g.gpu.clone(),
                        batch: measured.batch,
                        kind: SpeedKind::Measured,
                        value,
                        run_id: Some(measured.run_id.to_string()),
                    });
                }
            }
            if let Some(planning) = &g.planning {
                // The planning index is the batch-1 roofline.
                speed.push(SpeedPoint {
                    family: family.clone(),
                    gpu: g.gpu.clone(),
                    batch: 1,
                    kind: SpeedKind::Planning,
                    value: planning.tokens_per_s,
                    run_id: None,
                });
            }
        }
    }
    let a = &doc.assumptions;
    let method = format!(
        "{} Precision: {}. Runtime headroom: {:.0}% of GPU memory. GPU counts tried: {}. GB = {}.",
        a.planning_note,
        a.precision,
        a.headroom_fraction * 100.0,
        a.gpu_counts
            .iter()
            .map(|n| n.to_string())
            .collect::<Vec<_>>()
            .join(", "),
        a.gb,
    );
    Sizing {
        rows,
        speed,
        method,
    }
}

pub async fn submit_preview(
    state: &AppState,
    client: &str,
    input: &crate::preview_form::PreviewInput,
) -> StoreResult<Option<i64>> {
    let input = input.clone().with_undecided_defaults();
    match service::submit_preview_request(state, client, &input).await? {
        vkae_evidence::preview::Submitted::Stored(id) => Ok(Some(id)),
        vkae_evidence::preview::Submitted::Discarded => Ok(None),
    }
}

/// What an operator sees on /internal, as the store's internal documents.
pub async fn internal_data(
    state: &AppState,
    session: &service::Session,
) -> StoreResult<InternalData> {
    Ok(service::internal_data(state, session).await?)
}
