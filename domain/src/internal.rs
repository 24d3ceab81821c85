//! The internal documents (`/api/internal/runs`, `/audit`, `/preview-requests`): the store serialises these
//! types and the operator pages read the same ones, so a renamed field fails to compile on both sides.

use crate::level::ClaimLevel;
use crate::preview::ValidPreview;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

/// A lane's verdict on an ingested run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LaneVerdict {
    pub lane: String,
    pub passed: bool,
    /// The failures when failed, what was checked when passed.
    pub reasons: Vec<String>,
}

/// An ingested run as operators see it: lane verdicts, claim state and the raw (not public) path medians.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunSummary {
    /// The store's id of the run.
    pub id: i64,
    pub run_id: String,
    pub family: String,
    pub repo: String,
    pub gpu: String,
    pub gpu_id: Option<String>,
    /// The lane key that signed the record.
    pub lane_key: String,
    pub ingested_at: String,
    pub lanes: Vec<LaneVerdict>,
    /// `promoted`, `retracted` or `unpromoted`.
    pub claim_status: String,
    pub claim_level: Option<ClaimLevel>,
    /// The family's profile status (`claim-ready` lets its runs carry claims), when the family has a profile.
    pub profile_status: Option<String>,
    pub batch: u32,
    /// Median of the baseline path's repetitions, when the run had one.
    pub baseline_tokens_per_s: Option<f64>,
    /// Median of the VKAE path's repetitions, when the run had one.
    pub vkae_tokens_per_s: Option<f64>,
    /// What makes two runs' baselines comparable: model family, weights, GPU, batch, prompt and output tokens
    /// and the baseline path's name (empty without a baseline path).
    pub comparable: String,
    /// This run's baseline beside the other stored runs of the same `comparable`.
    pub baseline_context: Option<BaselineContext>,
}

impl RunSummary {
    /// Whether the run's family may carry claims (porting-track runs are kept but cannot be promoted).
    pub fn claim_ready(&self) -> bool {
        self.profile_status.as_deref() == Some("claim-ready")
    }
}

/// A run's baseline median against the median of the other comparable runs' baseline medians. The benchmark
/// lane only checks a run's spread, so a run whose host was slow (or fast) throughout passes with a baseline
/// that inflates (or deflates) the derived speed-up; this shows the operator before promoting.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BaselineContext {
    /// How many other runs were compared.
    pub others: usize,
    pub others_median: f64,
    /// This run's baseline / `others_median` - 1.
    pub deviation: f64,
}

impl BaselineContext {
    /// Off by more than a quarter: worth a look before promoting (a caution, not a lane).
    pub fn notable(&self) -> bool {
        self.deviation.abs() > 0.25
    }
}

/// One entry of the append-only audit log.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AuditEntry {
    pub seq: i64,
    pub at: String,
    /// An operator's name, `ingest-token:N` or `cli`.
    pub actor: String,
    pub action: String,
    pub run_id: Option<String>,
    pub detail: AuditDetail,
}

/// What an audit entry records beside its action; each action fills its own members.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditDetail {
    /// `lane-key-add`: the key's name and public key.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub public_key: Option<String>,
    /// `ingest`: the store's id, the record's SHA-256 and each lane's pass.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lanes: Option<BTreeMap<String, bool>>,
    /// `promote`, `promote-refused`, `retract`: the level asked for and the operator's reason.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub level: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// `promote-refused`: what blocked the promotion.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub blockers: Option<Vec<Blocker>>,
    /// `promote` that settles disputes: the newer runs that had disputed the claim.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub settles_disputes_by: Option<Vec<String>>,
    /// `promote` from reviewed content: the file, and the operator and date its entry names.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub operator: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub date: Option<String>,
    /// Security events (`login_failed`, `ingest_refused`): the client address, the refusal's code, the
    /// refused field and who sent it (`reason` holds the message, `name` the login name).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub actor: Option<String>,
}

/// A lane (or the family's profile) that blocks a promotion, with its reasons.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Blocker {
    pub lane: String,
    pub reasons: Vec<String>,
}

