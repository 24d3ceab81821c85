//! `vkae-engine qualify`: the qualification harness. One command measures, on one machine and the same
//! weights and tokens, transformers eager (`generate`, in a long-lived Python child on the same checkpoint
//! files), the static-cache + CUDA-graph peer (transformers' own model and weights with a static KV cache and
//! its decode step captured by `torch.cuda.graph`, in a second child), the engine's generic path and its VKAE
//! path; runs the quality guard (a seeded token stream teacher-forced through the reference and the VKAE path);
//! and writes one signed `vkae.run.v1` record per batch size, optionally ingesting them into an evidence store.
//!
//! ## Phases
//! plan (`plan`: weights, identity, token ids) -> open the paths (`engine_paths`, `reference`: children
//! loaded, the peer's same-model check) -> quality (`quality`) -> per batch: measure (`measure`: one warm-up
//! rule, interleaved repetitions), roles (`roles`), record (`record`: built, checked, signed, written) -> ingest
//! (`publish`).
//!
//! ## Contract
//! - Decode rate of a repetition = tokens of the timed decode steps / their wall time: every sequence generates
//!   `output_tokens`, the first from prefill, the other `output_tokens - 1` timed (the engine and the peer time
//!   them directly; transformers eager as time(N new) - time(1 new), see engine/bench/hf_generate.py).
//! - Every path warms up under one rule (`measure::WarmUpRule`), discarded; then the timed repetitions are
//!   interleaved across the paths, one of each in turn, so drift hits all paths alike.
//! - The declared baseline is the CUDA-graph peer where it was admitted (its greedy tokens equal eager's over the
//!   first steps, or its logits sit within the BF16 band of transformers' forward) and measured; else the
//!   reference path. Context paths (eager beside the peer, the generic path) carry `gating: false`.
//! - `tokens_generated` is counted from the sequences each timed repetition returned; EOS cannot stop a
//!   sequence early on either side, so it equals batch x output_tokens x reps unless something is wrong, and a
//!   mismatch is printed and recorded as counted (the store's benchmark lane then fails it).
//! - A path that produced no number (a refused, failed or timed-out peer) is listed under `unavailable_paths`
//!   with the reason; it never gets a number.
//! - `--baseline cpu-reference` replaces transformers by the engine's f32 CPU reference (no Python); the record
//!   names that path `cpu-reference` so it cannot pass for the declared baseline.
//! - The VKAE path is the kernel path ([`crate::vkae::VkaeModel`]) where it covers the model on CUDA; elsewhere
//!   (CPU, MoE, `--vkae-path generic`, or a kernel path that cannot be built, also listed under
//!   `unavailable_paths`) the generic path is measured in its place and the path's `detail` says why.
//! - The quality guard runs before the measurements, so each batch's record is signed and written as soon as
//!   that batch is measured. Every record is checked by `vkae-record`'s parser and its signature verified
//!   before it is written.

pub mod child;
pub mod engine_paths;
pub mod measure;
pub mod paths;
pub mod plan;
pub mod progress;
pub mod provenance;
pub mod publish;
pub mod quality;
pub mod record;
pub mod reference;
pub mod roles;
pub mod settings;
pub mod table;

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result};
use serde_json::json;
use vkae_record::{RunRecord, Timestamp};

use crate::stats::model_stats;
use engine_paths::EngineSide;
use measure::{measure_batch, PathRun, WarmUpRule};
use paths::{DecodePath, EnginePath};
use plan::RunPlan;
use progress::Phase;
use quality::Logits;
use reference::{Peer, ReferenceSide};
use roles::{BatchOutcomes, Outcome as PathOutcome};

pub use paths::{CPU_REFERENCE, ENGINE_GENERIC, HF_EAGER, HF_STATIC_CUDAGRAPH, VKAE};
pub use plan::family_slug;
pub use publish::ingest;
pub use quality::QualityFigures;
pub use settings::{BaselineKind, KeygenArgs, QualifyArgs, RecipeFile, Settings, WeightsSource};
pub use table::render_table;

/// What one run produced.
pub struct Outcome {
    pub records: Vec<(PathBuf, RunRecord)>,
    /// The final table, as printed.
    pub table: String,
    /// The ingest answers (one per record), when --ingest was given.
    pub ingested: Vec<serde_json::Value>,
    pub report: serde_json::Value,
}

/// Runs the whole qualification: see the module docs.
pub fn run(s: &Settings) -> Result<Outcome> {
    let started_at = Timestamp::now().to_rfc3339();
    let t_start = Instant::now();
    let key = vkae_record::read_signing_key_file(&s.lane_key)
        .with_context(|| format!("reading the lane key {}", s.lane_key.display()))?;
    let (work, remove_work) = match &s.work_dir {
        Some(d) => (d.clone(), false),
        None => (
            std::env::temp_dir().join(format!("vkae-qualify-{}", std::process::id())),
            true,
        ),
    };
    std::fs::create_dir_all(&work).with_context(|| format!("creating {}", work.display()))?;
    let result = run_in(s, &key, &work, &started_at, t_start);
    if remove_work {
        let _ = std::fs::remove_dir_all(&work);
    }
    result
}

