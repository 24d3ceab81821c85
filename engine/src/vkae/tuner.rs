//! The projection autotuner: for each projection shape of a decode step, the kernel (weight-streaming GEMV,
//! tensor-core skinny GEMM or cuBLAS, at the best k split) measured fastest on the model's own weights when
//! a batch size is first seen.

use std::collections::HashMap;

use vkae_kernels::cudarc::driver::sys::CUevent_flags;
use vkae_kernels::{CudaSlice, GemmShape, Gpu};

use super::options::{ProjectionMode, VkaeOptions};
use super::weights::{FusedWeights, W};
use crate::config::TextConfig;
use crate::error::{EngineError, Result};

/// The kernel that runs one projection shape.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub enum ProjectionKernel {
    /// The weight-streaming GEMV (gemv.cu) with k split over this many of a block's warps.
    Gemv {
        kparts: usize,
    },
    /// The tensor-core skinny GEMM (gemm_skinny.cu) with k split over this many of a block's warps.
    Skinny {
        kparts: usize,
    },
    Cublas,
    /// cuBLASLt with the algorithm of this index among those its heuristic lists for the shape.
    #[cfg(feature = "ablations")]
    CublasLt {
        algo: usize,
    },
}

impl ProjectionKernel {
    pub fn name(&self) -> &'static str {
        match self {
            Self::Gemv { .. } => "GEMV",
            Self::Skinny { .. } => "skinny",
            Self::Cublas => "cuBLAS",
            #[cfg(feature = "ablations")]
            Self::CublasLt { .. } => "cuBLASLt",
        }
    }
}

/// One projection shape's measurement: mean microseconds per matrix over a pass through every weight of that
/// shape in the model (best of 6 passes, CUDA events, launched as the decode step launches them), for each
/// candidate kernel at its best k split (`None` where the kernel does not take the shape), and the choice.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize)]
pub struct ProjectionTiming {
    pub rows: usize,
    pub out: usize,
    pub inner: usize,
    pub gemv_us: Option<f64>,
    pub gemv_kparts: Option<usize>,
    pub skinny_us: Option<f64>,
    pub skinny_kparts: Option<usize>,
    pub cublas_us: f64,
    /// The fastest cuBLASLt algorithm and its index (only timed with the `ablations` feature's
    /// `cublaslt_candidates`; `None` otherwise).
    pub cublaslt_us: Option<f64>,
    pub cublaslt_algo: Option<usize>,
    pub chosen: ProjectionKernel,
}

/// The choices measured so far.
#[derive(Default)]
pub(super) struct Tuner {
    /// `(rows, out, in)` -> the kernel measured fastest for that shape.
    choices: HashMap<(usize, usize, usize), ProjectionKernel>,
    /// What the measurement saw per shape, in the order measured.
    pub(super) timings: Vec<ProjectionTiming>,
}

impl Tuner {
    /// Whether projections of `rows` rows were measured.
    pub(super) fn measured(&self, rows: usize) -> bool {
        self.timings.iter().any(|t| t.rows == rows)
    }

    /// Forgets every choice (the launch settings or the candidates changed).
    pub(super) fn clear(&mut self) {
        self.timings.clear();
        self.choices.clear();
    }

