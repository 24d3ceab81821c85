//! The reference side as a child process: `engine/qualify/hf_reference.py PLAN RESULT`, in its own process
//! group with a time limit. Its `@progress` lines drive a progress bar; every other stderr line goes to a log
//! file, and the last of them explain a failure.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use super::progress::Phase;

/// What the harness asks the reference child to do (serialised to the plan file).
#[derive(Clone, Debug, Serialize)]
pub struct Plan {
    /// "baseline" or "peer".
    pub mode: &'static str,
    pub model_dir: PathBuf,
    pub device: String,
    pub dtype: &'static str,
    pub attn: &'static str,
    pub prompt_ids: Vec<u32>,
    pub output_tokens: usize,
    pub batches: Vec<usize>,
    pub reps: usize,
    pub warmup: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub quality: Option<QualityPlan>,
}

#[derive(Clone, Debug, Serialize)]
pub struct QualityPlan {
    pub ids: Vec<u32>,
    pub logits: PathBuf,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub f32_logits: Option<PathBuf>,
}

/// What the child wrote (possibly partial when it failed).
#[derive(Clone, Debug, Default, Deserialize)]
pub struct ChildResult {
    #[serde(default)]
    pub impl_: Option<String>,
    #[serde(default)]
    pub device: Option<String>,
    #[serde(default)]
    pub batches: Vec<BatchResult>,
    #[serde(default)]
    pub quality: Option<QualityResult>,
    #[serde(default)]
    pub finished: bool,
}

#[derive(Clone, Debug, Deserialize)]
pub struct BatchResult {
    pub batch: usize,
    pub tokens_per_s: Vec<f64>,
    pub tokens_generated: u64,
    pub seq0_tokens: Option<Vec<u32>>,
    /// Repetitions measured again because time(N new) <= time(1 new).
    #[serde(default)]
    pub discarded_repetitions: u32,
    /// Warm-up repetitions run before the timed ones (the plan's count, then more until two in a row agreed and
    /// a minimum time had passed).
    #[serde(default)]
    pub warmup_repetitions: u32,
    /// The warm-up repetitions' rates (tokens/s; None where time(N new) <= time(1 new)), kept for the side
    /// report.
    #[serde(default)]
    pub warmup_tokens_per_s: Vec<Option<f64>>,
}

#[derive(Clone, Debug, Deserialize)]
pub struct QualityResult {
    pub rows: usize,
    pub vocab: usize,
    pub seconds: f64,
    #[serde(default)]
    pub f32: Option<Box<QualityResult>>,
}

/// How the child ended.
#[derive(Clone, Debug)]
pub struct ChildOutcome {
    pub result: ChildResult,
    /// None when it exited 0; else why not (exit status or signal, time limit, and its last stderr lines).
    pub failure: Option<String>,
    pub seconds: f64,
    pub log: PathBuf,
}

fn parse_result(path: &Path) -> Option<ChildResult> {
    let text = std::fs::read_to_string(path).ok()?;
    let mut v: serde_json::Value = serde_json::from_str(&text).ok()?;
    // `impl` is a Rust keyword: rename before deserialising.
    if let Some(i) = v.get("impl").cloned() {
        v["impl_"] = i;
    }
    serde_json::from_value(v).ok()
}

