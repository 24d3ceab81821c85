//! Decode throughput measurement: warm-up excluded, several repetitions, median with min/max, and the
//! achieved bandwidth at batch 1 (bytes a step must stream x steps per second).

use serde::Serialize;

use crate::error::Result;
use crate::stats::model_stats;
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
    pub median: f64,
    pub min: f64,
    pub max: f64,
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

fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
    let n = s.len();
    if n % 2 == 1 {
        s[n / 2]
    } else {
        (s[n / 2 - 1] + s[n / 2]) / 2.0
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
        for _ in 0..s.warmup {
            engine.generate(&GenerateRequest {
                max_new: s.max_new.min(8),
                ..req.clone()
            })?;
        }
        let (mut rates, mut prefills) = (vec![], vec![]);
        for _ in 0..s.reps {
            let out = engine.generate(&req)?;
            rates.push(out.tokens_per_s);
            prefills.push(out.prefill_s);
            if b == 1 {
                batch1_tokens = Some(out.tokens[0].clone());
            }
        }
        let med = median(&rates);
        results.push(BatchResult {
            batch: b,
            median: med,
            min: rates.iter().cloned().fold(f64::INFINITY, f64::min),
            max: rates.iter().cloned().fold(0.0, f64::max),
            ms_per_step: 1000.0 * b as f64 / med,
            prefill_s_median: median(&prefills),
            tokens_per_s: rates,
        });
    }
    let batch1_achieved_gb_per_s = results
        .iter()
        .find(|r| r.batch == 1)
        .map(|r| stats.bytes_streamed_per_token as f64 * r.median / 1e9);
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
