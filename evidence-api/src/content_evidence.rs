//! Evidence as reviewed content: at start, the signed records committed under `<content>/evidence/` (any depth)
//! are ingested through the same checks as `POST /api/internal/runs`, under the lane public keys committed beside
//! them (`NAME.pub` in the record's own folder), and the entries of `<content>/evidence/promotions.toml` are
//! applied through the same promotion gate as an operator's promotion.
//!
//! Applying the same files again writes nothing: a stored record answers `created: false`, a registered key with
//! the same bytes is kept, and a run that already has a claim row (promoted, or retracted by an operator) is left
//! as it is. An entry the gate refuses is logged and reported (`/internal`, `GET /api/internal/content-evidence`),
//! never forced, and not audited, so a restart adds no rows.

use crate::content::Content;
use crate::db::Db;
use crate::store::{self, Actor, Promoter};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::path::{Path, PathBuf};

/// The promotions file, relative to the evidence folder.
pub const PROMOTIONS_FILE: &str = "promotions.toml";

/// One entry of `promotions.toml`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PromotionEntry {
    pub run_id: String,
    /// A claim level slug (`declared-baseline`, `vkae-path`, `optimized-showcase`, `preview-smoke`).
    pub level: String,
    /// The operator who reviewed the entry.
    pub operator: String,
    pub reason: String,
    /// The review date, `YYYY-MM-DD`.
    pub date: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct PromotionsFile {
    #[serde(default)]
    promotions: Vec<PromotionEntry>,
}

/// What happened to one committed record file.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct RecordOutcome {
    /// Path relative to the evidence folder.
    pub file: String,
    pub run_id: Option<String>,
    /// `ingested`, `stored-already`, `refused` (the ingest checks said no: `reason`) or `skipped` (no lane key
    /// beside it: `reason`).
    pub status: &'static str,
    pub reason: Option<String>,
}

/// What happened to one entry of `promotions.toml`.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct PromotionOutcome {
    #[serde(flatten)]
    pub entry: PromotionEntry,
    /// `applied`, `decided-already` (the run has a claim row; content promotes once) or `refused`.
    pub status: &'static str,
    /// Why it was refused: the gate's message, and its blockers (failing lanes with their reasons) when it had any.
    pub message: Option<String>,
    pub blockers: Vec<Value>,
}

/// The outcome of applying the content evidence at start.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct ContentEvidenceReport {
    /// The evidence folder applied, if there was one.
    pub folder: Option<String>,
    pub records: Vec<RecordOutcome>,
    pub promotions: Vec<PromotionOutcome>,
}

impl ContentEvidenceReport {
    /// The promotion entries the gate refused.
    pub fn refused_promotions(&self) -> impl Iterator<Item = &PromotionOutcome> {
        self.promotions.iter().filter(|p| p.status == "refused")
    }
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), String> {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| format!("cannot read {}: {e}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    entries.sort();
    out.push(dir.to_path_buf());
    for path in entries {
        if path.is_dir() {
            walk(&path, out)?;
        }
    }
    Ok(())
}

fn files_with(dir: &Path, suffix: &str) -> Result<Vec<PathBuf>, String> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| format!("cannot read {}: {e}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file() && p.to_string_lossy().ends_with(suffix))
        .collect();
    files.sort();
    Ok(files)
}

fn stem(path: &Path) -> String {
    path.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Reads and checks `promotions.toml` (absent: no entries). A broken file stops start-up, naming file and field.
pub fn read_promotions(path: &Path) -> Result<Vec<PromotionEntry>, String> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
    };
    let file: PromotionsFile =
        toml::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    for (i, p) in file.promotions.iter().enumerate() {
        let date_ok = p.date.len() == 10
            && vkae_record::Timestamp::parse(&format!("{}T00:00:00Z", p.date)).is_ok();
        if !date_ok {
            return Err(format!(
                "{}: field `promotions[{i}].date`: {:?} is not a YYYY-MM-DD date",
                path.display(),
                p.date
            ));
        }
        if p.operator.trim().is_empty() || p.run_id.trim().is_empty() {
            return Err(format!(
                "{}: `promotions[{i}]`: run_id and operator must not be empty",
                path.display()
            ));
        }
    }
    Ok(file.promotions)
}