    /// Times the candidate kernels on every projection shape of a `rows`-row step (one pass over all the
    /// model's weights of that shape, candidates taking turns, best of 6 passes after a warm-up pass, CUDA
    /// events) and records the fastest per shape. The passes launch as the decode step does (programmatic
    /// launch as the options say), so a kernel that overlaps its predecessor is credited for it.
    pub(super) fn measure(
        &mut self,
        g: &Gpu,
        c: &TextConfig,
        weights: &FusedWeights,
        options: VkaeOptions,
        rows: usize,
    ) -> Result<()> {
        if rows > vkae_kernels::SKINNY_MAX_ROWS || options.projections != ProjectionMode::Measured {
            return Ok(());
        }
        let split_search = options.ablations().split_search;
        let gpu_err = |e: vkae_kernels::cudarc::driver::DriverError| {
            EngineError::Gpu(format!("timing projections: {e}"))
        };
        let results = {
            let shapes = weights.projection_shapes(c);
            let max_in = shapes.iter().map(|s| s.1).max().unwrap_or(1);
            let max_out = shapes.iter().map(|s| s.0).max().unwrap_or(1);
            let mut rng = vkae_kernels::rng::Rng::new(0x5eed ^ rows as u64);
            let x = g.upload(&rng.normal_bf16(rows * max_in, 1.0))?;
            let mut y = g.alloc::<f32>(rows * max_out)?;
            let ev = || {
                g.context()
                    .new_event(Some(CUevent_flags::CU_EVENT_DEFAULT))
                    .map_err(gpu_err)
            };
            let (start, end) = (ev()?, ev()?);
            let mut results = vec![];
            for (n, k, ws) in &shapes {
                let splits = |default: usize| {
                    if split_search {
                        vec![1, 2, 4, 8]
                    } else {
                        vec![default]
                    }
                };
                let mut candidates: Vec<ProjectionKernel> = vec![];
                if Gpu::gemv_supports(rows, *k) {
                    for kparts in splits(g.gemv_default_kparts(*n)) {
                        candidates.push(ProjectionKernel::Gemv { kparts });
                    }
                }
                if Gpu::skinny_supports(rows, *k) {
                    for kparts in splits(g.skinny_default_kparts(rows, *n)) {
                        candidates.push(ProjectionKernel::Skinny { kparts });
                    }
                }
                if candidates.is_empty() {
                    continue;
                }
                candidates.push(ProjectionKernel::Cublas);
                #[cfg(feature = "ablations")]
                if options.cublaslt_candidates() {
                    candidates.extend(checked_lt_algorithms(g, rows, *n, *k, &x, ws[0])?);
                }
                let mut best = vec![f64::INFINITY; candidates.len()];
                for round in 0..7 {
                    for (kernel, slot) in candidates.iter().zip(best.iter_mut()) {
                        start.record(g.stream()).map_err(gpu_err)?;
                        for &w in ws {
                            let dims = GemmShape {
                                m: rows,
                                n: *n,
                                k: *k,
                            };
                            run_projection(g, *kernel, &x, w, dims, &mut y)?;
                        }
                        end.record(g.stream()).map_err(gpu_err)?;
                        g.synchronize()?;
                        let us =
                            start.elapsed_ms(&end).map_err(gpu_err)? as f64 * 1e3 / ws.len() as f64;
                        if round > 0 {
                            // round 0 warms every candidate up
                            *slot = slot.min(us);
                        }
                    }
                }
                let best_of = |pick: fn(&ProjectionKernel) -> Option<usize>| {
                    candidates
                        .iter()
                        .zip(&best)
                        .filter_map(|(c, &t)| pick(c).map(|kp| (kp, t)))
                        .fold(None, |a: Option<(usize, f64)>, (kp, t)| match a {
                            Some((_, bt)) if bt <= t => a,
                            _ => Some((kp, t)),
                        })
                };
                let gemv = best_of(|c| match c {
                    ProjectionKernel::Gemv { kparts } => Some(*kparts),
                    _ => None,
                });
                let skinny = best_of(|c| match c {
                    ProjectionKernel::Skinny { kparts } => Some(*kparts),
                    _ => None,
                });
                #[cfg(feature = "ablations")]
                let lt = best_of(|c| match c {
                    ProjectionKernel::CublasLt { algo } => Some(*algo),
                    _ => None,
                });
                #[cfg(not(feature = "ablations"))]
                let lt: Option<(usize, f64)> = None;
                let cublas = candidates
                    .iter()
                    .position(|c| *c == ProjectionKernel::Cublas)
                    .expect("cuBLAS is a candidate");
                let (ci, _) = best
                    .iter()
                    .enumerate()
                    .fold(
                        (0, f64::INFINITY),
                        |a, (i, &t)| if t < a.1 { (i, t) } else { a },
                    );
                results.push(ProjectionTiming {
                    rows,
                    out: *n,
                    inner: *k,
                    gemv_us: gemv.map(|g| g.1),
                    gemv_kparts: gemv.map(|g| g.0),
                    skinny_us: skinny.map(|s| s.1),
                    skinny_kparts: skinny.map(|s| s.0),
                    cublas_us: best[cublas],
                    cublaslt_us: lt.map(|l| l.1),
                    cublaslt_algo: lt.map(|l| l.0),
                    chosen: candidates[ci],
                });
            }
            results
        };
        for r in results {
            self.choices.insert((r.rows, r.out, r.inner), r.chosen);
            self.timings.push(r);
        }
        Ok(())
    }

