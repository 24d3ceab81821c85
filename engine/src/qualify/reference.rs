//! The reference side of a run, on the same checkpoint files: transformers eager (a long-lived child) and the
//! static-cache + CUDA-graph peer (another child, admitted only after its same-model check), or, with
//! `--baseline cpu-reference`, the engine's f32 CPU reference in this process. It also gives the quality
//! guard's reference logits.

use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use anyhow::{anyhow, bail, Result};
use serde_json::json;
use vkae_record::{Role, UnavailablePath};

use super::child::{Plan, Session};
use super::paths::{
    ChildPath, DecodePath, EnginePath, CPU_REFERENCE, HF_EAGER, HF_STATIC_CUDAGRAPH,
};
use super::plan::RunPlan;
use super::progress::Phase;
use super::quality::ReferenceLogits;
use super::settings::{BaselineKind, Settings};
use crate::{Backend, Engine};

/// Decode steps the peer's same-model check compares.
const CHECK_STEPS: usize = 16;

/// The reference path that is always measured.
pub enum Reference {
    /// transformers eager `generate` in a child.
    Eager(ChildPath),
    /// The engine's f32 CPU reference (tests, machines without Python).
    Cpu {
        path: EnginePath<'static>,
        engine: Rc<RefCell<Engine>>,
    },
}

/// The peer: measured, or why not.
pub enum Peer {
    Admitted {
        path: ChildPath,
        /// The same-model check's summary (its figures), for the path's detail.
        check: String,
    },
    Unavailable(UnavailablePath),
}

pub struct ReferenceSide {
    pub reference: Reference,
    pub peer: Option<Peer>,
}

impl Reference {
    pub fn path(&mut self) -> &mut dyn DecodePath {
        match self {
            Reference::Eager(p) => p,
            Reference::Cpu { path, .. } => path,
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            Reference::Eager(_) => HF_EAGER,
            Reference::Cpu { .. } => CPU_REFERENCE,
        }
    }

    /// What ran, for the path's detail.
    pub fn implementation(&self) -> String {
        match self {
            Reference::Eager(p) => format!(
                "{}; same checkpoint files and prompt ids; greedy, EOS cannot stop early; \
                 rate = batch x (N - 1) / (time(N new) - time(1 new))",
                p.implementation
            ),
            Reference::Cpu { .. } => "vkae-engine f32 CPU reference standing in for transformers \
                 (--baseline cpu-reference): not the declared baseline"
                .into(),
        }
    }
}

fn script_path() -> Result<PathBuf> {
    let candidates = [
        std::env::var_os("VKAE_ENGINE_DIR")
            .map(|d| PathBuf::from(d).join("qualify/hf_reference.py")),
        Some(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("qualify/hf_reference.py")),
        Some(PathBuf::from("engine/qualify/hf_reference.py")),
    ];
    candidates
        .into_iter()
        .flatten()
        .find(|p| p.exists())
        .ok_or_else(|| anyhow!("engine/qualify/hf_reference.py not found (set VKAE_ENGINE_DIR to the engine folder)"))
}

/// Loads the reference side: transformers' children (the peer checked before it is admitted), or the CPU
/// reference.
pub fn open(plan: &RunPlan, s: &Settings, work: &Path) -> Result<ReferenceSide> {
    if s.baseline == BaselineKind::CpuReference {
        let engine = Rc::new(RefCell::new(Engine::new(plan.model.clone(), Backend::Cpu)?));
        let e = engine.clone();
        let path = EnginePath::new(
            CPU_REFERENCE,
            Box::new(move |r| e.borrow_mut().generate(r)),
            &plan.prompt,
            s.output_tokens,
        );
        return Ok(ReferenceSide {
            reference: Reference::Cpu { path, engine },
            peer: None,
        });
    }
    let dir = plan
        .model_dir
        .clone()
        .expect("transformers needs a checkpoint folder");
    let script = script_path()?;
    let child_plan = |mode| Plan {
        mode,
        model_dir: dir.clone(),
        device: match s.backend {
            Backend::Cpu => "cpu".into(),
            Backend::Cuda | Backend::Vkae => "cuda".into(),
        },
        dtype: "bfloat16",
        attn: "sdpa",
        prompt_ids: plan.prompt.clone(),
        output_tokens: s.output_tokens,
    };
    let phase = Phase::start("transformers eager", 1, s.progress_bars);
    let eager = Session::start(
        &s.python,
        &script,
        &child_plan("eager"),
        work,
        s.baseline_time_limit,
        &phase,
    )
    .map_err(|f| {
        anyhow!(
            "the transformers baseline failed to load ({f}); its log: {}",
            work.join("eager-child.log").display()
        )
    })?;
    let eager = ChildPath::new(HF_EAGER, eager, s.baseline_time_limit);
    phase.finish(&eager.implementation);
    let peer = s.peer_time_limit.map(|limit| {
        let phase = Phase::start("cuda-graph peer", 1, s.progress_bars);
        let peer = open_peer(&s.python, &script, &child_plan("peer"), work, limit, &phase);
        phase.finish(&match &peer {
            Peer::Admitted { check, .. } => format!("admitted: {check}"),
            Peer::Unavailable(u) => format!("unavailable: {}", u.reason),
        });
        peer
    });
    let peer = Some(peer.unwrap_or_else(|| {
        Peer::Unavailable(UnavailablePath {
            name: HF_STATIC_CUDAGRAPH.into(),
            role: Role::Baseline,
            reason: "not attempted in this run (--peer-time-limit 0)".into(),
        })
    }));
    Ok(ReferenceSide {
        reference: Reference::Eager(eager),
        peer,
    })
}

