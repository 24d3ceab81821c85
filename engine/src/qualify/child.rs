//! The reference side as a long-lived child process: `engine/qualify/hf_reference.py PLAN`, in its own process
//! group. It answers one JSON command per stdin line with one `@reply {json}` line on stdout, so the harness can
//! ask for single repetitions and interleave them with the other paths'. Every answer has a time limit; past it
//! (or when the child dies) the whole process group is ended and the failure says how it ended, during which
//! step, and the child's last lines. Its `@progress` lines drive a progress bar; every other output line goes
//! to a log file.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use serde::Serialize;
use serde_json::Value;

use super::progress::Phase;

/// What the child loads (serialised to its plan file).
#[derive(Clone, Debug, Serialize)]
pub struct Plan {
    /// "eager" or "peer".
    pub mode: &'static str,
    pub model_dir: PathBuf,
    pub device: String,
    pub dtype: &'static str,
    pub attn: &'static str,
    pub prompt_ids: Vec<u32>,
    pub output_tokens: usize,
}

/// Lines the log keeps for a failure's explanation.
const TAIL_LINES: usize = 12;

/// A running child. Dropping it ends its process group.
pub struct Session {
    child: Child,
    stdin: Option<ChildStdin>,
    replies: Receiver<Value>,
    tail: Arc<Mutex<VecDeque<String>>>,
    last_step: Arc<Mutex<String>>,
    readers: Vec<JoinHandle<()>>,
    pub log: PathBuf,
    /// The answer to the load: `impl`, `device`, `load_s`.
    pub ready: Value,
    started: Instant,
}

impl Session {
    /// Starts the child and waits (at most `limit`) for its first answer, the load's.
    pub fn start(
        python: &Path,
        script: &Path,
        plan: &Plan,
        work: &Path,
        limit: Duration,
        phase: &Phase,
    ) -> Result<Session, String> {
        let plan_path = work.join(format!("{}-plan.json", plan.mode));
        let log = work.join(format!("{}-child.log", plan.mode));
        let spawned = std::fs::write(
            &plan_path,
            serde_json::to_vec(plan).map_err(|e| e.to_string())?,
        )
        .map_err(|e| format!("writing {}: {e}", plan_path.display()))
        .and_then(|_| {
            spawn(python, script, &plan_path, &log, phase).map_err(|e| format!("{e:#}"))
        })?;
        let mut session = spawned;
        match session.wait_reply(limit) {
            Ok(ready) if ready["ok"] == true => {
                session.ready = ready;
                Ok(session)
            }
            Ok(other) => Err(format!("the child answered its load with {other}")),
            Err(failure) => Err(failure),
        }
    }

    /// Sends one command and waits at most `limit` for its answer. A reply with `"ok": false` is returned as
    /// is (the child keeps serving); an error means the child is gone (ended here past the limit, or it died).
    pub fn request(&mut self, command: &Value, limit: Duration) -> Result<Value, String> {
        let sent = self
            .stdin
            .as_mut()
            .ok_or_else(|| "the child's input is closed".to_string())
            .and_then(|stdin| {
                writeln!(stdin, "{command}")
                    .and_then(|_| stdin.flush())
                    .map_err(|e| format!("writing to the child: {e}"))
            });
        match sent {
            Ok(()) => self.wait_reply(limit),
            Err(e) => Err(self.end_with(&e)),
        }
    }

    /// Asks the child to quit and waits briefly; ends its group either way. None when it quit cleanly.
    pub fn quit(mut self) -> Option<String> {
        match self.request(&serde_json::json!({"op": "quit"}), Duration::from_secs(30)) {
            Ok(_) => {
                drop(self.stdin.take());
                let deadline = Instant::now() + Duration::from_secs(30);
                while Instant::now() < deadline {
                    if let Ok(Some(status)) = self.child.try_wait() {
                        return (!status.success()).then(|| self.explain(how_it_ended(status)));
                    }
                    std::thread::sleep(Duration::from_millis(50));
                }
                Some(self.end_with("did not exit after answering quit"))
            }
            Err(failure) => Some(failure),
        }
    }

    /// Seconds since the child started.
    pub fn seconds(&self) -> f64 {
        self.started.elapsed().as_secs_f64()
    }