fn run_in(
    s: &Settings,
    key: &vkae_record::SigningKey,
    work: &Path,
    started_at: &str,
    t_start: Instant,
) -> Result<Outcome> {
    let plan = plan::prepare(s)?;
    // The engine first: a broken engine fails the run in its first minute, before the children load.
    let engine = EngineSide::open(&plan.model, s)?;
    let mut reference = reference::open(&plan, s, work)?;
    let figures = quality_phase(&engine, &mut reference, &plan, s, work)?;
    let writer = record::Writer::new(s, &plan, &engine, &figures, key, started_at);
    let mut vkae = engine.vkae_path(&plan.prompt, s.output_tokens);
    let mut generic = engine.generic_path(&plan.prompt, s.output_tokens);
    let stats = model_stats(&plan.cfg);
    let (mut records, mut table, mut mismatches, mut report_batches) =
        (vec![], String::new(), vec![], vec![]);
    for &b in &s.batches {
        let (outcomes, warmups) =
            measure_phase(b, &mut reference, &mut vkae, &mut generic, &engine, s);
        let (paths, unavailable) = roles::assign(outcomes, WarmUpRule::new(s.warmup))?;
        mismatches.extend(
            paths
                .iter()
                .filter_map(|m| record::token_mismatch(m, b, s.output_tokens)),
        );
        let (out, rec) = writer.write(b, paths, unavailable)?;
        table.push_str(&render_table(
            &rec,
            stats.bytes_streamed_per_token,
            &figures,
        ));
        table.push('\n');
        report_batches.push(json!({"batch": b, "record": out, "run_id": rec.run_id, "warmup_tokens_per_s": warmups}));
        records.push((out, rec));
    }
    drop((vkae, generic, engine));
    let children = reference.close();
    for line in &mismatches {
        table.push_str(&format!("!! {line}\n"));
    }
    let ingested = ingest_phase(s, &records, &mut table)?;
    let report = json!({
        "started_at": started_at,
        "finished_at": Timestamp::now().to_rfc3339(),
        "wall_s": t_start.elapsed().as_secs_f64(),
        "model": {"repo": plan.repo, "family": plan.family, "weights": plan.weights_id, "checkpoint": plan.model_dir},
        "reference": figures.reference,
        "bytes_streamed_per_token": stats.bytes_streamed_per_token,
        "quality": figures,
        "token_mismatches": mismatches,
        "children": children,
        "records": report_batches,
        "ingested": ingested,
    });
    if let Some(p) = &s.report {
        publish::write_atomically(p, serde_json::to_string_pretty(&report)?.as_bytes())?;
    }
    Ok(Outcome {
        records,
        table,
        ingested,
        report,
    })
}

/// The quality guard: the VKAE path's logits over the quality stream scored against the reference's.
fn quality_phase(
    engine: &EngineSide,
    reference: &mut ReferenceSide,
    plan: &RunPlan,
    s: &Settings,
    work: &Path,
) -> Result<QualityFigures> {
    let phase = Phase::start("quality guard", 3, s.progress_bars);
    let vocab = plan.cfg.vocab_size;
    let vkae = Logits::Memory(engine.quality_logits(&plan.q_ids, vocab)?);
    phase.inc("vkae logits");
    let (logits, implementation) =
        reference.quality_logits(&plan.q_ids, vocab, s.f32_reference, work)?;
    phase.inc("reference logits");
    let figures = quality::score(logits, &implementation, &vkae, &plan.q_ids, vocab)?;
    phase.inc("compared");
    let q = &figures.record;
    phase.finish(&format!(
        "ppl {:.4} vs {:.4}, top-1 {:.4}, mean KL {:.3e}",
        q.candidate_ppl, q.reference_ppl, q.top1_agreement, q.mean_kl
    ));
    Ok(figures)
}

