//! Projection GEMMs `y[m, n] = x[m, k] · w[n, k]ᵀ` (bf16 operands, f32 accumulation): cuBLAS ([`cublas`]), the
//! weight-streaming GEMV for 1..=8 rows ([`gemv`]), the tensor-core skinny GEMM for 1..=32 rows ([`skinny`]),
//! cuBLASLt with a chosen algorithm ([`cublas_lt`], `ablations` feature), and the operand checks they share.

pub mod cublas;
#[cfg(feature = "ablations")]
pub mod cublas_lt;
pub mod gemv;
pub mod skinny;

use crate::check::{bf16_round, poison_f32, CheckReport, Checker};
use crate::device::launch::need;
use crate::device::Gpu;
use crate::error::{shape, Result};
use crate::layout::GemmShape;
use crate::tolerance::relative_error;
use cudarc::driver::DevicePtr;
use half::bf16;

/// The scratch slots the projections keep in the [`Gpu`]'s arena.
pub(crate) mod scratch_names {
    /// The bf16 copy of an f32 activation ([`crate::Gpu::linear`]).
    pub(crate) const LINEAR_BF16: &str = "linear.x_bf16";
}

/// Checks that `x`, `w` and `y` (their lengths, in that order) hold `[m, k]`, `[n, k]` and `[m, n]`: the
/// operands of `y = x · wᵀ`, for every projection GEMM entry point; the error names the short one.
pub(crate) fn gemm_operands(
    op: &'static str,
    lens: [usize; 3],
    m: usize,
    n: usize,
    k: usize,
) -> Result<()> {
    for (what, have, want) in [
        ("x", lens[0], m * k),
        ("w", lens[1], n * k),
        ("y", lens[2], m * n),
    ] {
        if have < want {
            return Err(shape(
                op,
                format!("{what} holds {have} elements, [m={m}, n={n}, k={k}] needs {want}"),
            ));
        }
    }
    Ok(())
}

impl Gpu {
    /// The checks the weight-streaming kernels (the GEMV, the skinny GEMM) share: the k split, the operand sizes
    /// and 16-byte alignment. The x and w device pointers, or `None` when there is nothing to compute (`n == 0`).
    pub(crate) fn weight_streaming_operands(
        &self,
        op: &'static str,
        x: &impl DevicePtr<bf16>,
        w: &impl DevicePtr<bf16>,
        dims: GemmShape,
        kparts: usize,
    ) -> Result<Option<(u64, u64)>> {
        let GemmShape { m, n, k } = dims;
        if ![1, 2, 4, 8].contains(&kparts) {
            return Err(shape(op, format!("kparts = {kparts} must be 1, 2, 4 or 8")));
        }
        need(op, "x", x.len(), m * k)?;
        need(op, "w", w.len(), n * k)?;
        if n == 0 {
            return Ok(None);
        }
        let (xp, _g1) = x.device_ptr(&self.stream);
        let (wp, _g2) = w.device_ptr(&self.stream);
        if xp % 16 != 0 || wp % 16 != 0 {
            return Err(shape(op, "x and w must be 16-byte aligned".into()));
        }
        Ok(Some((xp, wp)))
    }
}

impl Checker<'_> {
    /// A projection kernel (`y[m, n] = x[m, k] · w[n, k]ᵀ`, bf16 operands, f32 out) against the f64 product of the
    /// same bf16 operands: fresh x and a tiled random w (a chunk length that is no multiple of k, so tiled rows
    /// differ), y poisoned first; `sample_rows` of W checked when given (plus the last), every output must be
    /// written. `shape` = (m, n, k, kparts, sample_rows); `kparts` is only reported.
    pub(crate) fn projection(
        &mut self,
        label: &str,
        shape: (usize, usize, usize, Option<usize>, Option<usize>),
        tolerance: f64,
        launch: impl FnOnce(
            &crate::Gpu,
            &crate::CudaSlice<bf16>,
            &crate::CudaSlice<bf16>,
            &mut crate::CudaSlice<f32>,
        ) -> Result<()>,
    ) -> Result<CheckReport> {
        let (m, n, k, kparts, sample_rows) = shape;
        let g = self.gpu;
        let x = bf16_round(&self.rng.normal_vec(m * k, 1.0));
        let xb: Vec<bf16> = x.iter().map(|&v| bf16::from_f32(v)).collect();
        let chunk_len = (n * k).min((1 << 20) - 3);
        let chunk = self.rng.normal_bf16(chunk_len, 0.02);
        let (dx, dw) = (g.upload(&xb)?, g.upload_tiled(&chunk, n * k)?);
        let mut y = poison_f32(g, m * n)?;
        launch(g, &dx, &dw, &mut y)?;
        let got = g.download(&y)?;
        let cols: Vec<usize> = match sample_rows {
            Some(s) if s < n => {
                let mut c: Vec<usize> = (0..s).map(|_| self.rng.below(n as u64) as usize).collect();
                c.push(n - 1); // the ragged last row group
                c
            }
            _ => (0..n).collect(),
        };
        let wsub: Vec<bf16> = cols
            .iter()
            .flat_map(|&j| (0..k).map(move |i| (j * k + i) % chunk_len))
            .map(|idx| chunk[idx])
            .collect();
        let want = crate::matmul::cublas::reference::gemm(&x, &wsub, m, cols.len(), k);
        let gsub: Vec<f32> = (0..m)
            .flat_map(|i| cols.iter().map(move |&j| (i, j)))
            .map(|(i, j)| got[i * n + j])
            .collect();
        let all_written = got[..m * n].iter().all(|v| v.is_finite());
        Ok(CheckReport::new(
            label,
            format!(
                "m {m} n {n} k {k} kparts {kparts:?}{}",
                if cols.len() < n {
                    format!(" ({} cols checked)", cols.len())
                } else {
                    String::new()
                }
            ),
            if all_written {
                relative_error(&gsub, &want)
            } else {
                f64::NAN
            },
            tolerance,
        ))
    }
}
