//! The site's reads and writes over the evidence store's library, in-process: the same `vkae_evidence::service`
//! functions the JSON API's handlers call, so the pages can show nothing the public API could not. Public
//! documents arrive as the typed documents of `vkae_domain` and are read into the site's view types here, in
//! one place.

use crate::model::*;
use serde_json::Value;
use vkae_domain as d;
use vkae_evidence::service;
use vkae_evidence::{ApiError, AppState};
use vkae_record::{stats, Role, RunRecord};

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
        gpus: read_gpus(&gpus),
        sizing: read_sizing(&sizing),
        service_paths: read_service_paths(&models),
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
                    disputed_by: c.standing.disputes.iter().map(|d| d.run_id.clone()).collect(),
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
        adjacent: vec![Adjacent {
            name: doc.adjacent.name.clone(),
            repo: doc.adjacent.repos.join(", "),
            note: doc.adjacent.note.clone(),
        }],
        excluded: doc
            .excluded
            .iter()
            .map(|e| Excluded {
                name: e.name.clone(),
                reason: e.reason.clone(),
            })
            .collect(),
    }
}

/// The service paths as content declares them (served in the models document).
pub fn read_service_paths(doc: &d::ModelsDocument) -> Vec<ServicePath> {
    doc.service_paths
        .iter()
        .map(|p| ServicePath {
            slug: p.slug.to_string(),
            label: p.name.clone(),
            description: p.summary.clone(),
        })
        .collect()
}

pub fn read_gpus(doc: &d::GpusDocument) -> Vec<Gpu> {
    doc.gpus
        .iter()
        .map(|g| Gpu {
            id: g.id.to_string(),
            name: g.name.clone(),
            memory_gb: g.memory_gb,
            bandwidth_gb_s: g.bandwidth_gb_s,
            bf16_tflops: g.bf16_dense_tflops,
            source: g.source.clone(),
        })
        .collect()
}

fn read_lane(v: &d::MemoryLane) -> Lane {
    Lane {
        context_tokens: u64::from(v.context_tokens),
        batch: v.batch,
        weights_gb: v.weights_gb,
        kv_cache_gb: v.kv_cache_gb,
        needed_gb: v.needed_gb,
        headroom_fraction: v.headroom_fraction,
        gpu: v.lane.as_ref().map(|l| l.gpu.clone()),
        gpu_count: v.lane.as_ref().map(|l| l.gpu_count),
        usable_gb: v.lane.as_ref().map(|l| l.usable_gb),
    }
}

pub fn read_sizing(doc: &d::SizingDocument) -> Sizing {
    let mut rows = Vec::new();
    let mut speed = Vec::new();
    for f in &doc.families {
        let family = f.family.to_string();
        rows.push(SizingRow {
            family: family.clone(),
            minimum: read_lane(&f.minimum),
            recommended: read_lane(&f.recommended),
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

pub async fn internal_data(
    state: &AppState,
    session: &service::Session,
) -> StoreResult<InternalData> {
    let operator = &session.operator;
    let runs = service::internal_runs(state, operator).await?;
    let audit = service::audit_log(state, operator, None, 200).await?;
    let inbox = service::preview_requests(state, operator).await?;
    let mut runs: Vec<RunSummary> = runs
        .into_iter()
        .map(|r| {
            let record: RunRecord = serde_json::from_value(r.record.clone()).map_err(|e| {
                StoreError::from(format!("run {}: stored record unreadable: {e}", r.run_id))
            })?;
            let lanes = r
                .lanes
                .iter()
                .map(|v| LaneVerdict {
                    lane: v.lane.as_str().to_string(),
                    passed: v.passed,
                    reasons: v.reasons.clone(),
                })
                .collect();
            let path = |role: Role| record.paths.iter().find(|p| p.role == role);
            let recipe = &record.recipe;
            Ok(RunSummary {
                run_id: r.run_id.clone(),
                family: r.family.clone(),
                gpu: r.gpu.clone(),
                batch: recipe.batch,
                ingested_at: r.ingested_at.clone(),
                lanes,
                status: r.claim_status.clone(),
                level: r
                    .claim_level
                    .as_deref()
                    .and_then(|l| ClaimLevel::parse(l).ok()),
                claim_ready: r.profile_status == Some("claim-ready"),
                baseline_tokens_per_s: path(Role::Baseline)
                    .and_then(|p| stats::median(&p.tokens_per_s)),
                vkae_tokens_per_s: path(Role::Vkae).and_then(|p| stats::median(&p.tokens_per_s)),
                comparable: path(Role::Baseline)
                    .map(|b| {
                        format!(
                            "{}|{}|{}|{}|{}|{}|{}",
                            r.family,
                            record.model.weights,
                            r.gpu,
                            recipe.batch,
                            recipe.prompt_tokens,
                            recipe.output_tokens,
                            b.name,
                        )
                    })
                    .unwrap_or_default(),
                baseline_context: None,
            })
        })
        .collect::<StoreResult<_>>()?;
    baseline_contexts(&mut runs);
    let content_refusals = service::content_evidence(state, operator)
        .refused_promotions()
        .map(|p| ContentRefusal {
            run_id: p.entry.run_id.clone(),
            level: p.entry.level.clone(),
            operator: p.entry.operator.clone(),
            date: p.entry.date.clone(),
            message: p.message.clone().unwrap_or_default(),
            reasons: p
                .blockers
                .iter()
                .map(|b| {
                    let reasons: Vec<&str> = b["reasons"]
                        .as_array()
                        .map(|r| r.iter().filter_map(Value::as_str).collect())
                        .unwrap_or_default();
                    format!("{}: {}", b["lane"].as_str().unwrap_or("?"), reasons.join("; "))
                })
                .collect(),
        })
        .collect();
    let audit = audit
        .into_iter()
        .map(|e| AuditEntry {
            at: e.at,
            operator: e.actor,
            action: e.action,
            run_id: e.run_id.unwrap_or_default(),
            detail: detail_text(&e.detail.0),
        })
        .collect();
    let inbox = inbox
        .into_iter()
        .map(|r| PreviewRequest {
            id: r.id,
            received_at: r.received_at,
            name: r.name,
            email: r.email,
            company: r.company,
            service_path: r.service_path,
            model_family: r.model_family,
            gpu: r.gpu,
            message: r.message,
        })
        .collect();
    Ok(InternalData {
        operator: operator.name.clone(),
        csrf_token: session.csrf_token.clone(),
        runs,
        audit,
        inbox,
        content_refusals,
    })
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

/// An audit entry's JSON detail as one line for people: level, reason, blockers.
fn detail_text(detail: &Value) -> String {
    match detail {
        Value::Object(map) => map
            .iter()
            .map(|(k, v)| match v {
                Value::String(s) => format!("{k}: {s}"),
                Value::Array(items) => format!(
                    "{k}: {}",
                    items
                        .iter()
                        .map(|i| i["lane"]
                            .as_str()
                            .map(str::to_string)
                            .unwrap_or_else(|| i.to_string()))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                other => format!("{k}: {other}"),
            })
            .collect::<Vec<_>>()
            .join("; "),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}
