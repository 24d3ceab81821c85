//! The site's reads and writes over the evidence store's library, in-process: the same `vkae_evidence::service`
//! functions the JSON API's handlers call, so the pages can show nothing the public API could not. Public
//! documents arrive as the API's JSON and are read into the site's view types here, in one place.

use crate::model::*;
use serde_json::Value;
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

fn text(v: &Value) -> String {
    v.as_str().unwrap_or_default().to_string()
}

fn num(v: &Value) -> f64 {
    v.as_f64().unwrap_or(f64::NAN)
}

fn int(v: &Value) -> u64 {
    v.as_u64().unwrap_or_default()
}

fn malformed(what: &str) -> StoreError {
    StoreError::from(format!(
        "the store's {what} document is not in the expected shape"
    ))
}

/// Everything the public pages show.
pub async fn public_data(state: &AppState) -> StoreResult<PublicData> {
    let claims = service::public_claims(state, &Default::default()).await?;
    let models = service::public_models(state);
    let gpus = service::public_gpus(state);
    let sizing = service::public_sizing(state, None).await?;
    Ok(PublicData {
        claims: read_claims(&claims)?,
        catalog: read_catalog(&models)?,
        gpus: read_gpus(&gpus)?,
        sizing: read_sizing(&sizing)?,
        service_paths: read_service_paths(&models)?,
    })
}

/// The path in `role` of a claim or a raw record (both list `paths` with a `role`).
fn path_in<'a>(doc: &'a Value, role: &str) -> Option<&'a Value> {
    doc["paths"].as_array()?.iter().find(|p| p["role"] == role)
}

/// The median a claim states for its path in `role`.
fn median_of(claim: &Value, role: &str) -> Option<f64> {
    path_in(claim, role)?["tokens_per_s"]["median"].as_f64()
}

/// The name of a claim's (or record's) path in `role`, if it has one.
fn path_name(doc: &Value, role: &str) -> Option<String> {
    path_in(doc, role)?["name"].as_str().map(str::to_string)
}

pub fn read_claims(doc: &Value) -> StoreResult<Vec<Claim>> {
    let list = doc["claims"]
        .as_array()
        .ok_or_else(|| malformed("claims"))?;
    list.iter()
        .map(|c| {
            let level = ClaimLevel::parse(c["level"].as_str().unwrap_or_default())
                .map_err(StoreError::from)?;
            let vkae = median_of(c, "vkae").ok_or_else(|| malformed("claims (no VKAE path)"))?;
            let d = &c["derived"];
            let derived = d.is_object().then(|| Derived {
                lift: num(&d["lift"]),
                additional_tokens_per_s: num(&d["additional_tokens_per_s"]),
                cost_reduction: num(&d["token_cost_reduction"]),
            });
            Ok(Claim {
                run_id: text(&c["run_id"]),
                family: text(&c["model"]["family"]),
                repo: text(&c["model"]["repo"]),
                weights: text(&c["model"]["weights"]),
                level,
                gpu: text(&c["hardware"]["gpu"]),
                gpu_count: int(&c["hardware"]["gpu_count"]) as u32,
                precision: text(&c["recipe"]["precision"]),
                batch: int(&c["recipe"]["batch"]) as u32,
                prompt_tokens: int(&c["recipe"]["prompt_tokens"]) as u32,
                output_tokens: int(&c["recipe"]["output_tokens"]) as u32,
                baseline_name: path_name(c, "baseline"),
                baseline_tokens_per_s: median_of(c, "baseline"),
                vkae_tokens_per_s: vkae,
                derived,
                quality: Quality {
                    reference_ppl: num(&c["quality"]["reference_ppl"]),
                    vkae_ppl: num(&c["quality"]["vkae_ppl"]),
                    top1_agreement: num(&c["quality"]["top1_agreement"]),
                    mean_kl: num(&c["quality"]["mean_kl"]),
                },
                engine_commit: text(&c["engine"]["commit"]),
                record_url: text(&c["provenance"]["record"]),
                lane_key: text(&c["provenance"]["lane_key"]),
                lane_public_key: text(&c["provenance"]["lane_public_key"]),
                measured_at: text(&c["measured_at"]),
                promoted_at: text(&c["promoted_at"]),
            })
        })
        .collect()
}