/// Ingests the committed records and applies the promotions of `evidence_dir` (see the module documentation).
/// Errors only for what stops start-up: an unreadable folder or a malformed `promotions.toml`.
pub async fn apply(
    db: &Db,
    content: &Content,
    evidence_dir: &Path,
    max_record_bytes: usize,
) -> Result<ContentEvidenceReport, String> {
    let promotions = read_promotions(&evidence_dir.join(PROMOTIONS_FILE))?;
    let mut report = ContentEvidenceReport {
        folder: Some(evidence_dir.display().to_string()),
        ..Default::default()
    };
    let mut folders = Vec::new();
    walk(evidence_dir, &mut folders)?;
    for folder in folders {
        let mut keys = Vec::new();
        for pub_file in files_with(&folder, ".pub")? {
            let name = stem(&pub_file);
            let key = std::fs::read_to_string(&pub_file)
                .map_err(|e| format!("cannot read {}: {e}", pub_file.display()))?;
            match store::ensure_lane_key(db, &Actor::Content, &name, key.trim()).await {
                Ok(()) => keys.push(name),
                Err(e) => tracing::warn!(
                    "content evidence: lane key {} not used: {}",
                    pub_file.display(),
                    e.message
                ),
            }
        }
        for file in files_with(&folder, ".json")? {
            let relative = file
                .strip_prefix(evidence_dir)
                .unwrap_or(&file)
                .display()
                .to_string();
            let bytes =
                std::fs::read(&file).map_err(|e| format!("cannot read {}: {e}", file.display()))?;
            // Reports and other JSON files beside the records are not run records.
            let Ok(doc) = serde_json::from_slice::<Value>(&bytes) else {
                continue;
            };
            if doc["schema"] != vkae_record::SCHEMA_V1 {
                continue;
            }
            let run_id = doc["run_id"].as_str().map(str::to_string);
            let lane_key = doc["lane_key"].as_str().unwrap_or_default();
            if !keys.iter().any(|k| k == lane_key) {
                report.records.push(RecordOutcome {
                    file: relative,
                    run_id,
                    status: "skipped",
                    reason: Some(format!("no {lane_key}.pub beside it")),
                });
                continue;
            }
            let outcome =
                match store::ingest(db, content, &Actor::Content, &bytes, max_record_bytes).await {
                    Ok(o) if o.created => ("ingested", None),
                    Ok(_) => ("stored-already", None),
                    Err(e) => {
                        tracing::warn!("content evidence: {relative} refused: {}", e.message);
                        ("refused", Some(e.message))
                    }
                };
            report.records.push(RecordOutcome {
                file: relative,
                run_id,
                status: outcome.0,
                reason: outcome.1,
            });
        }
    }
    for entry in promotions {
        let promoter = Promoter::Content {
            operator: &entry.operator,
            date: &entry.date,
        };
        let result = store::promote_by(
            db,
            content,
            promoter,
            &entry.run_id,
            &entry.level,
            &entry.reason,
        )
        .await;
        let (status, message, blockers) = match result {
            Ok(_) => ("applied", None, Vec::new()),
            Err(e) if e.code == "already_decided" => ("decided-already", None, Vec::new()),
            Err(e) => {
                let blockers = e
                    .details
                    .as_ref()
                    .and_then(|d| d["blockers"].as_array().cloned())
                    .unwrap_or_default();
                tracing::warn!(
                    "content promotion of {} refused: {} {}",
                    entry.run_id,
                    e.message,
                    serde_json::Value::Array(blockers.clone())
                );
                ("refused", Some(e.message), blockers)
            }
        };
        report.promotions.push(PromotionOutcome {
            entry,
            status,
            message,
            blockers,
        });
    }
    let count = |status: &str| report.records.iter().filter(|r| r.status == status).count();
    tracing::info!(
        "content evidence: {} records ingested, {} stored already, {} refused, {} skipped; promotions: {} applied, {} refused",
        count("ingested"),
        count("stored-already"),
        count("refused"),
        count("skipped"),
        report.promotions.iter().filter(|p| p.status == "applied").count(),
        report.refused_promotions().count()
    );
    Ok(report)
}
