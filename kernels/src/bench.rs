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

use crate::check::{AttentionCase, CheckReport, Checker};
use crate::error::{DriverContext, Result};
use crate::gpu::Gpu;
use crate::ops::KvLayout;
use crate::rng::Rng;
use crate::rope::Rope;
use cudarc::driver::{sys::CUevent_flags, CudaEvent, CudaSlice, CudaView};
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

/// Median, min and max of one timing, in microseconds.
#[derive(Debug, Clone, Copy)]
pub struct Stats {
    pub median_us: f64,
    pub min_us: f64,
    pub max_us: f64,
}

impl Stats {
    fn of(mut v: Vec<f64>) -> Self {
        v.sort_by(|a, b| a.total_cmp(b));
        let n = v.len();
        let median = if n % 2 == 1 {
            v[n / 2]
        } else {
            0.5 * (v[n / 2 - 1] + v[n / 2])
        };
        Self {
            median_us: median,
            min_us: v[0],
            max_us: v[n - 1],
        }
    }
}

/// Bytes the rotation keeps between two uses of the same input set.
const ROTATE_BYTES: usize = 512 << 20;

fn sets_for(footprint: usize) -> usize {
    ROTATE_BYTES.div_ceil(footprint.max(1)).clamp(1, 64)
}

/// Iteration `i`'s copy of a weight matrix of `len` elements among `sets` copies laid end to end in `ws`, so that
/// consecutive timed launches read weights that are no longer in L2.
fn weight_set(ws: &CudaSlice<bf16>, len: usize, i: usize, sets: usize) -> CudaView<'_, bf16> {
    let j = i % sets;
    ws.slice(len * j..len * (j + 1))
}

struct Timer<'a> {
    gpu: &'a Gpu,
    lead_src: CudaSlice<u8>,
    lead_dst: CudaSlice<u8>,
    starts: Vec<CudaEvent>,
    ends: Vec<CudaEvent>,
    warmup: usize,
}

impl<'a> Timer<'a> {
    fn new(gpu: &'a Gpu, reps: usize, warmup: usize) -> Result<Self> {
        let mk = || {
            gpu.context()
                .new_event(Some(CUevent_flags::CU_EVENT_DEFAULT))
                .ctx(|| "creating a timing event".into())
        };
        let starts = (0..reps).map(|_| mk()).collect::<Result<Vec<_>>>()?;
        let ends = (0..reps).map(|_| mk()).collect::<Result<Vec<_>>>()?;
        Ok(Self {
            gpu,
            lead_src: gpu.alloc::<u8>(2 << 30)?,
            lead_dst: gpu.alloc::<u8>(2 << 30)?,
            starts,
            ends,
            warmup,
        })
    }

