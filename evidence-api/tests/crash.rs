//! The real `vkae` binary: the CLI end to end, and a crash test that SIGKILLs the server during a burst of
//! ingests, restarts it, and finds every acknowledged record intact and `PRAGMA integrity_check` = ok.
//!
//! The binary is `$VKAE_BIN`, else `vkae` beside this test's target folder (build it first with
//! `cargo build -p vkae-site --bin vkae`; scripts/test.d/10-api.sh does).

mod common;

use common::{TempDir, LANE_KEY, OPERATOR, PASSWORD};
use serde_json::Value;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use vkae_record::RunRecord;

fn vkae_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("VKAE_BIN") {
        return PathBuf::from(p);
    }
    let exe = std::env::current_exe().unwrap();
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>/deps/<test>");
    let bin = profile_dir.join("vkae");
    assert!(
        bin.exists(),
        "the vkae binary is missing at {}: run `cargo build -p vkae-site --bin vkae` first (or set VKAE_BIN)",
        bin.display()
    );
    bin
}

fn content_dir() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../content")
        .to_str()
        .unwrap()
        .to_string()
}

/// Runs a CLI command to completion; returns (exit code, stdout, stderr).
fn vkae(db: &Path, args: &[&str], stdin: Option<&str>) -> (i32, String, String) {
    let mut cmd = Command::new(vkae_bin());
    cmd.args(args).env("RUST_LOG", "warn");
    // keygen and verify touch no database.
    if !["keygen", "verify"].contains(&args[0]) {
        cmd.arg("--database").arg(db);
    }
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("vkae runs");
    if let Some(input) = stdin {
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
    }
    drop(child.stdin.take());
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn ok(db: &Path, args: &[&str], stdin: Option<&str>) -> String {
    let (code, out, err) = vkae(db, args, stdin);
    assert_eq!(code, 0, "vkae {args:?}: {err}");
    out
}

/// Starts `vkae serve` on port 0 and reads the address it prints.
fn serve(db: &Path) -> (Child, String) {
    let mut child = Command::new(vkae_bin())
        .args([
            "serve",
            "--bind",
            "127.0.0.1:0",
            "--content",
            &content_dir(),
            "--database",
        ])
        .arg(db)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("vkae serve starts");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = line
        .trim()
        .strip_prefix("vkae: listening on http://")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_string();
    (child, addr)
}

struct Setup {
    _dir: TempDir,
    db: PathBuf,
    key: vkae_record::SigningKey,
    ingest_token: String,
    operator_token: String,
}

fn setup(tag: &str) -> Setup {
    let dir = TempDir::new(tag);
    let db = dir.0.join("data").join("vkae.db");
    ok(&db, &["migrate"], None);
    let key_file = dir.0.join("lane.key");
    let public = ok(&db, &["keygen", key_file.to_str().unwrap()], None)
        .trim()
        .to_string();
    let key = vkae_record::read_signing_key_file(&key_file).unwrap();
    assert_eq!(
        vkae_record::encode_verifying_key(&key.verifying_key()),
        public
    );
    ok(&db, &["lane-key", "add", LANE_KEY, &public], None);
    ok(
        &db,
        &["operator", "add", OPERATOR],
        Some(&format!("{PASSWORD}\n")),
    );
    let ingest_token = ok(&db, &["token", "issue"], None).trim().to_string();
    let operator_token = ok(&db, &["token", "issue", "--operator", OPERATOR], None)
        .trim()
        .to_string();
    Setup {
        _dir: dir,
        db,
        key,
        ingest_token,
        operator_token,
    }
}

#[test]
fn cli_end_to_end() {
    let s = setup("cli");
    // Usage mistakes exit 2, refusals 1.
    assert_eq!(vkae(&s.db, &["promote"], None).0, 2);
    assert_eq!(vkae(&s.db, &["frobnicate"], None).0, 2);
    let (code, _, err) = vkae(&s.db, &["operator", "add", "bob"], Some("short\n"));
    assert_eq!(code, 1);
    assert!(err.contains("password"), "{err}");

    let file = s._dir.0.join("run.json");
    let mut record = common::record("cli-run");
    record.sign(LANE_KEY, &s.key).unwrap();
    std::fs::write(&file, record.to_json_bytes()).unwrap();
    let out = ok(&s.db, &["ingest", file.to_str().unwrap()], None);
    assert!(
        out.contains("stored run cli-run")
            && out.contains("artifact=pass benchmark=pass quality=pass"),
        "{out}"
    );
    assert!(ok(&s.db, &["ingest", file.to_str().unwrap()], None).contains("already stored"));
    let unsigned = s._dir.0.join("unsigned.json");
    std::fs::write(&unsigned, common::record("u").to_json_bytes()).unwrap();
    let (code, _, err) = vkae(&s.db, &["ingest", unsigned.to_str().unwrap()], None);
    assert_eq!(code, 1);
    assert!(err.contains("unsigned"), "{err}");

    let (code, _, err) = vkae(
        &s.db,
        &[
            "promote",
            "cli-run",
            "--operator",
            OPERATOR,
            "--level",
            "best",
            "--reason",
            "r",
        ],
        None,
    );
    assert_eq!(code, 1);
    assert!(err.contains("level"), "{err}");
    let out = ok(
        &s.db,
        &[
            "promote",
            "cli-run",
            "--operator",
            OPERATOR,
            "--level",
            "optimized-showcase",
            "--reason",
            "reviewed",
        ],
        None,
    );
    assert!(out.contains("cli-run promoted by ada"), "{out}");

    // Anyone holding the record and the lane's public key can check it offline; an altered record, another
    // key or a malformed key is refused.
    let public = vkae_record::encode_verifying_key(&s.key.verifying_key());
    let out = ok(&s.db, &["verify", file.to_str().unwrap(), &public], None);
    assert!(
        out.contains("run cli-run verifies under lane key \"lab-test\"")
            && out.contains("canonical record sha256 "),
        "{out}"
    );
    let altered = s._dir.0.join("altered.json");
    let text = String::from_utf8(record.to_json_bytes()).unwrap();
    assert!(text.contains("301.2"), "the sample record's VKAE rate");
    std::fs::write(&altered, text.replacen("301.2", "401.2", 1)).unwrap();
    let (code, _, err) = vkae(&s.db, &["verify", altered.to_str().unwrap(), &public], None);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("does not verify"), "{err}");
    let other = vkae_record::encode_verifying_key(&vkae_record::keygen().1);
    let (code, _, err) = vkae(&s.db, &["verify", file.to_str().unwrap(), &other], None);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("does not verify"), "{err}");
    let (code, _, err) = vkae(
        &s.db,
        &["verify", file.to_str().unwrap(), "not-a-key"],
        None,
    );
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("public key"), "{err}");
    let out = ok(
        &s.db,
        &[
            "retract",
            "cli-run",
            "--operator",
            OPERATOR,
            "--reason",
            "superseded",
        ],
        None,
    );
    assert!(out.contains("cli-run retracted"), "{out}");

    let backup = s._dir.0.join("backup.db");
    ok(&s.db, &["backup", backup.to_str().unwrap()], None);
    let (code, _, _) = vkae(&s.db, &["backup", backup.to_str().unwrap()], None);
    assert_eq!(code, 1, "backup never overwrites");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let copy = vkae_evidence::db::Db::open(backup.to_str().unwrap())
            .await
            .unwrap();
        assert_eq!(copy.integrity_check().await.unwrap(), "ok");
        let actions: Vec<(String,)> = sqlx::query_as("SELECT action FROM audit_log ORDER BY seq")
            .fetch_all(&copy.reader)
            .await
            .unwrap();
        let actions: Vec<&str> = actions.iter().map(|a| a.0.as_str()).collect();
        assert_eq!(actions, ["lane-key-add", "ingest", "promote", "retract"]);
    });
}

