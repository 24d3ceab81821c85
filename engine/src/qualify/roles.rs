//! Which path plays which role in a batch's record. The declared baseline is the strongest reference path that
//! ran and passed its checks: the static-cache + CUDA-graph peer where it was admitted and measured, else the
//! reference path (transformers eager, or the CPU stand-in). transformers eager, when the peer is the
//! baseline, and the engine's generic path are context: reported with their spread, gating no claim.

use anyhow::{bail, Result};
use vkae_record::{Role, UnavailablePath};

use super::measure::{PathRun, WarmUpRule};
use super::record::Measured;

/// One path's outcome at a batch, with its name and what ran.
pub struct Outcome {
    pub name: String,
    pub run: Result<PathRun, String>,
    pub implementation: String,
}

/// Every path's outcome at one batch.
pub struct BatchOutcomes {
    pub batch: usize,
    pub reference: Outcome,
    pub vkae: Outcome,
    pub generic: Outcome,
    /// The peer's outcome, or why it was not measured (None: not tried, as with the CPU stand-in).
    pub peer: Option<Result<Outcome, UnavailablePath>>,
}

/// The batch's paths in record order (declared baseline, VKAE, then context paths) and its unavailable ones.
pub fn assign(o: BatchOutcomes, rule: WarmUpRule) -> Result<(Vec<Measured>, Vec<UnavailablePath>)> {
    let b = o.batch;
    let mut unavailable = vec![];
    let peer = match o.peer {
        Some(Ok(Outcome {
            run: Ok(run),
            name,
            implementation,
        })) => Some((name, run, implementation)),
        Some(Ok(Outcome {
            run: Err(e),
            name,
            implementation,
        })) => {
            unavailable.push(unavailable_path(
                &name,
                Role::Baseline,
                &format!("{implementation}: {e}"),
            ));
            None
        }
        Some(Err(u)) => {
            unavailable.push(u);
            None
        }
        None => None,
    };
    let required = |o: Outcome, what: &str| -> Result<(String, PathRun, String)> {
        match o.run {
            Ok(run) => Ok((o.name, run, o.implementation)),
            Err(e) => bail!("{what} {} failed at batch {b}: {e}", o.name),
        }
    };
    let vkae = required(o.vkae, "the VKAE path")?;
    let generic = required(o.generic, "the generic path")?;
    let mut paths = vec![];
    let baseline_seq0;
    match peer {
        Some(peer) => {
            baseline_seq0 = peer.1.seq0.clone();
            let eager = match o.reference.run {
                Ok(run) => Some((o.reference.name, run, o.reference.implementation)),
                Err(e) => {
                    let why = format!("{}: {e}", o.reference.implementation);
                    unavailable.push(unavailable_path(&o.reference.name, Role::Peer, &why));
                    None
                }
            };
            let eager_seq0 = eager.as_ref().and_then(|e| e.1.seq0.clone());
            let peer_vs_eager = agreement(
                eager_seq0.as_ref(),
                peer.1.seq0.as_ref(),
                "transformers eager's",
            );
            paths.push(measured(peer, Role::Baseline, true, peer_vs_eager, rule));
            push_engine_paths(&mut paths, vkae, generic, baseline_seq0.as_ref(), rule);
            if let Some(e) = eager {
                paths.push(measured(e, Role::Peer, false, None, rule));
            }
        }
        None => {
            let reference = required(o.reference, "the baseline")?;
            baseline_seq0 = reference.1.seq0.clone();
            paths.push(measured(reference, Role::Baseline, true, None, rule));
            push_engine_paths(&mut paths, vkae, generic, baseline_seq0.as_ref(), rule);
        }
    }
    Ok((paths, unavailable))
}

fn push_engine_paths(
    paths: &mut Vec<Measured>,
    vkae: (String, PathRun, String),
    generic: (String, PathRun, String),
    baseline_seq0: Option<&Vec<u32>>,
    rule: WarmUpRule,
) {
    let same = agreement(baseline_seq0, vkae.1.seq0.as_ref(), "the baseline's");
    paths.push(measured(vkae, Role::Vkae, true, same, rule));
    paths.push(measured(generic, Role::Peer, false, None, rule));
}

fn unavailable_path(name: &str, role: Role, reason: &str) -> UnavailablePath {
    let mut reason = reason.to_string();
    reason.truncate(1000);
    UnavailablePath {
        name: name.into(),
        role,
        reason,
    }
}

/// "greedy sequence 0: first K of N tokens equal WHOSE", where both sequences came back.
fn agreement(
    reference: Option<&Vec<u32>>,
    candidate: Option<&Vec<u32>>,
    whose: &str,
) -> Option<String> {
    let (a, v) = (reference?, candidate?);
    let same = a.iter().zip(v).take_while(|(x, y)| x == y).count();
    Some(format!(
        "greedy sequence 0: first {same} of {} tokens equal {whose}",
        a.len().min(v.len())
    ))
}

