//! The long-lived reference child on real Python processes: a crash, a hang past the time limit (its whole
//! process group ended, workers included), answers kept before a failure, a clean quit. What the record would
//! say under `unavailable_paths` comes from these failure texts.

mod common;
use common::TempDir;
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::json;
use vkae_engine::qualify::child::{Plan, Session};
use vkae_engine::qualify::progress::Phase;

fn plan(dir: &Path) -> Plan {
    Plan {
        mode: "peer",
        model_dir: dir.to_path_buf(),
        device: "cpu".into(),
        dtype: "bfloat16",
        attn: "sdpa",
        prompt_ids: vec![2, 5, 7],
        output_tokens: 4,
    }
}

fn start(dir: &Path, body: &str, limit: Duration) -> Result<Session, String> {
    let script = dir.join("child.py");
    std::fs::write(&script, format!("{HEADER}\n{body}")).unwrap();
    let phase = Phase::start("child test", 1, false);
    Session::start(
        Path::new("python3"),
        &script,
        &plan(dir),
        dir,
        limit,
        &phase,
    )
}

/// A child that answered its load, with a minute's limit.
fn serving(dir: &Path, body: &str) -> Session {
    start(dir, body, Duration::from_secs(60)).expect("the child loads")
}

/// One repetition at `batch`, with a minute's limit.
fn rep(s: &mut Session, batch: u32) -> Result<serde_json::Value, String> {
    s.request(
        &json!({"op": "rep", "batch": batch}),
        Duration::from_secs(60),
    )
}

/// The child side of the protocol: the plan read, the load answered, commands read one a line.
const HEADER: &str = r#"
import json, os, sys, time, signal, subprocess
plan = json.load(open(sys.argv[1]))
assert plan["mode"] == "peer" and plan["prompt_ids"] == [2, 5, 7], plan
def reply(v):
    print("@reply " + json.dumps(v), flush=True)
def commands():
    for line in sys.stdin:
        yield json.loads(line)
"#;

const READY: &str = "reply({'ok': True, 'ready': True, 'impl': 'test peer'})";

#[test]
fn a_crash_is_reported_with_its_signal_and_last_words() {
    let dir = TempDir::new("child-crash");
    let mut s = serving(
        &dir.0,
        &format!(
            "{READY}\nfor c in commands():\n    print('@progress {{\"phase\": \"peer batch 1\", \"done\": 0, \"total\": 4}}', file=sys.stderr)\n    print('capturing the decode step', file=sys.stderr, flush=True)\n    print('/x/graphs.py:322: UserWarning: TensorFloat32 tensor cores', file=sys.stderr)\n    print('  warnings.warn(', file=sys.stderr, flush=True)\n    os.kill(os.getpid(), signal.SIGSEGV)\n"
        ),
    );
    let f = rep(&mut s, 1).expect_err("a crash is a failure");
    assert!(f.contains("signal 11 (segmentation fault)"), "{f}");
    assert!(f.contains("capturing the decode step"), "{f}");
    assert!(f.contains("during peer batch 1 (0/4 done)"), "{f}");
    assert!(
        !f.contains("@progress"),
        "progress lines are not output: {f}"
    );
    // A crash while loading fails the start, with the same explanation.
    let f = start(&dir.0, "print('CUDA error: no kernel image', file=sys.stderr, flush=True)\nos.kill(os.getpid(), signal.SIGSEGV)\n", Duration::from_secs(60))
        .err()
        .expect("no load answer");
    assert!(
        f.contains("signal 11") && f.contains("no kernel image"),
        "{f}"
    );
}

