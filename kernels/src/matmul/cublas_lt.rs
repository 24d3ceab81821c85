//! The projection GEMM through cuBLASLt with an algorithm the caller picks: the same product as
//! [`Gpu::gemm_bf16`] (`y[m, n] = x[m, k] · W[n, k]ᵀ`, bf16 operands, f32 output, f32 accumulation, the same
//! column-major view). cuBLAS's `gemm_ex` runs the first algorithm cuBLASLt's heuristic lists for a shape;
//! here up to [`LT_MAX_ALGOS`] of them are listed so that a caller can time each one and keep the fastest
//! (the engine's per-shape projection choice). The cuBLASLt handle and its workspace are created on first use,
//! so a `Gpu` that never asks pays nothing; without libcublasLt every call answers
//! [`KernelError::Unavailable`].

use crate::check::{CheckReport, Checker};
use crate::device::Gpu;
use crate::error::{shape, DriverContext, KernelError, Result};
use crate::layout::GemmShape;
use crate::tolerance as tol;
use cudarc::cublaslt::result::CublasError;
use cudarc::cublaslt::{result as lt, sys};
use cudarc::driver::{CudaSlice, DevicePtr, DevicePtrMut};
use half::bf16;
use std::collections::HashMap;
use std::ffi::c_void;
use std::sync::{Arc, Mutex};

/// cuBLASLt's workspace, one for every algorithm (an algorithm that needs more is not listed).
pub const LT_WORKSPACE_BYTES: usize = 32 << 20;
/// The most algorithms listed for one shape.
pub const LT_MAX_ALGOS: usize = 8;
/// The arena slot of a `Gpu`'s cuBLASLt state: created on first use, or why it cannot be.
const LT_STATE: &str = "cublas_lt.state";
/// `cublasOperation_t::CUBLAS_OP_T`, as cuBLASLt's transpose attributes take it (an int32).
const OP_T: i32 = 1;

/// The descriptors of one shape and the algorithms the heuristic listed for it. Descriptors are not changed
/// after creation.
struct LtPlan {
    desc: sys::cublasLtMatmulDesc_t,
    a: sys::cublasLtMatrixLayout_t,
    b: sys::cublasLtMatrixLayout_t,
    d: sys::cublasLtMatrixLayout_t,
    algos: Vec<sys::cublasLtMatmulAlgo_t>,
}

// SAFETY: the descriptors are host-side objects that are only read after creation; every matmul using them is
// issued on the owning `Gpu`'s one stream.
unsafe impl Send for LtPlan {}
unsafe impl Sync for LtPlan {}

impl Drop for LtPlan {
    fn drop(&mut self) {
        // SAFETY: each descriptor was created once for this plan and is destroyed once.
        unsafe {
            let _ = lt::destroy_matrix_layout(self.a);
            let _ = lt::destroy_matrix_layout(self.b);
            let _ = lt::destroy_matrix_layout(self.d);
            let _ = lt::destroy_matmul_desc(self.desc);
        }
    }
}

/// A `Gpu`'s cuBLASLt handle, workspace and the plans of the shapes asked for so far.
pub(crate) struct LtState {
    handle: sys::cublasLtHandle_t,
    workspace: CudaSlice<u8>,
    plans: Mutex<HashMap<(usize, usize, usize), Arc<LtPlan>>>,
}

// SAFETY: the handle is used only on the owning `Gpu`'s stream (cuBLASLt handles may be shared across
// threads); the plans are behind a mutex.
unsafe impl Send for LtState {}
unsafe impl Sync for LtState {}

impl Drop for LtState {
    fn drop(&mut self) {
        self.plans.lock().expect("plans lock").clear();
        // SAFETY: created once in `LtState::new`, destroyed once, after every plan.
        let _ = unsafe { lt::destroy_handle(self.handle) };
    }
}

fn lt_err(context: String) -> impl FnOnce(CublasError) -> KernelError {
    move |source| KernelError::CublasLt { context, source }
}

impl LtState {
    fn new(gpu: &Gpu) -> std::result::Result<Self, String> {
        // SAFETY: probing for the shared library has no preconditions.
        if !unsafe { sys::is_culib_present() } {
            return Err("the cuBLASLt library (libcublasLt) was not found".into());
        }
        let handle = lt::create_handle().map_err(|e| format!("creating the handle: {e}"))?;
        let workspace = match gpu.stream.alloc_zeros::<u8>(LT_WORKSPACE_BYTES) {
            Ok(w) => w,
            Err(e) => {
                // SAFETY: just created, not used.
                let _ = unsafe { lt::destroy_handle(handle) };
                return Err(format!("allocating the workspace: {e}"));
            }
        };
        Ok(Self {
            handle,
            workspace,
            plans: Mutex::new(HashMap::new()),
        })
    }