fn billions(v: f64) -> String {
    format!("{v}B")
}

pub fn read_catalog(doc: &Value) -> StoreResult<Catalog> {
    let families = doc["families"]
        .as_array()
        .ok_or_else(|| malformed("models"))?;
    let families = families
        .iter()
        .map(|f| {
            let total = num(&f["params_total_b"]);
            let effective = num(&f["params_effective_b"]);
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
                name: text(&f["slug"]),
                description: text(&f["name"]),
                repos: f["repos"]
                    .as_array()
                    .map(|r| r.iter().map(text).collect())
                    .unwrap_or_default(),
                claim_ready: f["profile"]["status"] == "claim-ready",
                params,
                layers: int(&f["num_hidden_layers"]) as u32,
                context_tokens: int(&f["max_context"]),
                weights_gb: num(&f["bf16_weights_gb"]),
            }
        })
        .collect();
    let adjacent = match &doc["adjacent"] {
        Value::Array(list) => list.iter().map(read_adjacent).collect(),
        Value::Object(_) => vec![read_adjacent(&doc["adjacent"])],
        _ => Vec::new(),
    };
    let excluded = doc["excluded"]
        .as_array()
        .map(|l| {
            l.iter()
                .map(|e| Excluded {
                    name: text(&e["name"]),
                    reason: text(&e["reason"]),
                })
                .collect()
        })
        .unwrap_or_default();
    Ok(Catalog {
        families,
        adjacent,
        excluded,
    })
}

fn read_adjacent(a: &Value) -> Adjacent {
    Adjacent {
        name: text(&a["name"]),
        repo: a["repos"]
            .as_array()
            .map(|r| r.iter().map(text).collect::<Vec<_>>().join(", "))
            .unwrap_or_default(),
        note: text(&a["note"]),
    }
}

pub fn read_service_paths(doc: &Value) -> StoreResult<Vec<ServicePath>> {
    let list = doc["service_paths"]
        .as_array()
        .ok_or_else(|| malformed("models (service paths)"))?;
    Ok(list
        .iter()
        .map(|p| ServicePath {
            slug: text(&p["slug"]),
            label: text(&p["name"]),
            description: text(&p["summary"]),
        })
        .collect())
}

pub fn read_gpus(doc: &Value) -> StoreResult<Vec<Gpu>> {
    let list = doc["gpus"].as_array().ok_or_else(|| malformed("gpus"))?;
    Ok(list
        .iter()
        .map(|g| Gpu {
            id: text(&g["id"]),
            name: text(&g["name"]),
            memory_gb: num(&g["memory_gb"]),
            bandwidth_gb_s: num(&g["bandwidth_gb_s"]),
            bf16_tflops: num(&g["bf16_dense_tflops"]),
            source: text(&g["source"]),
        })
        .collect())
}

fn read_lane(v: &Value) -> Lane {
    let lane = &v["lane"];
    Lane {
        context_tokens: int(&v["context_tokens"]),
        batch: int(&v["batch"]) as u32,
        weights_gb: num(&v["weights_gb"]),
        kv_cache_gb: num(&v["kv_cache_gb"]),
        needed_gb: num(&v["needed_gb"]),
        headroom_fraction: num(&v["headroom_fraction"]),
        gpu: lane["gpu"].as_str().map(str::to_string),
        gpu_count: lane["gpu_count"].as_u64().map(|c| c as u32),
        usable_gb: lane["usable_gb"].as_f64(),
    }
}

