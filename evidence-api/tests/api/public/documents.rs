//! The public documents, byte for byte: claims (with one promoted claim), models, GPUs and sizing, against
//! snapshots in `tests/snapshots/`. Values that differ per run (the test's fresh lane key, the signature's
//! digest, the promotion time) are replaced by placeholders; everything else (key order, number formatting,
//! nulls) must match exactly. `UPDATE_SNAPSHOTS=1` rewrites the files.

use crate::common::*;
use serde_json::Value;
use std::path::PathBuf;

fn snapshot_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/snapshots")
        .join(format!("{name}.json"))
}

/// Replaces each per-run value (found under `keys` anywhere in the document) by `<key>`.
fn normalise(text: &str, keys: &[&str]) -> String {
    fn collect(v: &Value, keys: &[&str], out: &mut Vec<(String, String)>) {
        match v {
            Value::Object(map) => {
                for (k, v) in map {
                    match v.as_str() {
                        Some(s) if keys.contains(&k.as_str()) => {
                            out.push((s.to_string(), k.clone()))
                        }
                        _ => collect(v, keys, out),
                    }
                }
            }
            Value::Array(items) => items.iter().for_each(|i| collect(i, keys, out)),
            _ => {}
        }
    }
    let doc: Value = serde_json::from_str(text).expect("JSON");
    let mut found = Vec::new();
    collect(&doc, keys, &mut found);
    let mut out = text.to_string();
    for (value, key) in found {
        out = out.replace(&format!("\"{value}\""), &format!("\"<{key}>\""));
    }
    out
}

fn check(name: &str, body: &str) {
    let path = snapshot_path(name);
    if std::env::var_os("UPDATE_SNAPSHOTS").is_some() {
        std::fs::write(&path, body).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (UPDATE_SNAPSHOTS=1 writes it)", path.display()));
    assert_eq!(body, expected, "{name} differs from {}", path.display());
}

#[tokio::test]
async fn public_documents_match_their_snapshots_byte_for_byte() {
    let app = spawn().await;
    assert_eq!(
        app.ingest(record_of(Kind::Good, "snap-1")).await.status(),
        201
    );
    assert_eq!(app.promote("snap-1").await.status(), 200);
    for (name, path) in [
        ("claims", "/api/v1/claims"),
        ("models", "/api/v1/models"),
        ("gpus", "/api/v1/gpus"),
        ("sizing", "/api/v1/sizing"),
        ("sizing-e4b", "/api/v1/sizing?family=E4B"),
    ] {
        let r = app.get(path).await;
        assert_eq!(r.status(), 200, "{path}");
        let body = r.text().await.unwrap();
        let body = normalise(&body, &["promoted_at", "record_sha256", "lane_public_key"]);
        assert!(!body.is_empty());
        check(name, &body);
    }
}