/// One batch: every path warmed up, then interleaved timed repetitions. A peer that fails here is unavailable
/// for this batch and the later ones. Also answers each path's warm-up rates, for the report.
fn measure_phase(
    b: usize,
    side: &mut ReferenceSide,
    vkae: &mut EnginePath<'static>,
    generic: &mut EnginePath<'static>,
    engine: &EngineSide,
    s: &Settings,
) -> (BatchOutcomes, serde_json::Value) {
    let reference_impl = side.reference.implementation();
    let reference_name = side.reference.name();
    let mut peer_impl = None;
    let rule = WarmUpRule::new(s.warmup);
    let mut list: Vec<&mut dyn DecodePath> = vec![side.reference.path(), vkae];
    let mut rules = vec![rule, rule];
    if let Some(Peer::Admitted { path, check }) = &mut side.peer {
        // The peer is the declared baseline: the reference beside it is context (see `roles`).
        rules[0] = rule.for_context();
        rules.push(rule);
        peer_impl = Some(format!(
            "{}; {check}; rate = batch x (N - 1) / wall time of the N - 1 graph replays (prefill eager, untimed)",
            path.implementation
        ));
        list.push(path);
    }
    list.push(generic);
    rules.push(rule.for_context());
    let phase = Phase::start(
        &format!("batch {b}"),
        (list.len() * (1 + s.reps)) as u64,
        s.progress_bars,
    );
    let mut runs = measure_batch(&mut list, b, s.reps, &rules, &phase).into_iter();
    let names = [reference_name, VKAE, HF_STATIC_CUDAGRAPH, ENGINE_GENERIC];
    let mut warmups = serde_json::Map::new();
    let mut take = |name: &str| -> Result<PathRun, String> {
        let run = runs.next().expect("one result per path");
        if let Ok(r) = &run {
            warmups.insert(name.to_string(), json!(r.warmup_tokens_per_s));
        }
        run
    };
    let reference_run = take(names[0]);
    let vkae_run = take(names[1]);
    let peer_run = peer_impl.as_ref().map(|_| take(names[2]));
    let generic_run = take(names[3]);
    phase.finish(&format!("{} paths", names.len()));
    let peer = match (side.peer.take(), peer_run, peer_impl) {
        (Some(Peer::Admitted { path, check }), Some(run), Some(implementation)) => {
            let outcome = PathOutcome {
                name: HF_STATIC_CUDAGRAPH.into(),
                run: run.clone(),
                implementation,
            };
            side.peer = Some(match run {
                Ok(_) => Peer::Admitted { path, check },
                // The child may be gone: later batches list the peer as unavailable, saying why.
                Err(e) => Peer::Unavailable(vkae_record::UnavailablePath {
                    name: HF_STATIC_CUDAGRAPH.into(),
                    role: vkae_record::Role::Baseline,
                    reason: format!("failed at batch {b}: {e}")
                        .chars()
                        .take(1000)
                        .collect(),
                }),
            });
            Some(Ok(outcome))
        }
        (Some(Peer::Unavailable(u)), ..) => {
            side.peer = Some(Peer::Unavailable(u.clone()));
            Some(Err(u))
        }
        (other, ..) => {
            side.peer = other;
            None
        }
    };
    let outcomes = BatchOutcomes {
        batch: b,
        reference: PathOutcome {
            name: reference_name.into(),
            run: reference_run,
            implementation: reference_impl,
        },
        vkae: PathOutcome {
            name: VKAE.into(),
            run: vkae_run,
            implementation: engine.vkae_detail(),
        },
        generic: PathOutcome {
            name: ENGINE_GENERIC.into(),
            run: generic_run,
            implementation: engine.generic_detail(),
        },
        peer,
    };
    (outcomes, serde_json::Value::Object(warmups))
}

fn ingest_phase(
    s: &Settings,
    records: &[(PathBuf, RunRecord)],
    table: &mut String,
) -> Result<Vec<serde_json::Value>> {
    let mut ingested = vec![];
    if let Some((url, token)) = &s.ingest {
        for (path, rec) in records {
            let answer = ingest(url, token, &rec.to_json_bytes())
                .with_context(|| format!("ingesting {}", path.display()))?;
            table.push_str(&format!(
                "ingested {} -> {}\n",
                rec.run_id,
                publish::summarize_ingest(&answer)
            ));
            ingested.push(answer);
        }
    }
    Ok(ingested)
}

/// `vkae-engine qualify`.
pub fn run_cli(args: &QualifyArgs) -> crate::Result<()> {
    let fail = |e: anyhow::Error| crate::EngineError::Input(format!("qualify: {e:#}"));
    let settings = Settings::from_args(args).map_err(fail)?;
    let outcome = run(&settings).map_err(fail)?;
    println!("{}", outcome.table);
    for (path, rec) in &outcome.records {
        println!("wrote {} ({})", path.display(), rec.run_id);
    }
    Ok(())
}

/// `vkae-engine keygen`.
pub fn keygen_cli(args: &KeygenArgs) -> crate::Result<()> {
    let keys = vkae_record::write_keypair(&args.out).map_err(|e| {
        crate::EngineError::Input(format!(
            "cannot create {} (it must not exist yet): {e}",
            args.out.display()
        ))
    })?;
    eprintln!("{}", keys.instructions(&args.out));
    println!("{}", keys.public_key);
    Ok(())
}