/// Runs the child to completion or until `limit`, then kills its whole process group (torch.compile starts
/// worker processes of its own).
pub fn run(
    python: &Path,
    script: &Path,
    plan: &Plan,
    work: &Path,
    limit: Duration,
    phase: &Phase,
) -> Result<ChildOutcome> {
    let plan_path = work.join(format!("{}-plan.json", plan.mode));
    let result_path = work.join(format!("{}-result.json", plan.mode));
    let log_path = work.join(format!("{}-child.log", plan.mode));
    let _ = std::fs::remove_file(&result_path);
    std::fs::write(&plan_path, serde_json::to_vec(plan)?)?;
    let started = Instant::now();
    let mut cmd = Command::new(python);
    cmd.arg(script)
        .arg(&plan_path)
        .arg(&result_path)
        .env("PYTHONUNBUFFERED", "1")
        .env("TOKENIZERS_PARALLELISM", "false")
        .env("HF_HUB_DISABLE_PROGRESS_BARS", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    #[cfg(unix)]
    {
        use std::os::unix::process::CommandExt as _;
        cmd.process_group(0);
    }
    let mut child = cmd
        .spawn()
        .with_context(|| format!("starting {} {}", python.display(), script.display()))?;
    let pid = child.id();
    let stderr = child.stderr.take().expect("piped");
    let stdout = child.stdout.take().expect("piped");
    let log = std::fs::File::create(&log_path)?;
    let tail = std::sync::Arc::new(std::sync::Mutex::new(VecDeque::<String>::new()));
    // The child's last progress report: where it was when it failed.
    let last_step = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let readers = {
        let (tail, log2, phase) = (tail.clone(), log.try_clone()?, phase.clone());
        let last_step = last_step.clone();
        let out_log = log;
        let t_err = std::thread::spawn(move || {
            use std::io::Write as _;
            let mut log = log2;
            for line in BufReader::new(stderr).lines().map_while(|l| l.ok()) {
                if let Some(p) = line.strip_prefix("@progress ") {
                    if let Ok(v) = serde_json::from_str::<serde_json::Value>(p) {
                        *last_step.lock().expect("step lock") = format!(
                            "{} ({}/{} done)",
                            v["phase"].as_str().unwrap_or(""),
                            v["done"],
                            v["total"]
                        );
                        phase.child_progress(
                            v["phase"].as_str().unwrap_or(""),
                            v["done"].as_u64().unwrap_or(0),
                            v["total"].as_u64().unwrap_or(0),
                        );
                    }
                    continue;
                }
                let _ = writeln!(log, "{line}");
                let mut t = tail.lock().expect("tail lock");
                t.push_back(line);
                if t.len() > 12 {
                    t.pop_front();
                }
            }
        });
        let t_out = std::thread::spawn(move || {
            use std::io::Write as _;
            let mut log = out_log;
            for line in BufReader::new(stdout).lines().map_while(|l| l.ok()) {
                let _ = writeln!(log, "{line}");
            }
        });
        [t_err, t_out]
    };
    let mut timed_out = false;
    let status = loop {
        if let Some(s) = child.try_wait()? {
            break s;
        }
        if started.elapsed() > limit {
            timed_out = true;
            // The child leads its own process group: end exactly that group (it and its workers).
            let _ = Command::new("kill")
                .args(["-KILL", "--", &format!("-{pid}")])
                .status();
            break child.wait()?;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    // Leftover workers of the child (its process group) would hold its output pipes open: end them too.
    let _ = Command::new("kill")
        .args(["-KILL", "--", &format!("-{pid}")])
        .stderr(Stdio::null())
        .status();
    for r in readers {
        let _ = r.join();
    }
    let seconds = started.elapsed().as_secs_f64();
    let result = parse_result(&result_path).unwrap_or_default();
    let failure = if timed_out {
        Some(format!(
            "stopped at the harness's time limit of {} s",
            limit.as_secs()
        ))
    } else if !status.success() {
        let how = match status.code() {
            Some(c) => format!("exited with status {c}"),
            None => {
                #[cfg(unix)]
                {
                    use std::os::unix::process::ExitStatusExt as _;
                    match status.signal() {
                        Some(11) => "killed by signal 11 (segmentation fault)".to_string(),
                        Some(s) => format!("killed by signal {s}"),
                        None => "ended abnormally".to_string(),
                    }
                }
                #[cfg(not(unix))]
                "ended abnormally".to_string()
            }
        };
        Some(how)
    } else if !result.finished {
        Some("exited 0 without finishing its result file".to_string())
    } else {
        None
    };
    let failure = failure.map(|f| {
        let step = last_step.lock().expect("step lock").clone();
        let f = if step.is_empty() {
            f
        } else {
            format!("{f} during {step}")
        };
        let t = tail.lock().expect("tail lock");
        let last: Vec<&str> = t
            .iter()
            .rev()
            // Blank lines, progress bars and Python warnings explain nothing.
            .filter(|l| {
                let l = l.trim();
                !l.is_empty()
                    && !l.contains("it/s]")
                    && !l.contains('\r')
                    && !l.contains("Warning:")
                    && l != "warnings.warn("
            })
            .take(2)
            .map(|s| s.trim())
            .collect();
        if last.is_empty() {
            f
        } else {
            let mut msg = format!(
                "{f}; last output: {}",
                last.into_iter().rev().collect::<Vec<_>>().join(" | ")
            );
            msg.truncate(1000);
            msg
        }
    });
    Ok(ChildOutcome {
        result,
        failure,
        seconds,
        log: log_path,
    })
}
