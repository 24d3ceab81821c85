//! The server's Prometheus metrics (`GET /metrics`, text exposition format 0.0.4): request outcomes, prompt
//! and generated tokens, time to first token and time per output token histograms, running and queued
//! requests, decode batch occupancy and KV blocks reserved.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// Positions per KV block in the `kv_blocks` gauges.
pub const KV_BLOCK_TOKENS: usize = 16;

const LATENCY_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// Why a request ended, for `vkae_requests_total{outcome}`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// A stop token or stop string.
    Stop,
    /// `max_tokens` reached.
    Length,
    /// The client went away.
    Cancelled,
    /// Refused because the queue was full.
    Rejected,
    /// The engine failed.
    Error,
}

impl Outcome {
    const ALL: [Outcome; 5] = [
        Outcome::Stop,
        Outcome::Length,
        Outcome::Cancelled,
        Outcome::Rejected,
        Outcome::Error,
    ];
    fn label(self) -> &'static str {
        match self {
            Outcome::Stop => "stop",
            Outcome::Length => "length",
            Outcome::Cancelled => "cancelled",
            Outcome::Rejected => "rejected",
            Outcome::Error => "error",
        }
    }
}

struct Histogram {
    buckets: Vec<f64>,
    counts: Vec<u64>,
    sum: f64,
    count: u64,
}

impl Histogram {
    fn new(buckets: Vec<f64>) -> Self {
        Histogram {
            counts: vec![0; buckets.len()],
            buckets,
            sum: 0.0,
            count: 0,
        }
    }

    fn observe(&mut self, v: f64) {
        for (b, c) in self.buckets.iter().zip(self.counts.iter_mut()) {
            if v <= *b {
                *c += 1;
            }
        }
        self.sum += v;
        self.count += 1;
    }

    fn write(&self, out: &mut String, name: &str, help: &str) {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        for (b, c) in self.buckets.iter().zip(&self.counts) {
            let _ = writeln!(out, "{name}_bucket{{le=\"{b}\"}} {c}");
        }
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {}", self.count);
        let _ = writeln!(out, "{name}_sum {}\n{name}_count {}", self.sum, self.count);
    }
}

pub struct Metrics {
    outcomes: [AtomicU64; 5],
    prompt_tokens: AtomicU64,
    generated_tokens: AtomicU64,
    running: AtomicU64,
    queued: AtomicU64,
    batch_rows: AtomicU64,
    max_batch: u64,
    kv_blocks_used: AtomicU64,
    kv_blocks_total: u64,
    ttft: Mutex<Histogram>,
    tpot: Mutex<Histogram>,
    occupancy: Mutex<Histogram>,
}

impl Metrics {
    pub fn new(max_batch: usize, kv_budget_tokens: usize) -> Self {
        Metrics {
            outcomes: Default::default(),
            prompt_tokens: AtomicU64::new(0),
            generated_tokens: AtomicU64::new(0),
            running: AtomicU64::new(0),
            queued: AtomicU64::new(0),
            batch_rows: AtomicU64::new(0),
            max_batch: max_batch as u64,
            kv_blocks_used: AtomicU64::new(0),
            kv_blocks_total: (kv_budget_tokens / KV_BLOCK_TOKENS) as u64,
            ttft: Mutex::new(Histogram::new(LATENCY_BUCKETS.to_vec())),
            tpot: Mutex::new(Histogram::new(LATENCY_BUCKETS.to_vec())),
            occupancy: Mutex::new(Histogram::new((1..=max_batch).map(|b| b as f64).collect())),
        }
    }