/// Starts the peer child and runs its same-model check; a peer that fails either is unavailable, with why.
pub fn open_peer(
    python: &Path,
    script: &Path,
    plan: &Plan,
    work: &Path,
    limit: std::time::Duration,
    phase: &Phase,
) -> Peer {
    let unavailable = |reason: String| {
        let mut reason =
            format!("transformers static cache + torch.cuda.graph decode step: {reason}");
        reason.truncate(1000);
        Peer::Unavailable(UnavailablePath {
            name: HF_STATIC_CUDAGRAPH.into(),
            role: Role::Baseline,
            reason,
        })
    };
    let session = match Session::start(python, script, plan, work, limit, phase) {
        Ok(s) => s,
        Err(f) => return unavailable(format!("failed to load: {f}")),
    };
    let mut path = ChildPath::new(HF_STATIC_CUDAGRAPH, session, limit);
    match path.ask(json!({"op": "check", "steps": CHECK_STEPS})) {
        Ok(c) if c["accepted"] == true => Peer::Admitted {
            check: format!(
                "same-model check passed at batch 1: {}",
                c["summary"].as_str().unwrap_or("")
            ),
            path,
        },
        Ok(c) => unavailable(format!(
            "refused: it does not compute what transformers eager computes ({})",
            c["summary"].as_str().unwrap_or("no figures")
        )),
        Err(e) => unavailable(format!("the same-model check failed: {e:#}")),
    }
}

impl ReferenceSide {
    /// The reference logits of the quality stream: transformers' BF16 forward (and, with `f32`, the same weights
    /// in float32), written by the eager child; or the CPU reference's, in memory.
    pub fn quality_logits(
        &mut self,
        q_ids: &[u32],
        vocab: usize,
        f32: bool,
        work: &Path,
    ) -> Result<(ReferenceLogits, String)> {
        match &mut self.reference {
            Reference::Cpu { engine, .. } => Ok((
                ReferenceLogits::Memory(engine.borrow_mut().prefill_logits(q_ids)?),
                "vkae-engine f32 CPU reference".into(),
            )),
            Reference::Eager(eager) => {
                let logits = work.join("reference-logits.f32");
                let f32_logits = f32.then(|| work.join("reference-f32-logits.f32"));
                let q = eager.ask(json!({"op": "quality", "ids": q_ids, "logits": logits, "f32_logits": f32_logits}))?;
                let (rows, cols) = (
                    q["rows"].as_u64().unwrap_or(0) as usize,
                    q["vocab"].as_u64().unwrap_or(0) as usize,
                );
                if rows != q_ids.len() || cols != vocab {
                    bail!(
                        "the reference logits are {rows} x {cols}, expected {} x {vocab}",
                        q_ids.len()
                    );
                }
                let f32_path = f32_logits.filter(|_| q.get("f32").is_some_and(|v| !v.is_null()));
                Ok((
                    ReferenceLogits::File {
                        path: logits,
                        f32_path,
                    },
                    eager.implementation.clone(),
                ))
            }
        }
    }

    /// Ends the children; the answer lists each child's log and how it ended (None: it quit cleanly).
    pub fn close(self) -> Vec<serde_json::Value> {
        let mut children = vec![];
        let mut end = |name: &str, p: ChildPath| {
            let (log, seconds) = (p.session.log.clone(), p.session.seconds());
            let failure = p.session.quit();
            children
                .push(json!({"child": name, "seconds": seconds, "log": log, "failure": failure}));
        };
        if let Reference::Eager(p) = self.reference {
            end("eager", p);
        }
        if let Some(Peer::Admitted { path, .. }) = self.peer {
            end("peer", path);
        }
        children
    }
}
