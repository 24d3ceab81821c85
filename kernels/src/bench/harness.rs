//! What every benchmark section shares: the E4B shapes, the settings, and the bench state that collects
//! checks and timed rows.

use super::timing::{Stats, Timer};
use crate::check::CheckReport;
use crate::device::Gpu;
use crate::error::Result;
use crate::rng::Rng;
use cudarc::driver::CudaSlice;
use half::bf16;

/// E4B text-decoder shapes.
pub mod e4b {
    pub const HIDDEN: usize = 2560;
    pub const HEADS: usize = 8;
    pub const KV_HEADS: usize = 2;
    pub const HEAD_DIM_SLIDING: usize = 256;
    pub const HEAD_DIM_GLOBAL: usize = 512;
    pub const INTERMEDIATE: usize = 10240;
    pub const VOCAB: usize = 262_144;
    pub const WINDOW: usize = 512;
    pub const PLE_DIM: usize = 256;
    pub const LAYERS: usize = 42;
}

/// Benchmark settings (`kernel-bench --batches 1,8,32 --reps 50 --warmup 5 --contexts 128,4096`).
#[derive(Debug, Clone)]
pub struct Settings {
    pub batches: Vec<usize>,
    pub reps: usize,
    pub warmup: usize,
    /// Tokens already in the cache for the decode-attention timings (one row per value).
    pub contexts: Vec<usize>,
    /// Run the reference checks only, no timing.
    pub check_only: bool,
    /// Time the skinny GEMM at every k split (1, 2, 4, 8), not only its default.
    pub skinny_splits: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            batches: vec![1, 8, 32],
            reps: 50,
            warmup: 5,
            contexts: vec![128, 4096],
            check_only: false,
            skinny_splits: false,
        }
    }
}

impl Settings {
    /// Parses command-line arguments (without the program name).
    pub fn parse(args: impl IntoIterator<Item = String>) -> std::result::Result<Self, String> {
        let mut s = Self::default();
        let mut it = args.into_iter();
        while let Some(a) = it.next() {
            let mut value = |name: &str| it.next().ok_or_else(|| format!("{name} needs a value"));
            match a.as_str() {
                "--batches" => {
                    s.batches = value("--batches")?
                        .split(',')
                        .map(|b| b.trim().parse::<usize>().map_err(|e| format!("--batches: {b:?}: {e}")))
                        .collect::<std::result::Result<_, _>>()?;
                    if s.batches.is_empty() || s.batches.contains(&0) {
                        return Err("--batches: give positive batch sizes, e.g. 1,8,32".into());
                    }
                }
                "--reps" => s.reps = parse_pos("--reps", &value("--reps")?)?,
                "--warmup" => s.warmup = value("--warmup")?.parse().map_err(|e| format!("--warmup: {e}"))?,
                "--contexts" => {
                    s.contexts = value("--contexts")?
                        .split(',')
                        .map(|c| parse_pos("--contexts", c.trim()))
                        .collect::<std::result::Result<_, _>>()?
                }
                "--check-only" => s.check_only = true,
                "--skinny-splits" => s.skinny_splits = true,
                "-h" | "--help" => {
                    return Err("usage: kernel-bench [--batches 1,8,32] [--reps 50] [--warmup 5] [--contexts 128,4096] [--check-only] [--skinny-splits]".into())
                }
                other => return Err(format!("unknown argument {other:?} (try --help)")),
            }
        }
        Ok(s)
    }
}

fn parse_pos(name: &str, v: &str) -> std::result::Result<usize, String> {
    match v.parse::<usize>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(format!("{name}: {v:?} is not a positive integer")),
    }
}

pub(super) struct Row {
    pub(super) kernel: String,
    pub(super) shape: String,
    pub(super) batch: usize,
    pub(super) check: Option<CheckReport>,
    pub(super) stats: Stats,
    pub(super) bytes: f64,
}

pub(super) struct Bench<'a> {
    pub(super) gpu: &'a Gpu,
    pub(super) timer: Timer<'a>,
    pub(super) rng: Rng,
    pub(super) f32_chunk: Vec<f32>,
    pub(super) bf16_chunk: Vec<bf16>,
    pub(super) rows: Vec<Row>,
    pub(super) checks: Vec<CheckReport>,
}

impl<'a> Bench<'a> {
    pub(super) fn f32s(&self, n: usize) -> Result<CudaSlice<f32>> {
        self.gpu.upload_tiled(&self.f32_chunk, n)
    }

    pub(super) fn bf16s(&self, n: usize) -> Result<CudaSlice<bf16>> {
        self.gpu.upload_tiled(&self.bf16_chunk, n)
    }

    pub(super) fn record(
        &mut self,
        kernel: &str,
        shape: String,
        batch: usize,
        check: Option<CheckReport>,
        stats: Stats,
        bytes: f64,
    ) {
        if let Some(c) = &check {
            self.checks.push(c.clone());
        }
        self.rows.push(Row {
            kernel: kernel.into(),
            shape,
            batch,
            check,
            stats,
            bytes,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skinny_splits_is_off_by_default_and_a_flag_turns_it_on() {
        let args = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(!Settings::parse(args(&[])).unwrap().skinny_splits);
        let s = Settings::parse(args(&["--skinny-splits", "--batches", "1,16"])).unwrap();
        assert!(s.skinny_splits);
        assert_eq!(s.batches, vec![1, 16]);
    }
}
