//! The projection GEMM through cuBLAS: `y[m, n] = x[m, k] · W[n, k]ᵀ`, bf16 operands, f32 output,
//! f32 accumulation (cublasGemmEx, CUBLAS_COMPUTE_32F). `W` is a Hugging Face `Linear` weight as
//! stored (row-major `[out_features, in_features]`); all matrices are row-major and contiguous.

use crate::error::{shape, KernelError, Result};
use crate::gpu::Gpu;
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
    /// `Gpu` keeps and grows), then [`Gpu::gemm_bf16`]. `y[m, n] = bf16(x) · w[n, k]ᵀ`.
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
        let mut scratch = self.scratch_bf16.lock().expect("scratch lock");
        if scratch.as_ref().is_none_or(|s| s.len() < m * k) {
            *scratch = Some(self.alloc::<bf16>((m * k).max(1))?);
        }
        let xb = scratch.as_mut().expect("allocated above");
        self.cast_f32_to_bf16(x, m * k, xb)?;
        self.gemm_bf16(xb, w, m, n, k, y)
    }
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
