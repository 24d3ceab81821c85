//! The measure phase: at one batch size, every path warms up under one rule, then the timed repetitions are
//! interleaved (path A, B, C, then A, B, C, ...) so that a drift of the machine (host CPU speed, clocks) hits
//! every path alike instead of one path's whole block. A path that fails is reported as failed; the others go
//! on.

use std::time::Instant;

use super::paths::{DecodePath, Rep};
use super::progress::Phase;

/// Repetitions a path may have measured again (a void rate) before it counts as failed.
const MAX_REMEASURED: u32 = 3;

/// The one warm-up rule of every path: at least `at_least` whole repetitions, discarded; past those, on until
/// the last two agree within `steady` (relative) and `min_seconds` of warm-up have passed, at most
/// `at_most_extra` more. The minimum time is there because the host-bound transformers path can keep speeding
/// up after two agreeing warm-ups (the evidence: docs/benchmarks/qualification.md, "Warm-up evidence").
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct WarmUpRule {
    pub at_least: usize,
    pub steady: f64,
    pub min_seconds: f64,
    pub at_most_extra: usize,
}

impl WarmUpRule {
    pub fn new(at_least: usize) -> WarmUpRule {
        WarmUpRule {
            at_least,
            steady: 0.03,
            min_seconds: 20.0,
            at_most_extra: 6,
        }
    }

    /// The rule of a context path (one that gates no claim): its minimum warm-up only. Steadiness matters for a
    /// rate a claim rests on; waiting for the host-bound eager reference to settle cost minutes per batch.
    pub fn for_context(self) -> WarmUpRule {
        WarmUpRule {
            at_most_extra: 0,
            ..self
        }
    }

    /// Whether warm-up may stop after these warm-up rates (None: void) and `elapsed` seconds of warm-up.
    pub fn satisfied(&self, rates: &[Option<f64>], elapsed: f64) -> bool {
        let n = rates.len();
        if self.at_least == 0 || n >= self.at_least + self.at_most_extra {
            return self.at_least == 0 || n >= self.at_least;
        }
        if n < self.at_least {
            return false;
        }
        let steady = n >= 2
            && matches!((rates[n - 1], rates[n - 2]), (Some(a), Some(b)) if (a - b).abs() <= self.steady * a);
        steady && elapsed >= self.min_seconds
    }
}

/// What one path gave at one batch size.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PathRun {
    pub tokens_per_s: Vec<f64>,
    /// Tokens counted from the timed repetitions' sequences.
    pub tokens_generated: u64,
    /// Sequence 0 of the last timed repetition.
    pub seq0: Option<Vec<u32>>,
    pub warmup_tokens_per_s: Vec<Option<f64>>,
    /// Repetitions measured again because their rate was void.
    pub remeasured: u32,
}

/// Warms up every path (path `i` under `rules[i]`), then `reps` interleaved rounds of one timed repetition per
/// path. Index `i` of the answer is path `i`'s result, or why it failed (its first failure ends its part of
/// this batch).
pub fn measure_batch(
    paths: &mut [&mut dyn DecodePath],
    batch: usize,
    reps: usize,
    rules: &[WarmUpRule],
    phase: &Phase,
) -> Vec<Result<PathRun, String>> {
    assert_eq!(paths.len(), rules.len(), "one warm-up rule per path");
    let mut runs: Vec<Result<PathRun, String>> = paths
        .iter_mut()
        .zip(rules)
        .map(|(p, rule)| warm_up(&mut **p, batch, *rule, phase))
        .collect();
    for r in 1..=reps {
        for (path, run) in paths.iter_mut().zip(runs.iter_mut()) {
            let Ok(so_far) = run else { continue };
            match timed(&mut **path, batch, r, so_far) {
                Ok(rate) => phase.inc(&format!("{} batch {batch}: {rate:.1} tok/s", path.name())),
                Err(e) => *run = Err(e),
            }
        }
    }
    runs
}

fn warm_up(
    path: &mut dyn DecodePath,
    batch: usize,
    rule: WarmUpRule,
    phase: &Phase,
) -> Result<PathRun, String> {
    let started = Instant::now();
    let mut run = PathRun::default();
    while !rule.satisfied(&run.warmup_tokens_per_s, started.elapsed().as_secs_f64()) {
        let label = format!("warm-up {}", run.warmup_tokens_per_s.len() + 1);
        let rep = path
            .rep(batch, &label)
            .map_err(|e| format!("batch {batch} {label}: {e:#}"))?;
        run.warmup_tokens_per_s.push(rep.tokens_per_s);
    }
    phase.inc(&format!(
        "{} batch {batch}: {} warm-up repetition(s)",
        path.name(),
        run.warmup_tokens_per_s.len()
    ));
    Ok(run)
}

