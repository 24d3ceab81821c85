//! The reference child process runner on real Python processes: a crash, a hang past the time limit (its
//! whole process group ended, workers included), a partial result, a clean finish. What the record would say
//! under `unavailable_paths` comes from these failure texts.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use vkae_engine::qualify::child::{self, Plan};
use vkae_engine::qualify::progress::Phase;

struct TempDir(PathBuf);
impl TempDir {
    fn new(tag: &str) -> TempDir {
        let d = std::env::temp_dir().join(format!(
            "vkae-{tag}-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        ));
        std::fs::create_dir_all(&d).unwrap();
        TempDir(d)
    }
}
impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn plan(dir: &Path) -> Plan {
    Plan {
        mode: "peer",
        model_dir: dir.to_path_buf(),
        device: "cpu".into(),
        dtype: "bfloat16",
        attn: "sdpa",
        prompt_ids: vec![2, 5, 7],
        output_tokens: 4,
        batches: vec![1, 8],
        reps: 3,
        warmup: 1,
        quality: None,
    }
}

fn run_script(dir: &Path, body: &str, limit: Duration) -> child::ChildOutcome {
    let script = dir.join("child.py");
    std::fs::write(&script, body).unwrap();
    let phase = Phase::start("child test", 1, false);
    child::run(
        Path::new("python3"),
        &script,
        &plan(dir),
        dir,
        limit,
        &phase,
    )
    .unwrap()
}

const HEADER: &str = r#"
import json, os, sys, time, signal, subprocess
plan = json.load(open(sys.argv[1]))
assert plan["mode"] == "peer" and plan["batches"] == [1, 8], plan
def write(result):
    json.dump(result, open(sys.argv[2], "w"))
"#;

#[test]
fn a_crash_is_reported_with_its_signal_and_last_words() {
    let dir = TempDir::new("child-crash");
    let out = run_script(
        &dir.0,
        &format!(
            "{HEADER}\nprint('@progress {{\"phase\": \"peer batch 1\", \"done\": 0, \"total\": 4}}', file=sys.stderr)\nprint('compiling the decode step', file=sys.stderr, flush=True)\nprint('/x/compile_fx.py:322: UserWarning: TensorFloat32 tensor cores', file=sys.stderr)\nprint('  warnings.warn(', file=sys.stderr, flush=True)\nos.kill(os.getpid(), signal.SIGSEGV)\n"
        ),
        Duration::from_secs(60),
    );
    let f = out.failure.expect("a crash is a failure");
    assert!(f.contains("signal 11 (segmentation fault)"), "{f}");
    assert!(f.contains("compiling the decode step"), "{f}");
    assert!(f.contains("during peer batch 1 (0/4 done)"), "{f}");
    assert!(
        !f.contains("@progress"),
        "progress lines are not output: {f}"
    );
    assert!(out.result.batches.is_empty());
}

#[test]
fn a_hang_is_stopped_at_the_limit_with_its_workers() {
    let dir = TempDir::new("child-hang");
    let pid_file = dir.0.join("worker.pid");
    let started = Instant::now();
    let out = run_script(
        &dir.0,
        &format!(
            "{HEADER}\nw = subprocess.Popen(['sleep', '60'])\nopen({:?}, 'w').write(str(w.pid))\ntime.sleep(60)\n",
            pid_file.display().to_string()
        ),
        Duration::from_secs(2),
    );
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "{:?}",
        started.elapsed()
    );
    let f = out.failure.expect("a hang is a failure");
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
fn a_partial_result_is_kept_and_the_failure_named() {
    let dir = TempDir::new("child-partial");
    let out = run_script(
        &dir.0,
        &format!(
            "{HEADER}\nwrite({{'impl': 'test peer', 'batches': [{{'batch': 1, 'tokens_per_s': [10.0, 11.0, 12.0], 'tokens_generated': 12, 'seq0_tokens': [1, 2, 3, 4]}}]}})\nprint('RuntimeError: out of memory at batch 8', file=sys.stderr)\nsys.exit(3)\n"
        ),
        Duration::from_secs(60),
    );
    let f = out.failure.expect("exit 3 is a failure");
    assert!(
        f.contains("exited with status 3") && f.contains("out of memory at batch 8"),
        "{f}"
    );
    assert_eq!(out.result.batches.len(), 1);
    assert_eq!(out.result.batches[0].tokens_generated, 12);
    assert_eq!(out.result.impl_.as_deref(), Some("test peer"));
}

#[test]
fn a_clean_finish_has_no_failure_and_an_unfinished_one_does() {
    let dir = TempDir::new("child-ok");
    let out = run_script(
        &dir.0,
        &format!("{HEADER}\nwrite({{'impl': 'x', 'batches': [], 'finished': True}})\n"),
        Duration::from_secs(60),
    );
    assert!(out.failure.is_none(), "{:?}", out.failure);
    let out = run_script(
        &dir.0,
        &format!("{HEADER}\nwrite({{'impl': 'x', 'batches': []}})\n"),
        Duration::from_secs(60),
    );
    assert!(out.failure.unwrap().contains("without finishing"));
}
