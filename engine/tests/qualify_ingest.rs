//! `vkae-engine qualify` end to end on the CPU: a tiny fixture checkpoint, the engine's CPU reference standing
//! in for transformers, the signed record POSTed by the binary itself to a real evidence store (port 0, a fresh
//! SQLite file, the repository's content), the lanes it was judged with, and a tampered copy refused.

mod common;
use common::TempDir;
use std::path::PathBuf;
use std::process::Command;

use serde_json::Value;
use vkae_evidence::auth::{self, TokenKind};
use vkae_evidence::store::{self, Actor};
use vkae_evidence::{Application, Settings};
use vkae_record::RunRecord;

const LANE: &str = "cpu-test-lane";

fn post(url: &str, token: &str, body: &[u8]) -> (u16, Value) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let mut resp = agent
        .post(&format!("{url}/api/internal/runs"))
        .header("Authorization", &format!("Bearer {token}"))
        .header("Content-Type", "application/json")
        .send(body)
        .unwrap();
    let status = resp.status().as_u16();
    let text = resp.body_mut().read_to_string().unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

fn lane<'a>(answer: &'a Value, name: &str) -> &'a Value {
    answer["lanes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["lane"] == name)
        .unwrap_or_else(|| panic!("no {name} lane in {answer}"))
}

