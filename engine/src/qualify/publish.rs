//! Where records go: written atomically to their files, and POSTed to an evidence store.

use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use serde_json::json;

pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)?;
    }
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

/// POSTs a record to `URL/api/internal/runs` with the ingest token; returns the store's JSON answer, or an
/// error carrying the store's status and error body.
pub fn ingest(url: &str, token: &str, body: &[u8]) -> Result<serde_json::Value> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(60)))
        .build()
        .into();
    let endpoint = format!("{}/api/internal/runs", url.trim_end_matches('/'));
    let mut resp = agent
        .post(&endpoint)
        .header("Authorization", &format!("Bearer {token}"))
        .header("Content-Type", "application/json")
        .send(body)
        .with_context(|| format!("POST {endpoint}"))?;
    let status = resp.status().as_u16();
    let text = resp.body_mut().read_to_string().unwrap_or_default();
    let value: serde_json::Value =
        serde_json::from_str(&text).unwrap_or_else(|_| json!({ "raw": text }));
    if !(200..300).contains(&status) {
        bail!("the store answered {status}: {value}");
    }
    Ok(value)
}

pub fn summarize_ingest(v: &serde_json::Value) -> String {
    let lanes = v["lanes"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|l| {
                    format!(
                        "{} {}",
                        l["lane"].as_str().unwrap_or("?"),
                        if l["passed"].as_bool() == Some(true) {
                            "pass"
                        } else {
                            "FAIL"
                        }
                    )
                })
                .collect::<Vec<_>>()
                .join(", ")
        })
        .unwrap_or_default();
    format!("id {} (created {}); lanes: {lanes}", v["id"], v["created"])
}