    fn plan(&self, m: usize, n: usize, k: usize) -> Result<Arc<LtPlan>> {
        let mut plans = self.plans.lock().expect("plans lock");
        if let Some(p) = plans.get(&(m, n, k)) {
            return Ok(p.clone());
        }
        let desc = lt::create_matmul_desc(
            sys::cublasComputeType_t::CUBLAS_COMPUTE_32F,
            sys::cudaDataType::CUDA_R_32F,
        )
        .map_err(lt_err("creating the matmul descriptor".into()))?;
        // Built into the plan at once, so that an early return below destroys what exists.
        let mut plan = LtPlan {
            desc,
            a: std::ptr::null_mut(),
            b: std::ptr::null_mut(),
            d: std::ptr::null_mut(),
            algos: vec![],
        };
        // SAFETY: a live descriptor; the buffer is an int32 as the attribute requires.
        unsafe {
            lt::set_matmul_desc_attribute(
                plan.desc,
                sys::cublasLtMatmulDescAttributes_t::CUBLASLT_MATMUL_DESC_TRANSA,
                (&OP_T as *const i32).cast::<c_void>(),
                std::mem::size_of::<i32>(),
            )
        }
        .map_err(lt_err("setting transa".into()))?;
        // Column-major view, as gemm.rs: yᵀ[n, m] = (w viewed as [k, n])ᵀ · (x viewed as [k, m]).
        let layout = |dtype, rows: usize, cols: usize, ld: usize| {
            lt::create_matrix_layout(dtype, rows as u64, cols as u64, ld as i64)
                .map_err(lt_err(format!("a [{rows}, {cols}] layout")))
        };
        plan.a = layout(sys::cudaDataType::CUDA_R_16BF, k, n, k)?;
        plan.b = layout(sys::cudaDataType::CUDA_R_16BF, k, m, k)?;
        plan.d = layout(sys::cudaDataType::CUDA_R_32F, n, m, n)?;
        let pref = lt::create_matmul_pref().map_err(lt_err("creating a preference".into()))?;
        let workspace = LT_WORKSPACE_BYTES as u64;
        let mut results: [sys::cublasLtMatmulHeuristicResult_t; LT_MAX_ALGOS] =
            // SAFETY: a plain C struct of integers and floats, for which all zeros is a valid value.
            unsafe { std::mem::zeroed() };
        let mut count = 0i32;
        // SAFETY: live descriptors and preference; `results` holds LT_MAX_ALGOS entries.
        let listed = unsafe {
            lt::set_matmul_pref_attribute(
                pref,
                sys::cublasLtMatmulPreferenceAttributes_t::CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES,
                (&workspace as *const u64).cast::<c_void>(),
                std::mem::size_of::<u64>(),
            )
            .and_then(|()| {
                sys::cublasLtMatmulAlgoGetHeuristic(
                    self.handle,
                    plan.desc,
                    plan.a,
                    plan.b,
                    plan.d,
                    plan.d,
                    pref,
                    LT_MAX_ALGOS as i32,
                    results.as_mut_ptr(),
                    &mut count,
                )
                .result()
            })
        };
        // SAFETY: created above, used only by the calls above.
        let _ = unsafe { lt::destroy_matmul_pref(pref) };
        listed.map_err(lt_err(format!(
            "listing algorithms for [m={m}, n={n}, k={k}]"
        )))?;
        plan.algos = results[..(count.max(0) as usize).min(LT_MAX_ALGOS)]
            .iter()
            .filter(|r| {
                r.state == sys::cublasStatus_t::CUBLAS_STATUS_SUCCESS
                    && r.workspaceSize <= LT_WORKSPACE_BYTES
            })
            .map(|r| r.algo)
            .collect();
        let plan = Arc::new(plan);
        plans.insert((m, n, k), plan.clone());
        Ok(plan)
    }
}

impl Gpu {
    fn lt(&self) -> Result<Arc<LtState>> {
        // cuBLASLt works in the calling thread's current context (as cuBLAS does): make it this Gpu's.
        self.ctx
            .bind_to_thread()
            .ctx(|| "binding the CUDA context for cuBLASLt".into())?;
        let state = self
            .scratch
            .shared(LT_STATE, || LtState::new(self).map(Arc::new));
        state.as_ref().clone().map_err(KernelError::Unavailable)
    }

    /// How many cuBLASLt algorithms are listed for `[m, k] x [n, k]ᵀ` (at most [`LT_MAX_ALGOS`], in the
    /// heuristic's order: index 0 is the one `gemm_ex` would run). [`KernelError::Unavailable`] without
    /// libcublasLt.
    pub fn gemm_lt_algorithms(&self, m: usize, n: usize, k: usize) -> Result<usize> {
        Ok(self.lt()?.plan(m, n, k)?.algos.len())
    }