fn measured(
    (name, run, implementation): (String, PathRun, String),
    role: Role,
    gating: bool,
    extra: Option<String>,
    rule: WarmUpRule,
) -> Measured {
    let rule = if gating { rule } else { rule.for_context() };
    let mut detail = implementation;
    if let Some(e) = extra {
        detail.push_str(&format!("; {e}"));
    }
    let warm_up_rule = if rule.at_most_extra == 0 {
        format!("rule for a context path: {}", rule.at_least)
    } else {
        format!(
            "rule: at least {}, then until two in a row agree within {:.0}% after at least {:.0} s of warm-up, \
             at most {} more",
            rule.at_least,
            rule.steady * 100.0,
            rule.min_seconds,
            rule.at_most_extra
        )
    };
    detail.push_str(&format!(
        "; {} warm-up repetition(s) ({warm_up_rule}); timed repetitions interleaved with the other paths'",
        run.warmup_tokens_per_s.len(),
    ));
    if run.remeasured > 0 {
        detail.push_str(&format!(
            "; {} repetition(s) measured again (time(N) <= time(1))",
            run.remeasured
        ));
    }
    if !gating {
        detail.push_str("; context only: gates no claim");
    }
    Measured {
        name,
        role,
        tokens_per_s: run.tokens_per_s,
        tokens_generated: run.tokens_generated,
        detail: Some(detail),
        gating,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(seq0: &[u32]) -> PathRun {
        PathRun {
            tokens_per_s: vec![10.0; 5],
            tokens_generated: 640,
            seq0: Some(seq0.to_vec()),
            warmup_tokens_per_s: vec![Some(9.0)],
            remeasured: 0,
        }
    }

    fn outcome(name: &str, r: Result<PathRun, String>) -> Outcome {
        Outcome {
            name: name.into(),
            run: r,
            implementation: format!("{name} impl"),
        }
    }

    fn batch(peer: Option<Result<Outcome, UnavailablePath>>) -> BatchOutcomes {
        BatchOutcomes {
            batch: 1,
            reference: outcome("hf-transformers-eager", Ok(run(&[1, 2, 3]))),
            vkae: outcome("vkae", Ok(run(&[1, 2, 9]))),
            generic: outcome("vkae-engine-generic", Ok(run(&[1, 2, 3]))),
            peer,
        }
    }

    fn roles(paths: &[Measured]) -> Vec<(String, Role, bool)> {
        paths
            .iter()
            .map(|m| (m.name.clone(), m.role, m.gating))
            .collect()
    }

    #[test]
    fn an_admitted_peer_is_the_declared_baseline_and_eager_is_context() {
        let peer = outcome("hf-transformers-static-cudagraph", Ok(run(&[1, 2, 3])));
        let (paths, unavailable) = assign(batch(Some(Ok(peer))), WarmUpRule::new(1)).unwrap();
        assert_eq!(
            roles(&paths),
            [
                (
                    "hf-transformers-static-cudagraph".into(),
                    Role::Baseline,
                    true
                ),
                ("vkae".into(), Role::Vkae, true),
                ("vkae-engine-generic".into(), Role::Peer, false),
                ("hf-transformers-eager".into(), Role::Peer, false),
            ]
        );
        assert!(unavailable.is_empty());
        let d = |i: usize| paths[i].detail.clone().unwrap();
        assert!(
            d(0).contains("first 3 of 3 tokens equal transformers eager's"),
            "{}",
            d(0)
        );
        assert!(
            d(1).contains("first 2 of 3 tokens equal the baseline's"),
            "{}",
            d(1)
        );
        assert!(
            d(3).contains("context only") && d(3).contains("1 warm-up repetition(s)"),
            "{}",
            d(3)
        );
    }

    #[test]
    fn without_the_peer_eager_is_the_baseline_and_the_peer_is_listed_with_why() {
        let refused = UnavailablePath {
            name: "hf-transformers-static-cudagraph".into(),
            role: Role::Baseline,
            reason: "refused: it does not compute what transformers eager computes".into(),
        };
        let (paths, unavailable) =
            assign(batch(Some(Err(refused.clone()))), WarmUpRule::new(1)).unwrap();
        assert_eq!(
            roles(&paths)[0],
            ("hf-transformers-eager".into(), Role::Baseline, true)
        );
        assert_eq!(paths.len(), 3);
        assert_eq!(unavailable, [refused]);
        // A peer that failed mid-batch: named with its failure, and eager stands as the baseline.
        let crashed = outcome(
            "hf-transformers-static-cudagraph",
            Err("killed by signal 11".into()),
        );
        let (paths, unavailable) = assign(batch(Some(Ok(crashed))), WarmUpRule::new(1)).unwrap();
        assert_eq!(paths[0].name, "hf-transformers-eager");
        assert!(
            unavailable[0].reason.contains("signal 11"),
            "{:?}",
            unavailable[0]
        );
    }

    #[test]
    fn a_failed_required_path_fails_the_batch() {
        let mut b = batch(None);
        b.vkae.run = Err("out of memory".into());
        let err = assign(b, WarmUpRule::new(1)).unwrap_err().to_string();
        assert!(
            err.contains("the VKAE path vkae failed at batch 1: out of memory"),
            "{err}"
        );
        let mut b = batch(None);
        b.reference.run = Err("exited with status 1".into());
        assert!(assign(b, WarmUpRule::new(1))
            .unwrap_err()
            .to_string()
            .contains("the baseline"));
    }
}
