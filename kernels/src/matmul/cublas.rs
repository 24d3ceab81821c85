//! The projection GEMM through cuBLAS: `y[m, n] = x[m, k] · W[n, k]ᵀ`, bf16 operands, f32 output,
//! f32 accumulation (cublasGemmEx, CUBLAS_COMPUTE_32F). `W` is a Hugging Face `Linear` weight as
//! stored (row-major `[out_features, in_features]`); all matrices are row-major and contiguous.

use super::operands::gemm_operands;
use crate::check::{poison_f32, CheckReport, Checker};
use crate::device::Gpu;
use crate::error::{shape, KernelError, Result};

use crate::tolerance::{self as tol, relative_error};
use cudarc::cublas::result as blas;
use cudarc::cublas::sys::{
    cublasComputeType_t, cublasGemmAlgo_t, cublasOperation_t, cudaDataType_t,
};
use cudarc::driver::{DevicePtr, DevicePtrMut};
use half::bf16;
use std::ffi::c_void;

fn dim(what: &str, v: usize) -> Result<i32> {
    i32::try_from(v).map_err(|_| shape("gemm", format!("{what} = {v} does not fit in i32")))
}

/// The scratch slot of the bf16 copy of an f32 activation ([`Gpu::linear`]).
pub(crate) const LINEAR_BF16: &str = "linear.x_bf16";

impl Gpu {
    /// `y[m, n] = x[m, k] · w[n, k]ᵀ` with bf16 `x` and `w`, f32 `y`, f32 accumulation.
    pub fn gemm_bf16(
        &self,
        x: &impl DevicePtr<bf16>,
        w: &impl DevicePtr<bf16>,
        m: usize,
        n: usize,
        k: usize,
        y: &mut impl DevicePtrMut<f32>,
    ) -> Result<()> {
        gemm_operands("gemm", [x.len(), w.len(), y.len()], m, n, k)?;
        if m == 0 || n == 0 {
            return Ok(());
        }
        let (mi, ni, ki) = (dim("m", m)?, dim("n", n)?, dim("k", k)?);
        let alpha = 1.0f32;
        let beta = 0.0f32;
        let (xp, _g1) = x.device_ptr(&self.stream);
        let (wp, _g2) = w.device_ptr(&self.stream);
        let (yp, _g3) = y.device_ptr_mut(&self.stream);
        // Column-major view: yᵀ[n, m] = (w viewed as [k, n])ᵀ · (x viewed as [k, m]).
        // SAFETY: pointers are live device buffers of the sizes checked above, on the handle's stream.
        unsafe {
            blas::gemm_ex(
                *self.blas.handle(),
                cublasOperation_t::CUBLAS_OP_T,
                cublasOperation_t::CUBLAS_OP_N,
                ni,
                mi,
                ki,
                (&alpha as *const f32).cast::<c_void>(),
                wp as *const c_void,
                cudaDataType_t::CUDA_R_16BF,
                ki,
                xp as *const c_void,
                cudaDataType_t::CUDA_R_16BF,
                ki,
                (&beta as *const f32).cast::<c_void>(),
                yp as *mut c_void,
                cudaDataType_t::CUDA_R_32F,
                ni,
                cublasComputeType_t::CUBLAS_COMPUTE_32F,
                cublasGemmAlgo_t::CUBLAS_GEMM_DEFAULT,
            )
        }
        .map_err(|source| KernelError::Cublas {
            context: format!("gemm_ex bf16 [m={m}, n={n}, k={k}]"),
            source,
        })
    }