impl fmt::Display for AuditDetail {
    /// One line for people, members in sorted order: `level: vkae-path; reason: …; blockers: quality, profile`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let lanes = self.lanes.as_ref().map(|lanes| {
            let items: Vec<String> = lanes.iter().map(|(k, v)| format!("{k:?}:{v}")).collect();
            format!("{{{}}}", items.join(","))
        });
        let blockers = self.blockers.as_ref().map(|blockers| {
            let lanes: Vec<&str> = blockers.iter().map(|b| b.lane.as_str()).collect();
            lanes.join(", ")
        });
        let parts = [
            ("actor", self.actor.clone()),
            ("blockers", blockers),
            ("client", self.client.clone()),
            ("code", self.code.clone()),
            ("date", self.date.clone()),
            ("field", self.field.clone()),
            ("id", self.id.map(|id| id.to_string())),
            ("lanes", lanes),
            ("level", self.level.clone()),
            ("name", self.name.clone()),
            ("operator", self.operator.clone()),
            ("public_key", self.public_key.clone()),
            ("reason", self.reason.clone()),
            (
                "settles_disputes_by",
                self.settles_disputes_by.as_ref().map(|r| r.join(", ")),
            ),
            ("sha256", self.sha256.clone()),
            ("source", self.source.clone()),
        ];
        let line: Vec<String> = parts
            .into_iter()
            .filter_map(|(key, value)| value.map(|v| format!("{key}: {v}")))
            .collect();
        f.write_str(&line.join("; "))
    }
}

/// A stored private-preview request: the validated fields, when it came and its id.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PreviewRequest {
    pub id: i64,
    pub received_at: String,
    #[serde(flatten)]
    pub request: ValidPreview,
}

/// What an operator sees on /internal.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct InternalData {
    pub operator: String,
    pub csrf_token: String,
    pub runs: Vec<RunSummary>,
    pub audit: Vec<AuditEntry>,
    pub inbox: Vec<PreviewRequest>,
    /// Entries of `content/evidence/promotions.toml` the promotion gate refused at start.
    pub content_refusals: Vec<ContentRefusal>,
}

/// A committed promotion the gate refused: never forced, shown so an operator can fix the record or the entry.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ContentRefusal {
    pub run_id: String,
    pub level: String,
    pub operator: String,
    pub date: String,
    pub message: String,
    /// Each failing lane with its reasons, in words.
    pub reasons: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_audit_detail_reads_as_one_sorted_line() {
        let refused: AuditDetail = serde_json::from_str(
            r#"{"blockers":[{"lane":"quality","reasons":["x"]},{"lane":"profile","reasons":[]}],"level":"vkae-path","reason":"ok"}"#,
        )
        .unwrap();
        assert_eq!(
            refused.to_string(),
            "blockers: quality, profile; level: vkae-path; reason: ok"
        );
        let ingest: AuditDetail = serde_json::from_str(
            r#"{"id":3,"lanes":{"artifact":true,"benchmark":false},"sha256":"ab"}"#,
        )
        .unwrap();
        assert_eq!(
            ingest.to_string(),
            r#"id: 3; lanes: {"artifact":true,"benchmark":false}; sha256: ab"#
        );
        assert!(serde_json::from_str::<AuditDetail>(r#"{"other":1}"#).is_err());
    }

    #[test]
    fn a_preview_request_serialises_flat() {
        let request = PreviewRequest {
            id: 7,
            received_at: "t".into(),
            request: ValidPreview {
                name: "Ada".into(),
                email: "ada@example.com".into(),
                company: "AE".into(),
                service_path: "report".into(),
                model_family: "E4B".into(),
                gpu: "h200".into(),
                message: String::new(),
            },
        };
        let json = serde_json::to_value(&request).unwrap();
        assert_eq!(json["id"], 7);
        assert_eq!(json["email"], "ada@example.com");
        assert_eq!(
            serde_json::from_value::<PreviewRequest>(json).unwrap(),
            request
        );
    }
}
