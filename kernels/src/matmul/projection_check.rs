//! The reference check every projection kernel shares: its output against the f64 product of the same
//! bf16 operands.

use crate::check::{bf16_round, poison_f32, CheckReport, Checker};
use crate::device::Gpu;
use crate::error::Result;
use crate::layout::GemmShape;
use crate::tolerance::{self as tol, relative_error};
use cudarc::driver::CudaSlice;
use half::bf16;

/// The weight-streaming projection kernels: the GEMV (1..=8 rows) and the tensor-core skinny GEMM (1..=32).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamingKernel {
    Gemv,
    Skinny,
}

impl Checker<'_> {
    /// A weight-streaming projection ([`Gpu::gemv_bf16`] or [`Gpu::skinny_gemm_bf16`]) through
    /// [`Checker::projection`]: `kparts` `None` is the kernel's default split; `sample_rows` of W checked when
    /// given.
    pub fn weight_streaming(
        &mut self,
        kernel: StreamingKernel,
        dims: GemmShape,
        kparts: Option<usize>,
        sample_rows: Option<usize>,
    ) -> Result<CheckReport> {
        let GemmShape { m, n, k } = dims;
        let (label, tolerance) = match kernel {
            StreamingKernel::Gemv => ("gemv_bf16 (weight streaming)", tol::F32_ACCUMULATION),
            StreamingKernel::Skinny => {
                ("skinny_gemm_bf16 (tensor cores)", tol::MMA_F32_ACCUMULATION)
            }
        };
        let shape = (m, n, k, kparts, sample_rows);
        self.projection(label, shape, tolerance, |g, x, w, y| {
            match (kernel, kparts) {
                (StreamingKernel::Gemv, Some(p)) => g.gemv_bf16_split(x, w, dims, p, y),
                (StreamingKernel::Gemv, None) => g.gemv_bf16(x, w, m, n, k, y),
                (StreamingKernel::Skinny, Some(p)) => g.skinny_gemm_bf16_split(x, w, dims, p, y),
                (StreamingKernel::Skinny, None) => g.skinny_gemm_bf16(x, w, m, n, k, y),
            }
        })
    }

    /// A projection kernel (`y[m, n] = x[m, k] · w[n, k]ᵀ`, bf16 operands, f32 out) against the f64 product of the
    /// same bf16 operands: fresh x and a tiled random w (a chunk length that is no multiple of k, so tiled rows
    /// differ), y poisoned first; `sample_rows` of W checked when given (plus the last), every output must be
    /// written. `shape` = (m, n, k, kparts, sample_rows); `kparts` is only reported.
    pub(crate) fn projection(
        &mut self,
        label: &str,
        shape: (usize, usize, usize, Option<usize>, Option<usize>),
        tolerance: f64,
        launch: impl FnOnce(&Gpu, &CudaSlice<bf16>, &CudaSlice<bf16>, &mut CudaSlice<f32>) -> Result<()>,
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
