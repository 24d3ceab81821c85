//! The committed evidence (content/evidence/): every record parses strictly, verifies under the lane's public
//! key committed beside it, adds up (tokens generated = batch x output x reps on every path), and ingests into
//! a real evidence store (port 0, fresh SQLite file, the repository's content) passing the artifact, benchmark
//! and quality lanes as judged (printed; the artifact lane must pass and the token accounting add up).
//! The final VKAE path (`FINAL_PATH_COMMIT`, the commit docs/benchmarks/ quotes) must have records at batch 1,
//! 8 and 32, and every one of them must pass all three lanes.

use std::path::PathBuf;

use serde_json::Value;
use vkae_evidence::auth::{self, TokenKind};
use vkae_evidence::store::{self, Actor};
use vkae_evidence::{Application, Settings};
use vkae_record::{Role, RunRecord};

/// The engine commit whose records docs/benchmarks/{vkae-path,qualification}.md quote as the final VKAE path.
/// Changing the path means committing passing records of the new commit and naming it here.
const FINAL_PATH_COMMIT: &str = "c7c3ba1ae5e1290da203ffbb8da277330270fb33";

fn evidence_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../content/evidence")
}

/// (file, bytes, record) of a committed record.
type Committed = (PathBuf, Vec<u8>, RunRecord);

/// Every `qualify-*.json` record under content/evidence/ (any depth) whose folder holds the `NAME.pub` key it
/// names, as the store's start-up ingest takes them, and (name, public key) for every such key.
fn committed() -> (Vec<Committed>, Vec<(String, String)>) {
    let (mut records, mut keys) = (vec![], vec![]);
    collect(&evidence_dir(), &mut records, &mut keys);
    records.sort_by(|a, b| a.0.cmp(&b.0));
    (records, keys)
}

fn collect(dir: &std::path::Path, records: &mut Vec<Committed>, keys: &mut Vec<(String, String)>) {
    let mut here = vec![];
    let mut here_keys = vec![];
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("content/evidence exists")
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for p in entries {
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        if p.is_dir() {
            collect(&p, records, keys);
            continue;
        }
        match p.extension().and_then(|x| x.to_str()) {
            Some("json") if name.starts_with("qualify-") => {
                let bytes = std::fs::read(&p).unwrap();
                // Side reports (`*.report.json`) sit beside the records; only run records are ingested.
                let doc: Value = serde_json::from_slice(&bytes).unwrap();
                if doc["schema"] != "vkae.run.v1" {
                    continue;
                }
                let rec =
                    RunRecord::parse(&bytes).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
                here.push((p, bytes, rec));
            }
            Some("pub") => {
                let name = p.file_stem().unwrap().to_string_lossy().into_owned();
                let key = std::fs::read_to_string(&p).unwrap().trim().to_string();
                here_keys.push((name, key));
            }
            _ => {}
        }
    }
    for (path, bytes, rec) in here {
        if here_keys.iter().any(|(n, _)| n == &rec.lane_key) {
            records.push((path, bytes, rec));
        } else {
            eprintln!(
                "{}: no {}.pub beside it; not ingested",
                path.display(),
                rec.lane_key
            );
        }
    }
    keys.extend(here_keys);
}

#[test]
fn committed_records_verify_under_the_committed_lane_key_and_add_up() {
    let (records, keys) = committed();
    assert!(!records.is_empty(), "no records in content/evidence");
    for (path, _, rec) in &records {
        let (_, public) = keys
            .iter()
            .find(|(n, _)| n == &rec.lane_key)
            .unwrap_or_else(|| panic!("{}: no {}.pub beside it", path.display(), rec.lane_key));
        rec.verify(&vkae_record::decode_verifying_key(public).unwrap())
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let r = &rec.recipe;
        for p in &rec.paths {
            assert!(p.tokens_per_s.len() >= 3, "{}: {}", path.display(), p.name);
            assert_eq!(
                p.tokens_generated,
                u64::from(r.batch) * u64::from(r.output_tokens) * p.tokens_per_s.len() as u64,
                "{}: {}",
                path.display(),
                p.name
            );
        }
        assert_eq!(
            rec.paths
                .iter()
                .filter(|p| p.role == Role::Baseline)
                .count(),
            1
        );
        assert_eq!(rec.paths.iter().filter(|p| p.role == Role::Vkae).count(), 1);
        assert!(rec.quality.tokens >= 2048, "{}", path.display());
        assert!(rec.engine.commit.is_some() && rec.engine.kernels_sha256.is_some());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn committed_records_ingest_cleanly_with_their_lanes_judged() {
    let (records, keys) = committed();
    let dir = std::env::temp_dir().join(format!("vkae-evidence-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let app = Application::build(Settings::for_test(dir.join("store.db").to_str().unwrap()))
        .await
        .expect("server builds");
    let url = format!("http://127.0.0.1:{}/api/internal/runs", app.port());
    let state = app.state().clone();
    tokio::spawn(app.run_until(std::future::pending()));
    for (name, public) in &keys {
        store::add_lane_key(&state.db, &Actor::Cli, name, public)
            .await
            .unwrap();
    }
    let token = auth::issue_token(&state.db.writer, TokenKind::Ingest, None, "evidence test")
        .await
        .unwrap();
    // (batch, every lane passed) of each final-path record.
    let mut final_path = vec![];
    for (path, bytes, rec) in records {
        let (url, token) = (url.clone(), token.clone());
        let (status, answer) = tokio::task::spawn_blocking(move || {
            let agent: ureq::Agent = ureq::Agent::config_builder()
                .http_status_as_error(false)
                .build()
                .into();
            let mut resp = agent
                .post(&url)
                .header("Authorization", &format!("Bearer {token}"))
                .header("Content-Type", "application/json")
                .send(&bytes[..])
                .unwrap();
            let status = resp.status().as_u16();
            let answer: Value =
                serde_json::from_str(&resp.body_mut().read_to_string().unwrap()).unwrap();
            (status, answer)
        })
        .await
        .unwrap();
        assert_eq!(status, 201, "{}: {answer}", path.display());
        assert_eq!(answer["run_id"], rec.run_id.as_str());
        for lane in answer["lanes"].as_array().unwrap() {
            eprintln!("{}: {lane}", path.display());
        }
        let lane = |name: &str| {
            answer["lanes"]
                .as_array()
                .unwrap()
                .iter()
                .find(|l| l["lane"] == name)
                .unwrap()
                .clone()
        };
        assert_eq!(
            lane("artifact")["passed"],
            true,
            "{}: {answer}",
            path.display()
        );
        // Token accounting must add up; see content/evidence/README.md for the lanes these records fail and why.
        for r in lane("benchmark")["reasons"].as_array().unwrap() {
            assert!(
                !r.as_str().unwrap().contains("tokens_generated"),
                "{}: {r}",
                path.display()
            );
        }
        if rec.engine.commit.as_deref() == Some(FINAL_PATH_COMMIT) {
            assert_eq!(
                lane("quality")["passed"],
                true,
                "{}: {answer}",
                path.display()
            );
            let all_pass = ["artifact", "benchmark", "quality"]
                .iter()
                .all(|l| lane(l)["passed"] == true);
            final_path.push((rec.recipe.batch, all_pass));
        }
    }
    for batch in [1, 8, 32] {
        assert!(
            final_path.iter().any(|&(b, _)| b == batch),
            "no record of the final path {FINAL_PATH_COMMIT} at batch {batch}: {final_path:?}"
        );
    }
    assert!(
        final_path.iter().all(|&(_, ok)| ok),
        "every record of the final path {FINAL_PATH_COMMIT} passes all lanes: {final_path:?}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