fn reasons(l: &Value) -> Vec<String> {
    l["reasons"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_str().unwrap().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn qualify_on_cpu_ingests_into_a_real_store_and_a_tampered_copy_is_refused() {
    let dir = TempDir::new("qualify-ingest");
    let app = Application::build(Settings::for_test(dir.0.join("store.db").to_str().unwrap()))
        .await
        .expect("server builds");
    let url = format!("http://127.0.0.1:{}", app.port());
    let state = app.state().clone();
    tokio::spawn(app.run_until(std::future::pending()));

    // The lane key comes from the binary's own keygen; its printed public key is what the store registers.
    let bin = env!("CARGO_BIN_EXE_vkae-engine");
    let key_file = dir.0.join(format!("{LANE}.key"));
    let out = Command::new(bin)
        .args(["keygen", "--out"])
        .arg(&key_file)
        .output()
        .unwrap();
    let public = common::stdout_of(&out).trim().to_string();
    assert_eq!(
        std::fs::read_to_string(dir.0.join(format!("{LANE}.key.pub")))
            .unwrap()
            .trim(),
        public
    );
    // keygen never overwrites a key.
    assert!(!Command::new(bin)
        .args(["keygen", "--out"])
        .arg(&key_file)
        .output()
        .unwrap()
        .status
        .success());
    store::add_lane_key(&state.db, &Actor::Cli, LANE, &public)
        .await
        .unwrap();
    let token = auth::issue_token(&state.db.writer, TokenKind::Ingest, None, "qualify test")
        .await
        .unwrap();

    let fixture = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures/e_style");
    let record_path = dir.0.join("run-b{batch}.json");
    let report_path = dir.0.join("report.json");
    let (batch, output, reps) = (2usize, 6usize, 3usize);
    let args: Vec<String> = vec![
        "qualify".into(),
        "--model".into(),
        fixture.display().to_string(),
        "--family".into(),
        "E4B".into(),
        "--baseline".into(),
        "cpu-reference".into(),
        "--device".into(),
        "cpu".into(),
        "--batch".into(),
        batch.to_string(),
        "--prompt-tokens".into(),
        "12".into(),
        "--output-tokens".into(),
        output.to_string(),
        "--reps".into(),
        reps.to_string(),
        "--quality-tokens".into(),
        "256".into(),
        "--lane-key".into(),
        key_file.display().to_string(),
        "--out".into(),
        record_path.display().to_string(),
        "--report".into(),
        report_path.display().to_string(),
        "--ingest".into(),
        url.clone(),
        "--token".into(),
        token.clone(),
        "--no-progress".into(),
    ];
    let out = tokio::task::spawn_blocking(move || Command::new(bin).args(&args).output().unwrap())
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "qualify failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("ingested qualify-e4b-"), "{stdout}");

    // The record on disk: strict parse, the lane's signature, the CPU stand-in named as such, tokens counted.
    let bytes = std::fs::read(dir.0.join(format!("run-b{batch}.json"))).unwrap();
    let record = RunRecord::parse(&bytes).unwrap();
    record
        .verify(&vkae_record::decode_verifying_key(&public).unwrap())
        .unwrap();
    assert_eq!(record.lane_key, LANE);
    assert_eq!(
        (record.recipe.batch, record.recipe.output_tokens),
        (batch as u32, output as u32)
    );
    let names: Vec<&str> = record.paths.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["cpu-reference", "vkae", "vkae-engine-generic"]);
    for p in &record.paths {
        assert_eq!(p.tokens_per_s.len(), reps, "{}", p.name);
        assert_eq!(
            p.tokens_generated,
            (batch * output * reps) as u64,
            "{}",
            p.name
        );
    }
    assert!(
        record.model.weights.starts_with("sha256:"),
        "{}",
        record.model.weights
    );
    assert_eq!(record.quality.tokens, 256);
    assert!(
        record.hardware.gpu.starts_with("CPU only"),
        "{}",
        record.hardware.gpu
    );
    // No GPU kernel ran on the CPU: no digest is claimed.
    assert_eq!(record.engine.kernels_sha256, None);
    assert!(record.engine.kernels.is_empty());

    // The lanes the store judged it with (a re-send is idempotent and answers them again).
    let (status, answer) = post(&url, &token, &bytes);
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["created"], false);
    assert_eq!(answer["run_id"], record.run_id.as_str());
    let artifact = lane(&answer, "artifact");
    assert_eq!(artifact["passed"], false, "{answer}");
    // The commit comes from git where the checkout has one and its tracked files are unmodified (CI's clone);
    // a tarball, or a checkout with edits, names none, and says so.
    let git = |args: &[&str]| {
        Command::new("git")
            .args(["-C", env!("CARGO_MANIFEST_DIR")])
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    let clean =
        git(&["status", "--porcelain", "--untracked-files=no"]).is_some_and(|s| s.is_empty());
    let head = git(&["rev-parse", "HEAD"]).filter(|_| clean);
    assert_eq!(record.engine.commit, head);
    let mut expected = vec!["engine.kernels_sha256 is missing"];
    if head.is_none() {
        expected.insert(0, "engine.commit is missing");
    }
    assert_eq!(
        reasons(artifact),
        expected,
        "the only artifact failures: the absent GPU kernel digest (and a commit where there is no git)"
    );
    // Token accounting adds up; only the timing spread (a shared 2-core machine) and the CPU stand-in not being
    // the profile's declared baseline may fail this lane.
    let bench = lane(&answer, "benchmark");
    if bench["passed"] == false {
        for r in reasons(bench) {
            assert!(
                r.contains("spread")
                    || r.starts_with(
                        "baseline path cpu-reference is not the E4B profile's declared baseline"
                    ),
                "unexpected benchmark failure: {r}"
            );
        }
    }
    // The CPU stand-in against the same CPU code: identical distributions.
    let quality = lane(&answer, "quality");
    assert_eq!(quality["passed"], true, "{answer}");
    assert_eq!(record.quality.top1_agreement, 1.0);
    assert_eq!(record.quality.reference_ppl, record.quality.vkae_ppl);

    // A tampered copy: one rate doubled. Refused as a bad signature, and nothing new is stored.
    let mut v: Value = serde_json::from_slice(&bytes).unwrap();
    let rate = v["paths"][1]["tokens_per_s"][0].as_f64().unwrap();
    v["paths"][1]["tokens_per_s"][0] = serde_json::json!(rate * 2.0);
    v["run_id"] = Value::String(format!("{}-x", record.run_id));
    let (status, refused) = post(&url, &token, serde_json::to_vec(&v).unwrap().as_slice());
    assert_eq!(status, 422, "{refused}");
    assert_eq!(refused["error"]["code"], "bad_signature", "{refused}");
    let runs = store::list_runs(&state.db, &state.content, None)
        .await
        .unwrap();
    assert_eq!(runs.len(), 1, "only the genuine record is stored");

    // The report holds the quality figures and the record's path.
    let report: Value = serde_json::from_slice(&std::fs::read(&report_path).unwrap()).unwrap();
    assert_eq!(report["quality"]["record"]["tokens"], 256);
    assert_eq!(report["records"][0]["run_id"], record.run_id.as_str());
}
