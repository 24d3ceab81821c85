//! Decode throughput measurement, and the one benchmark loop every benchmark of the engine uses
//! ([`measure`]): `warmup` untimed runs of exactly the timed workload (module load, graph capture and the
//! projection measurement happen there), then `reps` timed runs, summarised as the median with min/max
//! ([`Summary`], through `vkae_record::stats`). The decode report adds the achieved bandwidth at batch 1
//! (bytes a step must stream x steps per second).

use serde::Serialize;

use crate::error::{EngineError, Result};
use crate::stats::{bytes_per_step, model_stats};
use crate::{Engine, GenerateRequest};

#[derive(Clone, Debug)]
pub struct BenchSettings {
    pub prompt_len: usize,
    /// Tokens generated per sequence; the first comes from prefill, the other `max_new - 1` are timed.
    pub max_new: usize,
    pub batches: Vec<usize>,
    pub reps: usize,
    pub warmup: usize,
    pub seed: u64,
}

#[derive(Clone, Debug, Serialize)]
pub struct BatchResult {
    pub batch: usize,
    /// Generated tokens per second over the timed decode steps, all sequences together, one per repetition.
    pub tokens_per_s: Vec<f64>,
    /// Of `tokens_per_s`.
    #[serde(flatten)]
    pub rate: Summary,
    /// Median milliseconds per decode step.
    pub ms_per_step: f64,
    pub prefill_s_median: f64,
}

#[derive(Clone, Debug, Serialize)]
pub struct BenchReport {
    pub model: String,
    pub device: String,
    pub prompt_ids: Vec<u32>,
    pub max_new: usize,
    pub timed_steps: usize,
    pub reps: usize,
    pub bytes_streamed_per_token: u64,
    pub results: Vec<BatchResult>,
    /// `bytes_streamed_per_token * median tokens/s` at batch 1, GB/s (1e9 bytes).
    pub batch1_achieved_gb_per_s: Option<f64>,
    /// Batch-1 greedy tokens of the last repetition (to compare with another implementation's).
    pub batch1_tokens: Option<Vec<u32>>,
}

/// A deterministic prompt: BOS then ids drawn from `[3, vocab)`.
pub fn bench_prompt(vocab: usize, len: usize, seed: u64) -> Vec<u32> {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let mut v = vec![2u32];
    while v.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v.push(3 + (x % (vocab as u64 - 3)) as u32);
    }
    v
}

/// The benchmark loop: `warmup` runs of `run` whose results are dropped, then `reps` runs whose results
/// are returned in order. The warm-up runs the same workload as the timed runs.
pub fn measure<T, E>(
    warmup: usize,
    reps: usize,
    mut run: impl FnMut() -> std::result::Result<T, E>,
) -> std::result::Result<Vec<T>, E> {
    for _ in 0..warmup {
        run()?;
    }
    (0..reps).map(|_| run()).collect()
}

/// Median with min and max of repeated measurements.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Summary {
    pub median: f64,
    pub min: f64,
    pub max: f64,
}

impl Summary {
    /// `None` for no values (no repetition ran).
    pub fn of(values: &[f64]) -> Option<Summary> {
        let median = vkae_record::stats::median(values)?;
        Some(Summary {
            median,
            min: values.iter().cloned().fold(f64::INFINITY, f64::min),
            max: values.iter().cloned().fold(f64::NEG_INFINITY, f64::max),
        })
    }

    /// As [`Summary::of`], an input error naming what was measured when nothing ran.
    pub fn of_runs(values: &[f64], what: &str) -> Result<Summary> {
        Summary::of(values).ok_or_else(|| {
            EngineError::Input(format!(
                "{what}: no repetitions ran (reps must be at least 1)"
            ))
        })
    }
}

pub fn run_bench(
    engine: &mut Engine,
    model_name: &str,
    device: &str,
    s: &BenchSettings,
) -> Result<BenchReport> {
    let cfg = engine.config().clone();
    let prompt = bench_prompt(cfg.vocab_size, s.prompt_len, s.seed);
    let stats = model_stats(&cfg);
    let mut results = vec![];
    let mut batch1_tokens = None;
    for &b in &s.batches {
        let req = GenerateRequest {
            prompts: vec![prompt.clone(); b],
            max_new: s.max_new,
            stop_at_eos: false,
        };
        let outs = measure(s.warmup, s.reps, || engine.generate(&req))?;
        let rates: Vec<f64> = outs.iter().map(|o| o.tokens_per_s).collect();
        let prefills: Vec<f64> = outs.iter().map(|o| o.prefill_s).collect();
        if b == 1 {
            batch1_tokens = outs.last().map(|o| o.tokens[0].clone());
        }
        let rate = Summary::of_runs(&rates, "decode tokens/s")?;
        let prefill = Summary::of_runs(&prefills, "prefill seconds")?;
        results.push(BatchResult {
            batch: b,
            rate,
            ms_per_step: 1000.0 * b as f64 / rate.median,
            prefill_s_median: prefill.median,
            tokens_per_s: rates,
        });
    }
    let batch1_achieved_gb_per_s = results
        .iter()
        .find(|r| r.batch == 1)
        .map(|r| bytes_per_step(&cfg, 1, 0.0) * r.rate.median / 1e9);
    Ok(BenchReport {
        model: model_name.to_string(),
        device: device.to_string(),
        prompt_ids: prompt,
        max_new: s.max_new,
        timed_steps: s.max_new.saturating_sub(1),
        reps: s.reps,
        bytes_streamed_per_token: stats.bytes_streamed_per_token,
        results,
        batch1_achieved_gb_per_s,
        batch1_tokens,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_result_writes_its_rate_summary_flat() {
        let rates = vec![10.0, 12.0, 11.0];
        let result = BatchResult {
            batch: 1,
            rate: Summary::of(&rates).unwrap(),
            tokens_per_s: rates,
            ms_per_step: 90.9,
            prefill_s_median: 0.5,
        };
        let json = serde_json::to_value(&result).unwrap();
        assert_eq!(
            (&json["median"], &json["min"], &json["max"]),
            (&11.0.into(), &10.0.into(), &12.0.into())
        );
        assert!(json.get("rate").is_none(), "{json}");
    }
}
