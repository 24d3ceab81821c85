//! The kernel micro-benchmark behind `kernel-bench`: for each kernel at Gemma 4 E4B shapes and each
//! batch size, run its reference check first, then time it with CUDA events and print achieved
//! GB/s against the device-to-device copy bandwidth measured in the same run.
//!
//! Timing: warm-up launches are excluded; each repetition is bracketed by its own pair of events,
//! and the repetitions are queued behind a ~1 ms copy so the host runs ahead and no launch waits
//! for the host (the numbers are device time, not launch overhead). Inputs rotate over enough
//! buffer sets that the set in use was last touched at least 512 MB of traffic ago (8x the H200's
//! L2), except where one set alone is larger. Bytes are the fewest each op must move (each input
//! read once, each output written once).

mod argmax;
mod attention;
mod cast;
mod embedding;
mod fused;
mod geglu;
mod kv_cache;
mod matmul;
mod norm;
mod residual;
mod rope;
mod timing;

use crate::check::CheckReport;
use crate::device::Gpu;
use crate::error::Result;
use crate::rng::Rng;
use cudarc::driver::CudaSlice;
use half::bf16;
use timing::{sets_for, weight_set, Stats, Timer};

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

struct Row {
    kernel: String,
    shape: String,
    batch: usize,
    check: Option<CheckReport>,
    stats: Stats,
    bytes: f64,
}

struct Bench<'a> {
    gpu: &'a Gpu,
    timer: Timer<'a>,
    rng: Rng,
    f32_chunk: Vec<f32>,
    bf16_chunk: Vec<bf16>,
    rows: Vec<Row>,
    checks: Vec<CheckReport>,
}

impl<'a> Bench<'a> {
    fn f32s(&self, n: usize) -> Result<CudaSlice<f32>> {
        self.gpu.upload_tiled(&self.f32_chunk, n)
    }

    fn bf16s(&self, n: usize) -> Result<CudaSlice<bf16>> {
        self.gpu.upload_tiled(&self.bf16_chunk, n)
    }

    fn record(
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

/// Runs the benchmark and prints its tables; returns an error if a check failed.
pub fn run(settings: &Settings) -> std::result::Result<(), Box<dyn std::error::Error>> {
    let gpu = Gpu::new()?;
    println!(
        "device: {} ({}, {} SMs); modules compiled+loaded in {:.2} s; kernels sha256 {}",
        gpu.device_name(),
        gpu.arch(),
        gpu.multiprocessors(),
        gpu.compile_seconds(),
        crate::kernels_sha256()
    );
    println!("settings: {settings:?}");
    let seed = Rng::fresh_seed();
    println!("seed: {seed}");
    let mut rng = Rng::new(seed);
    let f32_chunk = rng.normal_vec(1 << 22, 1.0);
    let bf16_chunk = rng.normal_bf16(1 << 22, 0.02);
    let timer = Timer::new(&gpu, settings.reps, settings.warmup)?;
    let mut b = Bench {
        gpu: &gpu,
        timer,
        rng,
        f32_chunk,
        bf16_chunk,
        rows: Vec::new(),
        checks: Vec::new(),
    };

    // Copy bandwidth: 2 GiB device to device, bytes read + written.
    let copy_bytes = 2usize << 30;
    let src = b.bf16s(copy_bytes / 2)?;
    let mut dst = gpu.alloc::<bf16>(copy_bytes / 2)?;
    let copy = b.timer.time(|_| gpu.copy(&src, &mut dst))?;
    drop((src, dst));
    let copy_gbs = 2.0 * copy_bytes as f64 / (copy.median_us * 1e-6) / 1e9;
    println!(
        "device-to-device copy of {} GiB: median {:.1} us (min {:.1}, max {:.1}) = {:.0} GB/s (read + write)",
        copy_bytes >> 30,
        copy.median_us,
        copy.min_us,
        copy.max_us,
        copy_gbs
    );

    // The timing floor: an event pair around nothing.
    if !settings.check_only {
        let floor = b.timer.time(|_| Ok(()))?;
        b.record(
            "(event pair around no work: timing floor)",
            "-".into(),
            0,
            None,
            floor,
            0.0,
        );
    }
    for &batch in &settings.batches {
        bench_batch(&mut b, batch, settings)?;
    }

    println!("\nreference checks (fresh random inputs, outputs poisoned first):");
    for c in &b.checks {
        println!("  {c}");
    }
    if !settings.check_only {
        println!("\n| kernel | shape | batch | check rel_err | median us | min us | max us | MB moved | GB/s | % of copy BW |");
        println!("|---|---|---|---|---|---|---|---|---|---|");
        for r in &b.rows {
            let gbs = r.bytes / (r.stats.median_us * 1e-6) / 1e9;
            println!(
                "| {} | {} | {} | {} | {:.1} | {:.1} | {:.1} | {:.2} | {:.0} | {:.0}% |",
                r.kernel,
                r.shape,
                r.batch,
                r.check
                    .as_ref()
                    .map_or("-".to_string(), |c| format!("{:.1e}", c.rel_err)),
                r.stats.median_us,
                r.stats.min_us,
                r.stats.max_us,
                r.bytes / 1e6,
                gbs,
                100.0 * gbs / copy_gbs
            );
        }
        println!("(copy bandwidth in this run: {copy_gbs:.0} GB/s)");
    }
    let failed = b.checks.iter().filter(|c| !c.passed()).count();
    if failed > 0 {
        return Err(format!("{failed} reference check(s) failed").into());
    }
    println!("all {} reference checks passed", b.checks.len());
    Ok(())
}

fn bench_batch(b: &mut Bench<'_>, batch: usize, s: &Settings) -> Result<()> {
    let seed = b.rng.next_u64();
    embedding::bench(b, batch, seed, s)?;
    norm::bench(b, batch, seed, s)?;
    rope::bench(b, batch, seed, s)?;
    kv_cache::bench(b, batch, seed, s)?;
    attention::bench(b, batch, seed, s)?;
    geglu::bench(b, batch, seed, s)?;
    residual::bench(b, batch, seed, s)?;
    argmax::bench(b, batch, seed, s)?;
    cast::bench(b, batch, seed, s)?;
    matmul::bench(b, batch, seed, s)?;
    fused::bench(b, batch, s)
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
