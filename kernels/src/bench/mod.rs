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
mod harness;
mod kv_cache;
mod matmul;
mod norm;
mod residual;
mod rope;
mod timing;

use crate::device::Gpu;
use crate::error::Result;
use crate::rng::Rng;
use half::bf16;
use harness::Bench;
pub use harness::{e4b, Settings};
use timing::Timer;

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