    pub fn finished(&self, outcome: Outcome) {
        self.outcomes[outcome as usize].fetch_add(1, Ordering::Relaxed);
    }
    pub fn prompt(&self, tokens: usize) {
        self.prompt_tokens
            .fetch_add(tokens as u64, Ordering::Relaxed);
    }
    pub fn generated(&self, tokens: usize) {
        self.generated_tokens
            .fetch_add(tokens as u64, Ordering::Relaxed);
    }
    pub fn queue_changed(&self, delta: i64) {
        if delta >= 0 {
            self.queued.fetch_add(delta as u64, Ordering::Relaxed);
        } else {
            self.queued.fetch_sub((-delta) as u64, Ordering::Relaxed);
        }
    }
    pub fn queued(&self) -> u64 {
        self.queued.load(Ordering::Relaxed)
    }
    /// After each scheduler iteration: requests holding a slot, rows in the decode step, KV positions
    /// reserved.
    pub fn iteration(&self, running: usize, step_rows: usize, kv_reserved_tokens: usize) {
        self.running.store(running as u64, Ordering::Relaxed);
        self.batch_rows.store(step_rows as u64, Ordering::Relaxed);
        let blocks = kv_reserved_tokens.div_ceil(KV_BLOCK_TOKENS) as u64;
        self.kv_blocks_used.store(blocks, Ordering::Relaxed);
        if step_rows > 0 {
            self.occupancy.lock().unwrap().observe(step_rows as f64);
        }
    }
    pub fn time_to_first_token(&self, s: f64) {
        self.ttft.lock().unwrap().observe(s);
    }
    pub fn time_per_output_token(&self, s: f64) {
        self.tpot.lock().unwrap().observe(s);
    }

    /// The exposition text.
    pub fn render(&self) -> String {
        let mut o = String::new();
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let _ = writeln!(
            o,
            "# HELP vkae_requests_total Requests finished, by outcome.\n# TYPE vkae_requests_total counter"
        );
        for oc in Outcome::ALL {
            let _ = writeln!(
                o,
                "vkae_requests_total{{outcome=\"{}\"}} {}",
                oc.label(),
                load(&self.outcomes[oc as usize])
            );
        }
        let mut scalar = |name: &str, kind: &str, help: &str, v: u64| {
            let _ = writeln!(o, "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {v}");
        };
        scalar(
            "vkae_prompt_tokens_total",
            "counter",
            "Prompt tokens prefilled.",
            load(&self.prompt_tokens),
        );
        scalar(
            "vkae_generation_tokens_total",
            "counter",
            "Tokens generated.",
            load(&self.generated_tokens),
        );
        scalar(
            "vkae_requests_running",
            "gauge",
            "Requests holding a batch slot.",
            load(&self.running),
        );
        scalar(
            "vkae_requests_waiting",
            "gauge",
            "Requests queued for a slot.",
            load(&self.queued),
        );
        scalar(
            "vkae_batch_rows",
            "gauge",
            "Rows in the latest decode step.",
            load(&self.batch_rows),
        );
        scalar(
            "vkae_batch_slots",
            "gauge",
            "Slots of the running batch (the recipe's max_batch).",
            self.max_batch,
        );
        scalar(
            "vkae_kv_blocks_used",
            "gauge",
            "KV blocks (16 positions) reserved by admitted requests.",
            load(&self.kv_blocks_used),
        );
        scalar(
            "vkae_kv_blocks_total",
            "gauge",
            "KV blocks in the recipe's budget.",
            self.kv_blocks_total,
        );
        self.ttft.lock().unwrap().write(
            &mut o,
            "vkae_time_to_first_token_seconds",
            "From arrival to the first generated token.",
        );
        self.tpot.lock().unwrap().write(
            &mut o,
            "vkae_time_per_output_token_seconds",
            "Between consecutive generated tokens of a request.",
        );
        self.occupancy.lock().unwrap().write(
            &mut o,
            "vkae_batch_occupancy_rows",
            "Rows per decode step.",
        );
        o
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histograms_are_cumulative_and_counters_add_up() {
        let m = Metrics::new(8, 1024);
        m.time_to_first_token(0.003);
        m.time_to_first_token(0.2);
        m.finished(Outcome::Stop);
        m.finished(Outcome::Stop);
        m.generated(5);
        m.iteration(3, 3, 17);
        let t = m.render();
        assert!(
            t.contains("vkae_time_to_first_token_seconds_bucket{le=\"0.0025\"} 0\n"),
            "{t}"
        );
        assert!(t.contains("vkae_time_to_first_token_seconds_bucket{le=\"0.005\"} 1\n"));
        assert!(t.contains("vkae_time_to_first_token_seconds_bucket{le=\"+Inf\"} 2\n"));
        assert!(t.contains("vkae_time_to_first_token_seconds_count 2\n"));
        assert!(t.contains("vkae_requests_total{outcome=\"stop\"} 2\n"));
        assert!(t.contains("vkae_generation_tokens_total 5\n"));
        assert!(t.contains("vkae_kv_blocks_used 2\n"));
        assert!(t.contains("vkae_kv_blocks_total 64\n"));
        assert!(t.contains("vkae_requests_running 3\n"));
    }
}