/// Timed repetition `r` of one path, measured again (at most `MAX_REMEASURED` times in all) while void.
fn timed(
    path: &mut dyn DecodePath,
    batch: usize,
    r: usize,
    run: &mut PathRun,
) -> Result<f64, String> {
    loop {
        let label = format!("repetition {r}");
        let Rep {
            tokens_per_s,
            tokens_generated,
            seq0,
        } = path
            .rep(batch, &label)
            .map_err(|e| format!("batch {batch} {label}: {e:#}"))?;
        match tokens_per_s {
            Some(rate) => {
                run.tokens_per_s.push(rate);
                run.tokens_generated += tokens_generated;
                run.seq0 = seq0;
                return Ok(rate);
            }
            None if run.remeasured < MAX_REMEASURED => run.remeasured += 1,
            None => {
                return Err(format!(
                    "batch {batch}: {} void repetitions (time(N new) <= time(1 new)); no valid decode rate",
                    run.remeasured + 1
                ))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A path that logs which repetitions it ran, in order, into a shared log.
    struct Logged<'a> {
        name: &'static str,
        log: &'a std::cell::RefCell<Vec<String>>,
        rates: Vec<Option<f64>>,
        fail_at: Option<usize>,
    }

    impl DecodePath for Logged<'_> {
        fn name(&self) -> &str {
            self.name
        }
        fn rep(&mut self, batch: usize, label: &str) -> anyhow::Result<Rep> {
            let n = self
                .log
                .borrow()
                .iter()
                .filter(|l| l.starts_with(self.name))
                .count();
            self.log.borrow_mut().push(format!("{} {label}", self.name));
            if self.fail_at == Some(n) {
                anyhow::bail!("out of memory");
            }
            Ok(Rep {
                tokens_per_s: self.rates.get(n).copied().unwrap_or(Some(10.0)),
                tokens_generated: batch as u64 * 4,
                seq0: Some(vec![n as u32]),
            })
        }
    }

    #[test]
    fn repetitions_interleave_after_every_path_warmed_up() {
        let log = std::cell::RefCell::new(vec![]);
        let mut a = Logged {
            name: "a",
            log: &log,
            rates: vec![],
            fail_at: None,
        };
        let mut b = Logged {
            name: "b",
            log: &log,
            rates: vec![],
            fail_at: None,
        };
        let rule = WarmUpRule {
            at_least: 1,
            steady: 0.03,
            min_seconds: 0.0,
            at_most_extra: 0,
        };
        let phase = Phase::start("test", 1, false);
        let runs = measure_batch(&mut [&mut a, &mut b], 2, 3, &[rule; 2], &phase);
        assert_eq!(
            log.borrow().join(", "),
            "a warm-up 1, b warm-up 1, a repetition 1, b repetition 1, a repetition 2, b repetition 2, \
             a repetition 3, b repetition 3"
        );
        let run = runs[0].clone().unwrap();
        assert_eq!((run.tokens_per_s.len(), run.tokens_generated), (3, 24));
        assert_eq!(
            run.seq0,
            Some(vec![3]),
            "sequence 0 of the last timed repetition"
        );
    }

    #[test]
    fn a_void_rate_is_measured_again_and_a_failing_path_leaves_the_others_measured() {
        let log = std::cell::RefCell::new(vec![]);
        let mut a = Logged {
            name: "a",
            log: &log,
            rates: vec![Some(9.0), None, Some(11.0)],
            fail_at: None,
        };
        let mut b = Logged {
            name: "b",
            log: &log,
            rates: vec![],
            fail_at: Some(2),
        };
        let mut c = Logged {
            name: "c",
            log: &log,
            rates: vec![Some(1.0), None, None, None, None],
            fail_at: None,
        };
        let rule = WarmUpRule::new(1);
        let rule = WarmUpRule {
            min_seconds: 0.0,
            at_most_extra: 0,
            ..rule
        };
        let phase = Phase::start("test", 1, false);
        let runs = measure_batch(&mut [&mut a, &mut b, &mut c], 1, 3, &[rule; 3], &phase);
        let a = runs[0].clone().unwrap();
        assert_eq!((a.tokens_per_s, a.remeasured), (vec![11.0, 10.0, 10.0], 1));
        let b = runs[1].clone().unwrap_err();
        assert!(
            b.contains("batch 1 repetition 2") && b.contains("out of memory"),
            "{b}"
        );
        let c = runs[2].clone().unwrap_err();
        assert!(c.contains("4 void repetitions"), "{c}");
    }

    #[test]
    fn warm_up_runs_until_steady_and_long_enough_within_its_bounds() {
        let rule = WarmUpRule::new(2);
        assert!(
            !rule.satisfied(&[Some(10.0)], 60.0),
            "the minimum count comes first"
        );
        assert!(rule.satisfied(&[Some(10.0), Some(10.1)], 20.0));
        assert!(
            !rule.satisfied(&[Some(10.0), Some(10.1)], 19.0),
            "not yet 20 s"
        );
        assert!(
            !rule.satisfied(&[Some(10.0), Some(11.0)], 60.0),
            "10% apart is not steady"
        );
        assert!(!rule.satisfied(&[Some(10.0), None], 60.0));
        assert!(
            rule.satisfied(&[Some(1.0); 8], 0.0),
            "at most 6 past the minimum"
        );
        assert!(
            WarmUpRule::new(0).satisfied(&[], 0.0),
            "--warmup 0 warms up nothing"
        );
        let context = WarmUpRule::new(2).for_context();
        assert!(!context.satisfied(&[Some(10.0)], 60.0));
        assert!(
            context.satisfied(&[Some(10.0), Some(20.0)], 0.0),
            "a context path stops at its minimum, steady or not"
        );
    }
}