    /// `y[m, n] = x[m, k] · w[n, k]ᵀ` (bf16 `x` and `w`, f32 `y`, f32 accumulation) with cuBLASLt's algorithm
    /// number `algo` of those [`Gpu::gemm_lt_algorithms`] lists for the shape.
    pub fn gemm_bf16_lt(
        &self,
        x: &impl DevicePtr<bf16>,
        w: &impl DevicePtr<bf16>,
        dims: GemmShape,
        algo: usize,
        y: &mut impl DevicePtrMut<f32>,
    ) -> Result<()> {
        const OP: &str = "gemm_lt";
        let GemmShape { m, n, k } = dims;
        super::operands::gemm_operands(OP, [x.len(), w.len(), y.len()], m, n, k)?;
        if m == 0 || n == 0 {
            return Ok(());
        }
        let state = self.lt()?;
        let plan = state.plan(m, n, k)?;
        let Some(chosen) = plan.algos.get(algo) else {
            return Err(shape(
                OP,
                format!(
                    "algorithm {algo}: cuBLASLt lists {} for [m={m}, n={n}, k={k}]",
                    plan.algos.len()
                ),
            ));
        };
        let (alpha, beta) = (1.0f32, 0.0f32);
        let (xp, _g1) = x.device_ptr(&self.stream);
        let (wp, _g2) = w.device_ptr(&self.stream);
        let (yp, _g3) = y.device_ptr_mut(&self.stream);
        let (wsp, _g4) = state.workspace.device_ptr(&self.stream);
        // SAFETY: live buffers of the sizes checked above and a workspace of LT_WORKSPACE_BYTES, on this
        // Gpu's stream; the plan's descriptors describe exactly these operands (C = D, beta 0).
        unsafe {
            lt::matmul(
                state.handle,
                plan.desc,
                (&alpha as *const f32).cast::<c_void>(),
                (&beta as *const f32).cast::<c_void>(),
                wp as *const c_void,
                plan.a,
                xp as *const c_void,
                plan.b,
                yp as *const c_void,
                plan.d,
                yp as *mut c_void,
                plan.d,
                chosen,
                wsp as *mut c_void,
                LT_WORKSPACE_BYTES,
                self.stream.cu_stream() as sys::cudaStream_t,
            )
        }
        .map_err(lt_err(format!(
            "matmul [m={m}, n={n}, k={k}] with algorithm {algo}"
        )))
    }
}

impl Checker<'_> {
    /// Each of the cuBLASLt algorithms listed for `[m, k] x [n, k]ᵀ` (`sample_rows` of W checked when given;
    /// every output must be written). A shape with no algorithm listed is reported as a failure: the engine
    /// would have nothing to time.
    pub fn gemm_lt(
        &mut self,
        m: usize,
        n: usize,
        k: usize,
        sample_rows: Option<usize>,
    ) -> Result<Vec<CheckReport>> {
        let algos = self.gpu.gemm_lt_algorithms(m, n, k)?;
        if algos == 0 {
            return Ok(vec![CheckReport::new(
                "gemm_bf16_lt (cuBLASLt)",
                format!("m {m} n {n} k {k}: no algorithm listed"),
                f64::NAN,
                tol::F32_ACCUMULATION,
            )]);
        }
        (0..algos)
            .map(|algo| {
                self.projection(
                    &format!("gemm_bf16_lt (cuBLASLt algorithm {algo})"),
                    (m, n, k, None, sample_rows),
                    // Tensor-core products with f32 accumulation, as the skinny GEMM's.
                    tol::MMA_F32_ACCUMULATION,
                    |g, x, w, y| g.gemm_bf16_lt(x, w, GemmShape { m, n, k }, algo, y),
                )
            })
            .collect()
    }

    /// The decode projection shapes of E4B at 1, 8 and 32 rows (q|k|v, o, gate|up, down, the LM head sampled)
    /// and a ragged one, every listed algorithm.
    pub fn gemm_lt_suite(&mut self) -> Result<Vec<CheckReport>> {
        let mut r = vec![];
        for m in [1, 8, 32] {
            for (n, k, sample) in [
                (3072, 2560, None),
                (2560, 2048, None),
                (20480, 2560, Some(64)),
                (2560, 10240, Some(64)),
                (262_144, 2560, Some(64)),
            ] {
                r.extend(self.gemm_lt(m, n, k, sample)?);
            }
        }
        r.extend(self.gemm_lt(5, 37, 64, None)?);
        Ok(r)
    }
}