    fn wait_reply(&mut self, limit: Duration) -> Result<Value, String> {
        let deadline = Instant::now() + limit;
        loop {
            match self.replies.recv_timeout(Duration::from_millis(100)) {
                Ok(v) => return Ok(v),
                Err(RecvTimeoutError::Disconnected) => {
                    // stdout closed: the child is ending; take its status for the explanation.
                    return Err(self.ended());
                }
                Err(RecvTimeoutError::Timeout) if matches!(self.child.try_wait(), Ok(Some(_))) => {
                    // Dead, though a worker it left may still hold its output open.
                    return Err(self.ended());
                }
                Err(RecvTimeoutError::Timeout) if Instant::now() >= deadline => {
                    return Err(self.end_with(&format!(
                        "stopped at the harness's time limit of {} s",
                        limit.as_secs()
                    )));
                }
                Err(RecvTimeoutError::Timeout) => {}
            }
        }
    }

    /// The child has ended (or is ending): its status, its group ended, explained.
    fn ended(&mut self) -> String {
        let status = self.child.wait().ok();
        self.kill_group();
        self.join_readers();
        self.explain(status.map(how_it_ended).unwrap_or_else(|| "ended".into()))
    }

    /// Ends the child's process group and explains why.
    fn end_with(&mut self, why: &str) -> String {
        self.kill_group();
        let _ = self.child.wait();
        self.join_readers();
        self.explain(why.to_string())
    }

    fn kill_group(&self) {
        // The child leads its own process group: end exactly that group (it and any workers it started).
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.child.id())])
            .stderr(Stdio::null())
            .status();
    }

    fn join_readers(&mut self) {
        for r in self.readers.drain(..) {
            let _ = r.join();
        }
    }

    /// `how`, the step the child last reported, and its last meaningful output lines.
    fn explain(&self, how: String) -> String {
        let step = self.last_step.lock().expect("step lock").clone();
        let f = if step.is_empty() {
            how
        } else {
            format!("{how} during {step}")
        };
        let t = self.tail.lock().expect("tail lock");
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
        let mut msg = if last.is_empty() {
            f
        } else {
            format!(
                "{f}; last output: {}",
                last.into_iter().rev().collect::<Vec<_>>().join(" | ")
            )
        };
        msg.truncate(1000);
        msg
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            self.kill_group();
            let _ = self.child.wait();
        }
    }
}

fn how_it_ended(status: ExitStatus) -> String {
    if status.success() {
        return "exited 0 without answering".into();
    }
    match status.code() {
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
    }
}

fn spawn(
    python: &Path,
    script: &Path,
    plan_path: &Path,
    log_path: &Path,
    phase: &Phase,
) -> Result<Session> {
    let mut cmd = Command::new(python);
    cmd.arg(script)
        .arg(plan_path)
        .env("PYTHONUNBUFFERED", "1")
        .env("TOKENIZERS_PARALLELISM", "false")
        .env("HF_HUB_DISABLE_PROGRESS_BARS", "1")
        .stdin(Stdio::piped())
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
    let stdin = child.stdin.take();
    let stderr = child.stderr.take().expect("piped");
    let stdout = child.stdout.take().expect("piped");
    let log = Arc::new(Mutex::new(std::fs::File::create(log_path)?));
    let tail = Arc::new(Mutex::new(VecDeque::<String>::new()));
    let last_step = Arc::new(Mutex::new(String::new()));
    let keep = {
        let (log, tail) = (log.clone(), tail.clone());
        move |line: String| {
            let _ = writeln!(log.lock().expect("log lock"), "{line}");
            let mut t = tail.lock().expect("tail lock");
            t.push_back(line);
            if t.len() > TAIL_LINES {
                t.pop_front();
            }
        }
    };
    let t_err = {
        let (keep, phase, last_step) = (keep.clone(), phase.clone(), last_step.clone());
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(|l| l.ok()) {
                match line
                    .strip_prefix("@progress ")
                    .map(serde_json::from_str::<Value>)
                {
                    Some(Ok(v)) => {
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
                    _ => keep(line),
                }
            }
        })
    };
    let (tx, replies) = std::sync::mpsc::channel();
    let t_out = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(|l| l.ok()) {
            match line
                .strip_prefix("@reply ")
                .map(serde_json::from_str::<Value>)
            {
                Some(Ok(v)) => {
                    if tx.send(v).is_err() {
                        break;
                    }
                }
                _ => keep(line),
            }
        }
    });
    Ok(Session {
        child,
        stdin,
        replies,
        tail,
        last_step,
        readers: vec![t_err, t_out],
        log: log_path.to_path_buf(),
        ready: Value::Null,
        started: Instant::now(),
    })
}