#[test]
fn sigkill_during_ingest_burst_loses_no_acknowledged_record() {
    let s = setup("crash");
    let (mut server, addr) = serve(&s.db);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let acked: Arc<Mutex<Vec<(String, Value)>>> = Arc::new(Mutex::new(Vec::new()));
    let client = reqwest::Client::new();

    // Eight writers post distinct signed records as fast as they can; the server is killed mid-burst.
    let mut records = Vec::new();
    for w in 0..8 {
        let mut batch = Vec::new();
        for i in 0..400 {
            let mut r: RunRecord = common::record(&format!("crash-w{w}-{i:04}"));
            r.sign(LANE_KEY, &s.key).unwrap();
            batch.push(r);
        }
        records.push(batch);
    }
    let started = Instant::now();
    rt.block_on(async {
        let mut tasks = Vec::new();
        for batch in records {
            let (client, acked, url, token) = (
                client.clone(),
                acked.clone(),
                format!("http://{addr}/api/internal/runs"),
                s.ingest_token.clone(),
            );
            tasks.push(tokio::spawn(async move {
                for r in batch {
                    let sent = r.to_value();
                    let res = client
                        .post(&url)
                        .bearer_auth(&token)
                        .json(&sent)
                        .send()
                        .await;
                    match res {
                        Ok(resp) if resp.status() == 201 => {
                            acked.lock().unwrap().push((r.run_id.clone(), sent))
                        }
                        Ok(resp) => panic!("unexpected {}", resp.status()),
                        Err(_) => break, // the server is gone
                    }
                }
            }));
        }
        // Let the burst get going, then SIGKILL (Child::kill sends SIGKILL on Unix).
        while acked.lock().unwrap().len() < 150
            && started.elapsed() < Duration::from_secs(60)
            && !tasks.iter().all(|t| t.is_finished())
        {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        server.kill().unwrap();
        server.wait().unwrap();
        for t in tasks {
            t.await.unwrap();
        }
    });
    let acked = acked.lock().unwrap().clone();
    assert!(
        acked.len() >= 150,
        "the burst acknowledged {} records before the kill",
        acked.len()
    );
    assert!(acked.len() < 3200, "the kill landed mid-burst");

    // Restart on the same file: every acknowledged record is there, whole.
    let (mut server, addr) = serve(&s.db);
    let result = rt.block_on(async {
        let runs: Value = client
            .get(format!("http://{addr}/api/internal/runs"))
            .bearer_auth(&s.operator_token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let runs = runs["runs"].as_array().unwrap().clone();
        let db = vkae_evidence::db::Db::open(s.db.to_str().unwrap())
            .await
            .unwrap();
        let integrity = db.integrity_check().await.unwrap();
        let (verdicts,): (i64,) = sqlx::query_as("SELECT count(*) FROM lane_verdicts")
            .fetch_one(&db.reader)
            .await
            .unwrap();
        let (ingests,): (i64,) =
            sqlx::query_as("SELECT count(*) FROM audit_log WHERE action = 'ingest'")
                .fetch_one(&db.reader)
                .await
                .unwrap();
        (runs, integrity, verdicts, ingests)
    });
    server.kill().unwrap();
    server.wait().unwrap();
    let (runs, integrity, verdicts, ingests) = result;
    assert_eq!(integrity, "ok");
    for (run_id, sent) in &acked {
        let stored = runs
            .iter()
            .find(|r| r["run_id"] == run_id.as_str())
            .unwrap_or_else(|| panic!("acknowledged {run_id} lost"));
        assert_eq!(&stored["record"], sent, "{run_id} stored differently");
        assert_eq!(stored["lanes"].as_array().unwrap().len(), 3);
    }
    // Nothing half-written: every stored run (acknowledged or not) has its three verdicts and its audit entry.
    assert_eq!(verdicts as usize, runs.len() * 3);
    assert_eq!(ingests as usize, runs.len());
    assert!(runs.len() >= acked.len());
    eprintln!(
        "acknowledged {} records before SIGKILL; {} stored after restart",
        acked.len(),
        runs.len()
    );
}
