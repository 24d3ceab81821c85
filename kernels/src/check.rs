//! The reference-check harness: each check (in its op family's file, e.g. [`crate::ops::norm`]) runs one
//! kernel on fresh random inputs, with its output poisoned (NaN, or all-ones bits for integers) before the
//! run, and compares with the family's f64 CPU reference by `||out - ref|| / ||ref||` against a tolerance from
//! [`crate::tolerance`]. Used by the crate's GPU tests and by the micro-benchmark before timing.

use crate::device::Gpu;
use crate::error::Result;
use crate::rng::Rng;
use crate::tolerance as tol;
use cudarc::driver::CudaSlice;
use half::bf16;

/// One check's outcome.
#[derive(Debug, Clone)]
pub struct CheckReport {
    /// Kernel and variant, e.g. "rms_norm (weight)".
    pub name: String,
    /// The sizes it ran at.
    pub shape: String,
    /// `||out - ref|| / ||ref||` (NaN if any output element was not finite, e.g. left poisoned).
    pub rel_err: f64,
    /// The tolerance it must meet.
    pub tol: f64,
}

impl CheckReport {
    pub(crate) fn new(
        name: impl Into<String>,
        shape: impl Into<String>,
        rel_err: f64,
        tol: f64,
    ) -> Self {
        Self {
            name: name.into(),
            shape: shape.into(),
            rel_err,
            tol,
        }
    }

    /// Finite and within tolerance.
    pub fn passed(&self) -> bool {
        tol::passes(self.rel_err, self.tol)
    }
}

impl std::fmt::Display for CheckReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{:<4} {:<34} {:<44} rel_err {:>9.3e} (tol {:.0e})",
            if self.passed() { "ok" } else { "FAIL" },
            self.name,
            self.shape,
            self.rel_err,
            self.tol
        )
    }
}

/// Runs checks on one [`Gpu`] with one random stream.
pub struct Checker<'a> {
    pub(crate) gpu: &'a Gpu,
    pub(crate) rng: Rng,
}

/// A device buffer of `n` NaNs (at least one element): an output no kernel has written yet.
pub(crate) fn poison_f32(gpu: &Gpu, n: usize) -> Result<CudaSlice<f32>> {
    gpu.upload(&vec![f32::NAN; n.max(1)])
}

/// Each value rounded to bf16 and back.
pub(crate) fn bf16_round(v: &[f32]) -> Vec<f32> {
    v.iter().map(|&x| bf16::from_f32(x).to_f32()).collect()
}

impl<'a> Checker<'a> {
    pub fn new(gpu: &'a Gpu, seed: u64) -> Self {
        Self {
            gpu,
            rng: Rng::new(seed),
        }
    }
}

/// bf16 values as f32 (exact).
pub(crate) fn bf16_to_f32(v: &[bf16]) -> Vec<f32> {
    v.iter().map(|x| x.to_f32()).collect()
}