    /// Times `f(i)` (i = repetition index, for rotation) once per event pair.
    fn time(&mut self, mut f: impl FnMut(usize) -> Result<()>) -> Result<Stats> {
        for i in 0..self.warmup {
            f(i)?;
        }
        self.gpu.synchronize()?;
        self.gpu.copy(&self.lead_src, &mut self.lead_dst)?; // keeps the device busy while we queue
        let stream = self.gpu.stream().clone();
        for i in 0..self.starts.len() {
            self.starts[i]
                .record(&stream)
                .ctx(|| "recording an event".into())?;
            f(self.warmup + i)?;
            self.ends[i]
                .record(&stream)
                .ctx(|| "recording an event".into())?;
        }
        self.gpu.synchronize()?;
        let mut us = Vec::with_capacity(self.starts.len());
        for (s, e) in self.starts.iter().zip(&self.ends) {
            us.push(s.elapsed_ms(e).ctx(|| "reading an event time".into())? as f64 * 1e3);
        }
        Ok(Stats::of(us))
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
    use e4b::*;
    let gpu = b.gpu;
    let seed = b.rng.next_u64();
    let check_only = s.check_only;

    // ---- embedding gather (check at a small vocab; time on the full 262144 x 2560 table)
    let check = Checker::new(gpu, seed).embed(batch, HIDDEN, 4096)?;
    if !check_only {
        let table = b.bf16s(VOCAB * HIDDEN)?;
        let ids: Vec<Vec<u32>> = (0..64)
            .map(|_| {
                (0..batch)
                    .map(|_| b.rng.below(VOCAB as u64) as u32)
                    .collect()
            })
            .collect();
        let ids = ids
            .iter()
            .map(|v| gpu.upload(v))
            .collect::<Result<Vec<_>>>()?;
        let mut out = gpu.alloc::<f32>(batch * HIDDEN)?;
        let st = b
            .timer
            .time(|i| gpu.embed(&table, &ids[i % ids.len()], batch, HIDDEN, 50.5, &mut out))?;
        b.record(
            "embed (bf16 gather x scale)",
            format!("[{batch}] of [{VOCAB}, {HIDDEN}]"),
            batch,
            Some(check),
            st,
            (batch * HIDDEN * 6) as f64,
        );
    } else {
        b.checks.push(check);
    }

    // ---- RMSNorm: hidden rows (weight), q-norm rows (weight, hd 256), v-norm (scale-free, hd 512)
    for (rows, cols, weighted, label) in [
        (batch, HIDDEN, true, "rms_norm (hidden, weight)"),
        (
            batch * HEADS,
            HEAD_DIM_SLIDING,
            true,
            "rms_norm (q heads, weight)",
        ),
        (
            batch * KV_HEADS,
            HEAD_DIM_GLOBAL,
            false,
            "rms_norm (v heads, scale-free)",
        ),
    ] {
        let check = Checker::new(gpu, seed ^ rows as u64).rms_norm(rows, cols, weighted, false)?;
        if check_only {
            b.checks.push(check);
            continue;
        }
        let n = rows * cols;
        let sets = sets_for(n * 8);
        let xs = b.f32s(n * sets)?;
        let w = b.bf16s(cols)?;
        let mut out = gpu.alloc::<f32>(n * sets)?;
        let st = b.timer.time(|i| {
            let k = i % sets;
            gpu.rms_norm(
                &xs.slice(k * n..(k + 1) * n),
                weighted.then_some(&w),
                1e-6,
                rows,
                cols,
                &mut out.slice_mut(k * n..(k + 1) * n),
            )
        })?;
        b.record(
            label,
            format!("[{rows}, {cols}]"),
            batch,
            Some(check),
            st,
            (n * 8 + cols * 2) as f64,
        );
    }

    // ---- RoPE on q: sliding (default, hd 256) and global (proportional, hd 512)
    for rope in [
        Rope::Default {
            theta: 1e4,
            head_dim: HEAD_DIM_SLIDING,
        },
        Rope::Proportional {
            theta: 1e6,
            partial_rotary_factor: 0.25,
            head_dim: HEAD_DIM_GLOBAL,
        },
    ] {
        let hd = rope.head_dim();
        let check = Checker::new(gpu, seed ^ hd as u64).rope(batch, HEADS, rope, 131072)?;
        if check_only {
            b.checks.push(check);
            continue;
        }
        let n = batch * HEADS * hd;
        let sets = sets_for(n * 8);
        let mut xs = b.f32s(n * sets)?;
        let pos: Vec<i32> = (0..batch).map(|_| b.rng.below(131072) as i32).collect();
        let (dp, df) = (gpu.upload(&pos)?, gpu.upload(&rope.inv_freq())?);
        let st = b.timer.time(|i| {
            let k = i % sets;
            gpu.rope(
                &mut xs.slice_mut(k * n..(k + 1) * n),
                &dp,
                &df,
                batch,
                HEADS,
                hd,
            )
        })?;
        let name = if hd == HEAD_DIM_SLIDING {
            "rope (q, default 1e4)"
        } else {
            "rope (q, proportional 0.25, 1e6)"
        };
        b.record(
            name,
            format!("[{batch}, {HEADS}, {hd}]"),
            batch,
            Some(check),
            st,
            (n * 8) as f64,
        );
    }

    // ---- KV append (global layer shape)
    {
        let check = Checker::new(gpu, seed ^ 77).kv_append(batch, 1, KV_HEADS, HEAD_DIM_GLOBAL)?;
        if check_only {
            b.checks.push(check);
        } else {
            let max_ctx = s.contexts.iter().copied().max().unwrap_or(0);
            let layout = KvLayout {
                num_seqs: batch,
                capacity: max_ctx + 64,
                kv_heads: KV_HEADS,
                head_dim: HEAD_DIM_GLOBAL,
            };
            let width = KV_HEADS * HEAD_DIM_GLOBAL;
            let (kn, vn) = (b.f32s(batch * width)?, b.f32s(batch * width)?);
            let mut kc = gpu.alloc::<bf16>(layout.elements())?;
            let mut vc = gpu.alloc::<bf16>(layout.elements())?;
            let seqs: Vec<i32> = (0..batch as i32).collect();
            let ds = gpu.upload(&seqs)?;
            let pos: Vec<Vec<i32>> = (0..64).map(|i| vec![(max_ctx + i) as i32; batch]).collect();
            let dps = pos
                .iter()
                .map(|p| gpu.upload(p))
                .collect::<Result<Vec<_>>>()?;
            let st = b.timer.time(|i| {
                gpu.kv_append(&kn, &vn, &ds, &dps[i % 64], batch, layout, &mut kc, &mut vc)
            })?;
            b.record(
                "kv_append (bf16 cache)",
                format!("[{batch}, {KV_HEADS}, {HEAD_DIM_GLOBAL}]"),
                batch,
                Some(check),
                st,
                (batch * width * 12) as f64,
            );
        }
    }

    // ---- decode attention: sliding (hd 256, window 512) and global (hd 512, full), at each context
    for (hd, window) in [(HEAD_DIM_SLIDING, Some(WINDOW)), (HEAD_DIM_GLOBAL, None)] {
        let case = AttentionCase {
            num_seqs: batch,
            context: 1024,
            new_tokens: 1,
            heads: HEADS,
            kv_heads: KV_HEADS,
            head_dim: hd,
            window,
            max_keys: None,
            capacity: 1024 + 1,
            bf16_out: false,
            path: Default::default(),
        };
        let check = Checker::new(gpu, seed ^ (hd as u64) << 8).attention(case)?;
        // The VKAE path's form (merged in the kernel, a round of keys at a time), checked on the same case.
        let rounds_check = Checker::new(gpu, seed ^ (hd as u64) << 9).attention(AttentionCase {
            path: crate::AttentionPath {
                merge_in_kernel: true,
                softmax_per_round: true,
            },
            ..case
        })?;
        if check_only {
            b.checks.push(check);
            b.checks.push(rounds_check);
            continue;
        }
        for &context in &s.contexts {
            let layout = KvLayout {
                num_seqs: batch,
                capacity: context + 1,
                kv_heads: KV_HEADS,
                head_dim: hd,
            };
            let kc = b.bf16s(layout.elements())?;
            let vc = b.bf16s(layout.elements())?;
            let q = b.f32s(batch * HEADS * hd)?;
            let mut out = gpu.alloc::<f32>(batch * HEADS * hd)?;
            let seqs: Vec<i32> = (0..batch as i32).collect();
            let (ds, dp) = (
                gpu.upload(&seqs)?,
                gpu.upload(&vec![context as i32; batch])?,
            );
            let st = b.timer.time(|_| {
                gpu.attention(
                    &q, &kc, &vc, &ds, &dp, batch, HEADS, layout, window, 1.0, &mut out,
                )
            })?;
            let keys = window.map_or(context + 1, |w| w.min(context + 1));
            let bytes = batch * keys * KV_HEADS * hd * 2 * 2 + 2 * batch * HEADS * hd * 4;
            let name = match window {
                Some(w) => format!("attention decode (window {w})"),
                None => "attention decode (full)".to_string(),
            };
            let splits = gpu.attention_splits(batch, HEADS);
            // The check is listed once; every context row shows it.
            b.rows.push(Row {
                kernel: name.clone(),
                shape: format!("ctx {context} h {HEADS}/{KV_HEADS} hd {hd} splits {splits}"),
                batch,
                check: Some(check.clone()),
                stats: st,
                bytes: bytes as f64,
            });
            // The same with the split count bounded by the keys (the VKAE path knows its context): merged by the
            // separate launch, by the last split block (the VKAE path's default), and that with its online
            // softmax a round of keys at a time.
            let splits = splits.min(keys.div_ceil(crate::ops::ATTENTION_KEYS_PER_SPLIT));
            // One timing of this context's case through `attention_with_path`, for `heads` query heads.
            let time_path = |b: &mut Bench<'_>,
                             out: &mut CudaSlice<f32>,
                             heads: usize,
                             path: crate::AttentionPath| {
                b.timer.time(|_| {
                    gpu.attention_with_path(
                        &q,
                        &kc,
                        &vc,
                        &ds,
                        &dp,
                        batch,
                        heads,
                        layout,
                        window,
                        1.0,
                        Some(keys),
                        path,
                        &mut *out,
                    )
                })
            };
            for (path, form) in [
                (crate::AttentionPath::default(), ""),
                (
                    crate::AttentionPath {
                        merge_in_kernel: true,
                        ..Default::default()
                    },
                    ", merged in kernel",
                ),
                (
                    crate::AttentionPath {
                        merge_in_kernel: true,
                        softmax_per_round: true,
                    },
                    ", merged in kernel, softmax per round of keys",
                ),
            ] {
                let st = time_path(b, &mut out, HEADS, path)?;
                b.rows.push(Row {
                    kernel: format!("{name}, splits from context{form}"),
                    shape: format!("ctx {context} h {HEADS}/{KV_HEADS} hd {hd} splits {splits}"),
                    batch,
                    check: None,
                    stats: st,
                    bytes: bytes as f64,
                });
            }
            // Full attention with only one query head per KV head (2/2): the same KV heads and keys, a quarter of
            // the blocks, so a quarter of what E4B's 8/2 blocks read (each of a group's 4 query heads re-reads
            // its KV head). About as long as the 8/2 row: each block's own chain of loads binds, and sharing K/V
            // across a group would not help; about a quarter: what the blocks read together binds, and loading
            // K/V once per group is the lever.
            if window.is_none() {
                let rounds = crate::AttentionPath {
                    merge_in_kernel: true,
                    softmax_per_round: true,
                };
                let st = time_path(b, &mut out, KV_HEADS, rounds)?;
                let splits = gpu
                    .attention_splits(batch, KV_HEADS)
                    .min(keys.div_ceil(crate::ops::ATTENTION_KEYS_PER_SPLIT));
                b.rows.push(Row {
                    kernel: format!(
                        "{name}, splits from context, merged in kernel, softmax per round, one query head per KV head"
                    ),
                    shape: format!("ctx {context} h {KV_HEADS}/{KV_HEADS} hd {hd} splits {splits}"),
                    batch,
                    check: None,
                    stats: st,
                    bytes: (batch * keys * KV_HEADS * hd * 2 * 2 + 2 * batch * KV_HEADS * hd * 4) as f64,
                });
            }
        }
        b.checks.push(check);
        b.checks.push(rounds_check);
    }

    // ---- GeGLU (fused gate|up output of the MLP)
    {
        let check = Checker::new(gpu, seed ^ 99).geglu(batch, INTERMEDIATE, true)?;
        if check_only {
            b.checks.push(check);
        } else {
            let n = batch * INTERMEDIATE;
            let sets = sets_for(n * 12);
            let gu = b.f32s(2 * n * sets)?;
            let mut out = gpu.alloc::<f32>(n * sets)?;
            let st = b.timer.time(|i| {
                let k = i % sets;
                let g = gu.slice(2 * n * k..2 * n * (k + 1));
                gpu.geglu(
                    &g,
                    2 * INTERMEDIATE,
                    &g.slice(INTERMEDIATE..),
                    2 * INTERMEDIATE,
                    batch,
                    INTERMEDIATE,
                    &mut out.slice_mut(n * k..n * (k + 1)),
                )
            })?;
            b.record(
                "geglu (fused gate|up)",
                format!("[{batch}, {INTERMEDIATE}]"),
                batch,
                Some(check),
                st,
                (n * 12) as f64,
            );
        }
    }

    // ---- residual add, layer scale
    {
        let checks = Checker::new(gpu, seed ^ 5).residual(batch * HIDDEN)?;
        if check_only {
            b.checks.extend(checks);
        } else {
            let n = batch * HIDDEN;
            let sets = sets_for(n * 12);
            let mut acc = b.f32s(n * sets)?;
            let x = b.f32s(n * sets)?;
            let st = b.timer.time(|i| {
                let k = i % sets;
                gpu.add_inplace(
                    &mut acc.slice_mut(n * k..n * (k + 1)),
                    &x.slice(n * k..n * (k + 1)),
                    n,
                )
            })?;
            b.record(
                "add (residual, in place)",
                format!("[{batch}, {HIDDEN}]"),
                batch,
                Some(checks[1].clone()),
                st,
                (n * 12) as f64,
            );
            let st = b.timer.time(|i| {
                let k = i % sets;
                gpu.scale_inplace(&mut acc.slice_mut(n * k..n * (k + 1)), 0.9, n)
            })?;
            b.record(
                "scale (layer_scalar, in place)",
                format!("[{batch}, {HIDDEN}]"),
                batch,
                Some(checks[3].clone()),
                st,
                (n * 8) as f64,
            );
        }
    }

    // ---- logits: softcap and argmax over [batch, 262144]
    {
        let n = batch * VOCAB;
        let c1 = Checker::new(gpu, seed ^ 11).softcap(n)?;
        let c2 = Checker::new(gpu, seed ^ 12).argmax(batch, VOCAB)?;
        if check_only {
            b.checks.extend([c1, c2]);
        } else {
            let sets = sets_for(n * 8);
            let mut x = b.f32s(n * sets)?;
            let st = b.timer.time(|i| {
                let k = i % sets;
                gpu.softcap_inplace(&mut x.slice_mut(n * k..n * (k + 1)), 30.0, n)
            })?;
            b.record(
                "softcap (30, in place)",
                format!("[{batch}, {VOCAB}]"),
                batch,
                Some(c1),
                st,
                (n * 8) as f64,
            );
            let mut out = gpu.alloc::<u32>(batch)?;
            let sets = sets_for(n * 4);
            let st = b.timer.time(|i| {
                let k = i % sets;
                gpu.argmax_rows(
                    &x.slice(n * (k % (x.len() / n))..n * (k % (x.len() / n) + 1)),
                    batch,
                    VOCAB,
                    &mut out,
                )
            })?;
            b.record(
                "argmax_rows",
                format!("[{batch}, {VOCAB}]"),
                batch,
                Some(c2),
                st,
                (n * 4) as f64,
            );
        }
    }

    // ---- casts at the MLP width
    {
        let checks = Checker::new(gpu, seed ^ 13).casts(batch * INTERMEDIATE)?;
        if check_only {
            b.checks.extend(checks);
        } else {
            let n = batch * INTERMEDIATE;
            let sets = sets_for(n * 6);
            let x = b.f32s(n * sets)?;
            let mut y = gpu.alloc::<bf16>(n * sets)?;
            let st = b.timer.time(|i| {
                let k = i % sets;
                gpu.cast_f32_to_bf16(
                    &x.slice(n * k..n * (k + 1)),
                    n,
                    &mut y.slice_mut(n * k..n * (k + 1)),
                )
            })?;
            b.record(
                "cast f32->bf16",
                format!("[{batch}, {INTERMEDIATE}]"),
                batch,
                Some(checks[0].clone()),
                st,
                (n * 6) as f64,
            );
        }
    }

    // ---- projections: cuBLAS bf16 GEMM at the E4B shapes (weights rotated), and `linear` (cast + GEMM)
    let q_out = HEADS * HEAD_DIM_SLIDING;
    let qkv_sliding = q_out + 2 * KV_HEADS * HEAD_DIM_SLIDING;
    let qkv_global = (HEADS + 2 * KV_HEADS) * HEAD_DIM_GLOBAL;
    let projections: [(&str, usize, usize); 11] = [
        ("q (sliding)", q_out, HIDDEN),
        ("q|k|v fused (sliding)", qkv_sliding, HIDDEN),
        ("q|k|v fused (global)", qkv_global, HIDDEN),
        ("PLE model projection", LAYERS * PLE_DIM, HIDDEN),
        ("PLE per-layer up", HIDDEN, PLE_DIM),
        ("k or v (sliding)", KV_HEADS * HEAD_DIM_SLIDING, HIDDEN),
        ("o (sliding)", HIDDEN, q_out),
        ("gate+up fused", 2 * INTERMEDIATE, HIDDEN),
        ("down", HIDDEN, INTERMEDIATE),
        ("LM head", VOCAB, HIDDEN),
        ("PLE gate", PLE_DIM, HIDDEN),
    ];
    for (label, n, k) in projections {
        let sample = if n > 4096 { Some(256) } else { None };
        let check =
            Checker::new(gpu, seed ^ n as u64 ^ (k as u64) << 20).linear(batch, n, k, sample)?;
        let skinny_check = if Gpu::skinny_supports(batch, k) {
            Some(Checker::new(gpu, seed ^ 0x5c1d ^ n as u64).skinny(batch, n, k, sample)?)
        } else {
            None
        };
        // cuBLASLt's listed algorithms for the shape, each checked (a shape with none listed fails its check).
        let lt_checks = Checker::new(gpu, seed ^ 0x17a1 ^ n as u64 ^ (batch as u64) << 40)
            .gemm_lt(batch, n, k, sample)?;
        if check_only {
            b.checks.push(check);
            b.checks.extend(skinny_check);
            b.checks.extend(lt_checks);
            continue;
        }
        let wbytes = n * k * 2;
        let sets = sets_for(wbytes);
        let ws = b.bf16s(n * k * sets)?;
        let x = b.bf16s(batch * k)?;
        let xf = b.f32s(batch * k)?;
        let mut y = gpu.alloc::<f32>(batch * n)?;
        let st = b
            .timer
            .time(|i| gpu.gemm_bf16(&x, &weight_set(&ws, n * k, i, sets), batch, n, k, &mut y))?;
        let bytes = (wbytes + batch * k * 2 + batch * n * 4) as f64;
        b.record(
            &format!("gemm_bf16 {label}"),
            format!("[{batch}, {k}] x [{n}, {k}]^T"),
            batch,
            Some(check.clone()),
            st,
            bytes,
        );
        // Every listed algorithm is timed; the fastest is reported with its own check, the others' checks are
        // kept in the summary.
        let algos = gpu.gemm_lt_algorithms(batch, n, k)?;
        let mut fastest: Option<(usize, Stats)> = None;
        for algo in 0..algos {
            let st = b.timer.time(|i| {
                gpu.gemm_bf16_lt(
                    &x,
                    &weight_set(&ws, n * k, i, sets),
                    batch,
                    n,
                    k,
                    algo,
                    &mut y,
                )
            })?;
            if fastest.is_none_or(|(_, f)| st.median_us < f.median_us) {
                fastest = Some((algo, st));
            }
        }
        if let Some((algo, st)) = fastest {
            for (a, c) in lt_checks.iter().enumerate() {
                if a != algo {
                    b.checks.push(c.clone());
                }
            }
            b.record(
                &format!(
                    "gemm_bf16_lt {label} (cuBLASLt, fastest of {algos} listed: algorithm {algo})"
                ),
                format!("[{batch}, {k}] x [{n}, {k}]^T"),
                batch,
                lt_checks.get(algo).cloned(),
                st,
                (wbytes + batch * k * 2 + batch * n * 4) as f64,
            );
        } else {
            b.checks.extend(lt_checks);
        }
        let st = b
            .timer
            .time(|i| gpu.linear(&xf, &weight_set(&ws, n * k, i, sets), batch, n, k, &mut y))?;
        let bytes = (wbytes + batch * k * 4 + batch * n * 4) as f64;
        b.record(
            &format!("linear {label} (cast+gemm)"),
            format!("[{batch}, {k}] x [{n}, {k}]^T"),
            batch,
            None,
            st,
            bytes,
        );
        if Gpu::gemv_supports(batch, k) {
            let check = Checker::new(gpu, seed ^ 0x9e37 ^ n as u64).gemv(batch, n, k, sample)?;
            let st = b.timer.time(|i| {
                gpu.gemv_bf16(&x, &weight_set(&ws, n * k, i, sets), batch, n, k, &mut y)
            })?;
            let bytes = (wbytes + batch * k * 2 + batch * n * 4) as f64;
            b.record(
                &format!("gemv_bf16 {label} (weight streaming)"),
                format!("[{batch}, {k}] x [{n}, {k}]^T"),
                batch,
                Some(check),
                st,
                bytes,
            );
        }
        if let Some(check) = skinny_check {
            let default = gpu.skinny_default_kparts(batch, n);
            let splits = if s.skinny_splits {
                vec![1, 2, 4, 8]
            } else {
                vec![default]
            };
            for kparts in splits {
                let st = b.timer.time(|i| {
                    gpu.skinny_gemm_bf16_split(
                        &x,
                        &weight_set(&ws, n * k, i, sets),
                        batch,
                        n,
                        k,
                        kparts,
                        &mut y,
                    )
                })?;
                let bytes = (wbytes + batch * k * 2 + batch * n * 4) as f64;
                // The check ran at the default split; the others are covered by the GPU tests.
                let (mark, row_check) = if kparts == default {
                    (", default", Some(check.clone()))
                } else {
                    ("", None)
                };
                b.record(
                    &format!("skinny_gemm_bf16 {label} (tensor cores, kparts {kparts}{mark})"),
                    format!("[{batch}, {k}] x [{n}, {k}]^T"),
                    batch,
                    row_check,
                    st,
                    bytes,
                );
            }
        }
    }
    bench_fused(b, batch, s)
}

/// The VKAE path's fused kernels at E4B shapes (check first, then time).
fn bench_fused(b: &mut Bench<'_>, batch: usize, s: &Settings) -> Result<()> {
    use e4b::*;
    let gpu = b.gpu;
    let seed = b.rng.next_u64();
    let layers = 42;
    let mut c = Checker::new(gpu, seed);
    let norm_checks = c.residual_rms_norm(batch, HIDDEN, true)?;
    let sliding = Rope::Default {
        theta: 1e4,
        head_dim: HEAD_DIM_SLIDING,
    };
    let global = Rope::Proportional {
        theta: 1e6,
        partial_rotary_factor: 0.25,
        head_dim: HEAD_DIM_GLOBAL,
    };
    let qkv_checks = [
        c.qk_norm_rope_kv(batch, HEADS, KV_HEADS, sliding, Some(true), 512)?,
        c.qk_norm_rope_kv(batch, HEADS, KV_HEADS, global, Some(true), 512)?,
    ];
    let ple_check = c.ple_combine(batch, layers, PLE_DIM, 64)?;
    let sa_checks = c.softcap_argmax(batch, VOCAB)?;
    let gg_check = c.geglu_to_bf16(batch, INTERMEDIATE)?;
    // The GEMV with GeGLU in its epilogue (<= 8 rows): the MLP's [gate; up] and the per-layer-input gate.
    let epilogue_checks = if Gpu::gemv_supports(batch, HIDDEN) {
        Some((
            c.gemv_geglu(
                batch,
                INTERMEDIATE,
                HIDDEN,
                gpu.gemv_default_kparts(2 * INTERMEDIATE),
                true,
            )?,
            c.gemv_geglu(
                batch,
                PLE_DIM,
                HIDDEN,
                gpu.gemv_default_kparts(PLE_DIM),
                false,
            )?,
        ))
    } else {
        None
    };
    if s.check_only {
        b.checks.extend(norm_checks);
        b.checks.extend(qkv_checks.into_iter().flatten());
        b.checks.extend([ple_check, gg_check]);
        b.checks.extend(sa_checks);
        b.checks
            .extend(epilogue_checks.into_iter().flat_map(|(h, w)| [h, w]));
        return Ok(());
    }
    for extra in norm_checks.iter().skip(1) {
        b.checks.push(extra.clone());
    }
    // residual + norm: read x, o, write x, two bf16 outputs.
    let n = batch * HIDDEN;
    let (mut x, o) = (b.f32s(n)?, b.f32s(n)?);
    let w = b.bf16s(HIDDEN)?;
    let (mut on, mut ox) = (b.bf16s(n)?, b.bf16s(n)?);
    let st = b.timer.time(|_| {
        gpu.residual_rms_norm(
            &mut x,
            Some(&o),
            Some(&w),
            1.0,
            Some(&w),
            Some(&mut on),
            Some(&mut ox),
            batch,
            HIDDEN,
            1e-6,
        )
    })?;
    b.record(
        "residual_rms_norm (add + 2 norms, bf16 outs)",
        format!("[{batch}, {HIDDEN}]"),
        batch,
        Some(norm_checks[0].clone()),
        st,
        (n * (4 * 3 + 2 * 2)) as f64,
    );
    // q/k/v norms + rope + KV write, sliding (hd 256) and global (hd 512) layers.
    for (rope, checks) in [sliding, global].into_iter().zip(qkv_checks) {
        let hd = rope.head_dim();
        let stride = (HEADS + 2 * KV_HEADS) * hd;
        let layout = crate::QkvLayout {
            heads: HEADS,
            kv_heads: KV_HEADS,
            head_dim: hd,
            row_stride: stride,
            k_col: HEADS * hd,
            v_col: (HEADS + KV_HEADS) * hd,
        };
        let kv = KvLayout {
            num_seqs: batch,
            capacity: 1024,
            kv_heads: KV_HEADS,
            head_dim: hd,
        };
        let qkv = b.f32s(batch * stride)?;
        let mut q = b.f32s(batch * HEADS * hd)?;
        let qn = b.bf16s(hd)?;
        let freq = gpu.upload(&rope.inv_freq())?;
        let seqs = gpu.upload(&(0..batch as i32).collect::<Vec<_>>())?;
        let pos = gpu.upload(&vec![700i32; batch])?;
        let (mut kc, mut vc) = (
            gpu.alloc::<bf16>(kv.elements())?,
            gpu.alloc::<bf16>(kv.elements())?,
        );
        let st = b.timer.time(|_| {
            gpu.qk_norm_rope_kv(
                &qkv,
                layout,
                &mut q,
                &qn,
                Some(&qn),
                &freq,
                &seqs,
                &pos,
                batch,
                Some((kv, &mut kc, &mut vc)),
                1e-6,
            )
        })?;
        for extra in checks.iter().skip(1) {
            b.checks.push(extra.clone());
        }
        b.record(
            "qk_norm_rope_kv (q/k/v norm, rope, KV write)",
            format!("[{batch}, {stride}] hd {hd}"),
            batch,
            Some(checks[0].clone()),
            st,
            (batch * (stride * 4 + HEADS * hd * 4 + 2 * KV_HEADS * hd * 2)) as f64,
        );
    }
    // Per-layer inputs: projection (f32) + table row (bf16) -> f32.
    let width = layers * PLE_DIM;
    let proj = b.f32s(batch * width)?;
    let table = b.bf16s(64 * width)?;
    let ids = gpu.upload(&(0..batch as u32).map(|i| i % 64).collect::<Vec<_>>())?;
    let nw = b.bf16s(PLE_DIM)?;
    let mut out = b.f32s(batch * width)?;
    let st = b.timer.time(|_| {
        gpu.ple_combine(
            &proj,
            &table,
            &ids,
            &nw,
            batch,
            layers,
            PLE_DIM,
            [0.02, 16.0, 0.7],
            1e-6,
            &mut out,
        )
    })?;
    b.record(
        "ple_combine",
        format!("[{batch}, {layers} x {PLE_DIM}]"),
        batch,
        Some(ple_check),
        st,
        (batch * width * (4 + 2 + 4)) as f64,
    );
    // Soft-cap + argmax over the logits (read-only: greedy ids only), vs the unfused pair.
    let mut logits = b.f32s(batch * VOCAB)?;
    let mut ids = gpu.alloc::<u32>(batch)?;
    gpu.reserve_scratch(crate::ScratchLimits {
        argmax_rows: batch,
        argmax_cols: VOCAB,
        ..Default::default()
    })?;
    let st = b
        .timer
        .time(|_| gpu.softcap_argmax(&mut logits, batch, VOCAB, 30.0, false, &mut ids))?;
    b.checks.push(sa_checks[1].clone());
    b.record(
        "softcap_argmax (fused, ids only)",
        format!("[{batch}, {VOCAB}]"),
        batch,
        Some(sa_checks[0].clone()),
        st,
        (batch * VOCAB * 4) as f64,
    );
    let gu = b.f32s(batch * 2 * INTERMEDIATE)?;
    let mut act = b.bf16s(batch * INTERMEDIATE)?;
    let st = b.timer.time(|_| {
        gpu.geglu_to_bf16(
            &gu,
            2 * INTERMEDIATE,
            &gu.slice(INTERMEDIATE..),
            2 * INTERMEDIATE,
            batch,
            INTERMEDIATE,
            &mut act,
        )
    })?;
    b.record(
        "geglu_to_bf16 (fused gate|up)",
        format!("[{batch}, {INTERMEDIATE}]"),
        batch,
        Some(gg_check),
        st,
        (batch * INTERMEDIATE * (8 + 2)) as f64,
    );
    if let Some((halves_check, with_check)) = epilogue_checks {
        // Weights rotated past L2 as for the plain projections; bytes = weights + x + the bf16 output (+ z).
        let (n, k) = (2 * INTERMEDIATE, HIDDEN);
        let sets = sets_for(n * k * 2);
        let ws = b.bf16s(n * k * sets)?;
        let x = b.bf16s(batch * k)?;
        let kparts = gpu.gemv_default_kparts(n);
        let st = b.timer.time(|i| {
            gpu.gemv_bf16_geglu_halves(
                &x,
                &weight_set(&ws, n * k, i, sets),
                batch,
                INTERMEDIATE,
                k,
                kparts,
                &mut act,
            )
        })?;
        b.record(
            "gemv_bf16 + GeGLU epilogue (gate|up halves)",
            format!("[{batch}, {k}] x [{n}, {k}]^T -> [{batch}, {INTERMEDIATE}] bf16"),
            batch,
            Some(halves_check),
            st,
            (n * k * 2 + batch * k * 2 + batch * INTERMEDIATE * 2) as f64,
        );
        let (n, zw) = (PLE_DIM, layers * PLE_DIM);
        let sets = sets_for(n * k * 2);
        let ws = b.bf16s(n * k * sets)?;
        let z = b.f32s(batch * zw)?;
        let mut pact = b.bf16s(batch * n)?;
        let kparts = gpu.gemv_default_kparts(n);
        let st = b.timer.time(|i| {
            gpu.gemv_bf16_geglu_with(
                &x,
                &weight_set(&ws, n * k, i, sets),
                batch,
                n,
                k,
                kparts,
                &z,
                zw,
                &mut pact,
            )
        })?;
        b.record(
            "gemv_bf16 + GeGLU epilogue (per-layer gate x input)",
            format!("[{batch}, {k}] x [{n}, {k}]^T -> [{batch}, {n}] bf16"),
            batch,
            Some(with_check),
            st,
            (n * k * 2 + batch * k * 2 + batch * n * (4 + 2)) as f64,
        );
    }
    Ok(())
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