#[test]
fn a_hang_is_stopped_at_the_limit_with_its_workers() {
    let dir = TempDir::new("child-hang");
    let pid_file = dir.0.join("worker.pid");
    let mut s = serving(
        &dir.0,
        &format!(
            "{READY}\nfor c in commands():\n    w = subprocess.Popen(['sleep', '60'])\n    open({:?}, 'w').write(str(w.pid))\n    time.sleep(60)\n",
            pid_file.display().to_string()
        ),
    );
    let started = Instant::now();
    let f = s
        .request(&json!({"op": "rep", "batch": 1}), Duration::from_secs(2))
        .expect_err("a hang is a failure");
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "{:?}",
        started.elapsed()
    );
    assert!(f.contains("time limit of 2 s"), "{f}");
    let worker: i32 = std::fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    // The worker was in the child's process group: it is gone too (give the kernel a moment to reap it).
    let mut alive = true;
    for _ in 0..50 {
        let status = std::fs::read_to_string(format!("/proc/{worker}/stat")).unwrap_or_default();
        // Gone, or a zombie waiting for its (killed) parent's reaper.
        if status.is_empty() || status.split_whitespace().nth(2) == Some("Z") {
            alive = false;
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(!alive, "worker {worker} outlived the time limit");
}

#[test]
fn answers_before_a_failure_are_kept_and_the_failure_named() {
    let dir = TempDir::new("child-partial");
    let mut s = serving(
        &dir.0,
        &format!(
            "{READY}\nfor i, c in enumerate(commands()):\n    if i == 0:\n        reply({{'ok': True, 'rate': 10.0, 'tokens_generated': 12, 'seq0': [1, 2, 3, 4]}})\n    else:\n        print('RuntimeError: out of memory at batch 8', file=sys.stderr, flush=True)\n        sys.exit(3)\n"
        ),
    );
    assert_eq!(s.ready["impl"], "test peer");
    let first = rep(&mut s, 1).unwrap();
    assert_eq!(first["tokens_generated"], 12);
    let f = rep(&mut s, 8).expect_err("exit 3 is a failure");
    assert!(
        f.contains("exited with status 3") && f.contains("out of memory at batch 8"),
        "{f}"
    );
}

#[test]
fn a_clean_quit_has_no_failure_and_a_silent_exit_does() {
    let dir = TempDir::new("child-ok");
    let s = serving(
        &dir.0,
        &format!("{READY}\nfor c in commands():\n    reply({{'ok': True}})\n    if c['op'] == 'quit':\n        break\n"),
    );
    assert_eq!(s.quit(), None);
    let mut s = serving(&dir.0, &format!("{READY}\nsys.stdin.readline()\n"));
    let f = rep(&mut s, 1).expect_err("no answer");
    assert!(f.contains("without answering"), "{f}");
    // A refused command is an answer, not a failure: the child keeps serving.
    let mut s = serving(
        &dir.0,
        &format!("{READY}\nfor c in commands():\n    reply({{'ok': False, 'error': 'unknown command'}})\n"),
    );
    for _ in 0..2 {
        let a = s
            .request(&json!({"op": "nope"}), Duration::from_secs(60))
            .unwrap();
        assert_eq!(a["error"], "unknown command");
    }
}

/// The peer is admitted only by its same-model check: a check that passes admits it with its figures, one that
/// finds another computation (or fails) leaves it unavailable with the reason, never with a number.
#[test]
fn the_peer_is_admitted_only_by_its_same_model_check() {
    use vkae_engine::qualify::reference::{open_peer, Peer};
    let dir = TempDir::new("child-peer");
    let script = dir.0.join("peer.py");
    let check = |accepted: bool| {
        let body = format!(
            "{READY}\nfor c in commands():\n    if c['op'] == 'check':\n        reply({{'ok': True, 'accepted': {}, 'summary': 'relative error 4.1e-01 (limit 6.3e-02)'}})\n    else:\n        reply({{'ok': True}})\n",
            if accepted { "True" } else { "False" }
        );
        std::fs::write(&script, format!("{HEADER}\n{body}")).unwrap();
        let phase = Phase::start("peer test", 1, false);
        open_peer(
            Path::new("python3"),
            &script,
            &plan(&dir.0),
            &dir.0,
            Duration::from_secs(60),
            &phase,
        )
    };
    match check(true) {
        Peer::Admitted { check, path } => {
            assert!(
                check.contains("same-model check passed") && check.contains("4.1e-01"),
                "{check}"
            );
            assert_eq!(path.implementation, "test peer");
        }
        Peer::Unavailable(u) => panic!("a passing check was refused: {}", u.reason),
    }
    match check(false) {
        Peer::Unavailable(u) => {
            assert_eq!(u.name, "hf-transformers-static-cudagraph");
            assert_eq!(u.role, vkae_record::Role::Baseline);
            assert!(
                u.reason
                    .contains("refused: it does not compute what transformers eager computes")
                    && u.reason.contains("limit 6.3e-02"),
                "{}",
                u.reason
            );
        }
        Peer::Admitted { .. } => panic!("a failing check admitted the peer"),
    }
    // A peer whose check itself fails (here: the child dies) is unavailable, saying how it ended.
    std::fs::write(
        &script,
        format!("{HEADER}\n{READY}\nsys.stdin.readline()\nsys.exit(5)\n"),
    )
    .unwrap();
    let phase = Phase::start("peer test", 1, false);
    match open_peer(
        Path::new("python3"),
        &script,
        &plan(&dir.0),
        &dir.0,
        Duration::from_secs(60),
        &phase,
    ) {
        Peer::Unavailable(u) => assert!(
            u.reason.contains("the same-model check failed")
                && u.reason.contains("exited with status 5"),
            "{}",
            u.reason
        ),
        Peer::Admitted { .. } => panic!("a dead peer was admitted"),
    }
}