pub fn read_sizing(doc: &Value) -> StoreResult<Sizing> {
    let families = doc["families"]
        .as_array()
        .ok_or_else(|| malformed("sizing"))?;
    let mut rows = Vec::new();
    let mut speed = Vec::new();
    for f in families {
        let family = text(&f["family"]);
        rows.push(SizingRow {
            family: family.clone(),
            minimum: read_lane(&f["minimum"]),
            recommended: read_lane(&f["recommended"]),
        });
        for g in f["speed"].as_array().into_iter().flatten() {
            let gpu = text(&g["gpu"]);
            let measured = &g["measured"];
            if let Some(value) = measured["tokens_per_s"].as_f64() {
                speed.push(SpeedPoint {
                    family: family.clone(),
                    gpu: gpu.clone(),
                    batch: int(&measured["batch"]) as u32,
                    kind: SpeedKind::Measured,
                    value,
                    run_id: measured["run_id"].as_str().map(str::to_string),
                });
            }
            if let Some(value) = g["planning"]["tokens_per_s"].as_f64() {
                // The planning index is the batch-1 roofline.
                speed.push(SpeedPoint {
                    family: family.clone(),
                    gpu,
                    batch: 1,
                    kind: SpeedKind::Planning,
                    value,
                    run_id: None,
                });
            }
        }
    }
    let a = &doc["assumptions"];
    let method = format!(
        "{} Precision: {}. Runtime headroom: {:.0}% of GPU memory. GPU counts tried: {}. GB = {}.",
        text(&a["planning_note"]),
        text(&a["precision"]),
        num(&a["headroom_fraction"]) * 100.0,
        a["gpu_counts"]
            .as_array()
            .map(|c| c
                .iter()
                .map(|n| n.to_string())
                .collect::<Vec<_>>()
                .join(", "))
            .unwrap_or_default(),
        text(&a["gb"]),
    );
    Ok(Sizing {
        rows,
        speed,
        method,
    })
}

/// `None` for the store's `undecided`, so the form can use an empty choice.
fn undecided(value: &str) -> String {
    if value.trim().is_empty() {
        vkae_evidence::preview::UNDECIDED.to_string()
    } else {
        value.trim().to_string()
    }
}

pub async fn submit_preview(
    state: &AppState,
    client: &str,
    input: &crate::preview_form::PreviewInput,
) -> StoreResult<Option<i64>> {
    let store_input = vkae_evidence::preview::PreviewInput {
        name: input.name.clone(),
        email: input.email.clone(),
        company: input.company.clone(),
        service_path: input.service_path.clone(),
        model_family: undecided(&input.model_family),
        gpu: undecided(&input.gpu),
        message: input.message.clone(),
        website: input.website.clone(),
        csrf_token: None,
    };
    match service::submit_preview_request(state, client, &store_input).await? {
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
            let lanes = r
                .lanes
                .iter()
                .map(|v| {
                    let value = serde_json::to_value(v).unwrap_or_default();
                    LaneVerdict {
                        lane: text(&value["lane"]),
                        passed: v.passed,
                        reasons: v.reasons.clone(),
                    }
                })
                .collect();
            RunSummary {
                run_id: r.run_id.clone(),
                family: r.family.clone(),
                gpu: r.gpu.clone(),
                batch: int(&r.record["recipe"]["batch"]) as u32,
                ingested_at: r.ingested_at.clone(),
                lanes,
                status: r.claim_status.clone(),
                level: r
                    .claim_level
                    .as_deref()
                    .and_then(|l| ClaimLevel::parse(l).ok()),
                claim_ready: r.profile_status == Some("claim-ready"),
                baseline_tokens_per_s: median(&r.record, "baseline"),
                vkae_tokens_per_s: median(&r.record, "vkae"),
                comparable: path_name(&r.record, "baseline")
                    .map(|b| {
                        let rec = &r.record;
                        format!(
                            "{}|{}|{}|{}|{}|{}|{b}",
                            r.family,
                            text(&rec["model"]["weights"]),
                            r.gpu,
                            int(&rec["recipe"]["batch"]),
                            int(&rec["recipe"]["prompt_tokens"]),
                            int(&rec["recipe"]["output_tokens"]),
                        )
                    })
                    .unwrap_or_default(),
                baseline_context: None,
            }
        })
        .collect();
    crate::model::baseline_contexts(&mut runs);
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
    })
}

/// Median of a raw record's path (internal view only: raw numbers never reach a public page).
fn median(record: &Value, role: &str) -> Option<f64> {
    let mut values: Vec<f64> = path_in(record, role)?["tokens_per_s"]
        .as_array()?
        .iter()
        .filter_map(Value::as_f64)
        .collect();
    crate::model::median(&mut values)
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