    /// A projection with an f32 activation: casts `x[m, k]` to bf16 (into a scratch buffer this
    /// `Gpu`'s scratch arena keeps and grows), then [`Gpu::gemm_bf16`]. `y[m, n] = bf16(x) · w[n, k]ᵀ`.
    pub fn linear(
        &self,
        x: &impl DevicePtr<f32>,
        w: &impl DevicePtr<bf16>,
        m: usize,
        n: usize,
        k: usize,
        y: &mut impl DevicePtrMut<f32>,
    ) -> Result<()> {
        if x.len() < m * k {
            return Err(shape(
                "linear",
                format!(
                    "x holds {} elements, [m={m}, k={k}] needs {}",
                    x.len(),
                    m * k
                ),
            ));
        }
        let slot = self.scratch.buffer::<bf16>(LINEAR_BF16);
        let mut xb = self.scratch.grown(&slot, m * k)?;
        self.cast_f32_to_bf16(x, m * k, &mut *xb)?;
        self.gemm_bf16(&*xb, w, m, n, k, y)
    }
}

/// The f64 CPU reference.
pub mod reference {
    use half::bf16;

    /// `y[m, n] = x[m, k] · w[n, k]ᵀ` in f64 (x as given, unrounded).
    pub fn gemm(x: &[f32], w: &[bf16], m: usize, n: usize, k: usize) -> Vec<f64> {
        let wf: Vec<f64> = w[..n * k].iter().map(|v| v.to_f64()).collect();
        let mut y = vec![0.0f64; m * n];
        for i in 0..m {
            let xr: Vec<f64> = x[i * k..(i + 1) * k].iter().map(|&v| v as f64).collect();
            for j in 0..n {
                let wr = &wf[j * k..(j + 1) * k];
                y[i * n + j] = xr.iter().zip(wr).map(|(a, b)| a * b).sum();
            }
        }
        y
    }
}

impl Checker<'_> {
    /// The cuBLAS projection through [`Gpu::linear`] (f32 activation cast to bf16), compared with the
    /// f64 product of the unrounded activation; `sample_rows` of W (output columns) are checked when
    /// given, to keep the CPU reference short at LM-head sizes.
    pub fn linear(
        &mut self,
        m: usize,
        n: usize,
        k: usize,
        sample_rows: Option<usize>,
    ) -> Result<CheckReport> {
        let g = self.gpu;
        let x = self.rng.normal_vec(m * k, 1.0);
        // W is a random chunk tiled over [n, k] (a length prime to k, so rows differ): LM-head-size
        // weights without a host array of their full size.
        let chunk_len = (n * k).min((1 << 20) - 3);
        let chunk = self.rng.normal_bf16(chunk_len, 0.02);
        let (dx, dw) = (g.upload(&x)?, g.upload_tiled(&chunk, n * k)?);
        let mut y = poison_f32(g, m * n)?;
        g.linear(&dx, &dw, m, n, k, &mut y)?;
        let got = g.download(&y)?;
        let cols: Vec<usize> = match sample_rows {
            Some(s) if s < n => (0..s).map(|_| self.rng.below(n as u64) as usize).collect(),
            _ => (0..n).collect(),
        };
        let wsub: Vec<bf16> = cols
            .iter()
            .flat_map(|&j| (0..k).map(move |i| (j * k + i) % chunk_len))
            .map(|idx| chunk[idx])
            .collect();
        let want = reference::gemm(&x, &wsub, m, cols.len(), k);
        let gsub: Vec<f32> = (0..m)
            .flat_map(|i| cols.iter().map(move |&j| (i, j)))
            .map(|(i, j)| got[i * n + j])
            .collect();
        // Every element must have been written, sampled or not.
        let all_written = got[..m * n].iter().all(|v| v.is_finite());
        let err = if all_written {
            relative_error(&gsub, &want)
        } else {
            f64::NAN
        };
        Ok(CheckReport::new(
            "linear (cuBLAS bf16, f32 acc)",
            format!(
                "m {m} n {n} k {k}{}",
                if cols.len() < n {
                    format!(" ({} cols checked)", cols.len())
                } else {
                    String::new()
                }
            ),
            err,
            tol::BF16_OPERANDS,
        ))
    }
}