    /// The kernel that runs an `[m, k] x [n, k]ᵀ` projection under `options`.
    pub(super) fn kernel_for(
        &self,
        g: &Gpu,
        options: VkaeOptions,
        m: usize,
        n: usize,
        k: usize,
    ) -> ProjectionKernel {
        match options.projections {
            ProjectionMode::Gemv if Gpu::gemv_supports(m, k) => ProjectionKernel::Gemv {
                kparts: g.gemv_default_kparts(n),
            },
            ProjectionMode::Skinny if Gpu::skinny_supports(m, k) => ProjectionKernel::Skinny {
                kparts: g.skinny_default_kparts(m, n),
            },
            ProjectionMode::Measured => self
                .choices
                .get(&(m, n, k))
                .copied()
                .unwrap_or(ProjectionKernel::Cublas),
            _ => ProjectionKernel::Cublas,
        }
    }
}

/// The cuBLASLt algorithms listed for `[rows, k] x [n, k]ᵀ` whose output on `x` and the weight `w` matches
/// cuBLAS's within the tolerance the reference checks give a tensor-core product with f32 accumulation: an
/// algorithm is timed only once it has computed this shape correctly here.
#[cfg(feature = "ablations")]
fn checked_lt_algorithms(
    g: &Gpu,
    rows: usize,
    n: usize,
    k: usize,
    x: &W,
    w: &W,
) -> Result<Vec<ProjectionKernel>> {
    let algos = g.gemm_lt_algorithms(rows, n, k)?;
    let mut want = g.alloc::<f32>(rows * n)?;
    g.gemm_bf16(x, w, rows, n, k, &mut want)?;
    let want: Vec<f64> = g.download(&want)?.into_iter().map(f64::from).collect();
    let mut got = g.alloc::<f32>(rows * n)?;
    let mut passed = vec![];
    for algo in 0..algos {
        g.gemm_bf16_lt(x, w, GemmShape { m: rows, n, k }, algo, &mut got)?;
        let e = vkae_kernels::tolerance::relative_error(&g.download(&got)?, &want);
        if e <= vkae_kernels::tolerance::MMA_F32_ACCUMULATION {
            passed.push(ProjectionKernel::CublasLt { algo });
        }
    }
    Ok(passed)
}

/// `y[m, n] = x[m, k] · w[n, k]ᵀ` through `kernel`.
pub(super) fn run_projection(
    g: &Gpu,
    kernel: ProjectionKernel,
    x: &W,
    w: &W,
    dims: GemmShape,
    y: &mut CudaSlice<f32>,
) -> Result<()> {
    match kernel {
        ProjectionKernel::Gemv { kparts } => g.gemv_bf16_split(x, w, dims, kparts, y)?,
        ProjectionKernel::Skinny { kparts } => g.skinny_gemm_bf16_split(x, w, dims, kparts, y)?,
        ProjectionKernel::Cublas => g.gemm_bf16(x, w, dims.m, dims.n, dims.k, y)?,
        #[cfg(feature = "ablations")]
        ProjectionKernel::CublasLt { algo } => g.gemm_bf16_lt(x, w, dims, algo, y)?,
    }
    Ok(())
}
