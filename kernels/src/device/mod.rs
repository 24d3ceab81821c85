//! The GPU context: device, stream, cuBLAS handle and the compiled kernels ([`Gpu`]), with the launch
//! builder (`launch`), device memory (`memory`), the scratch arena ops draw on (`scratch`), the CUDA
//! sources ([`sources`]) and the on-disk module cache ([`module_cache`]). Nothing here knows any one op.

pub(crate) mod launch;
mod memory;
pub mod module_cache;
pub(crate) mod scratch;
pub mod sources;

use crate::error::{DriverContext, KernelError, Result};
use cudarc::cublas::CudaBlas;
use cudarc::driver::{sys, CudaContext, CudaFunction, CudaSlice, CudaStream, DevicePtrMut};
use cudarc::nvrtc::Ptx;
use module_cache::ModuleCache;
use scratch::ScratchArena;
use sources::{CompiledModule, SOURCES};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

/// One CUDA device with one stream, a cuBLAS handle on that stream, and every kernel module of
/// [`SOURCES`] compiled once (NVRTC, for the device's own architecture) and loaded.
///
/// All work is issued on [`Gpu::stream`] in order; ops return once the work is queued. Results are
/// visible after [`Gpu::synchronize`] or a [`Gpu::download`] (which synchronizes).
///
/// Single-stream contract: the context's cross-stream event tracking is switched off (it costs two
/// events per buffer per launch), so buffers from this `Gpu` must only be used on its stream.
pub struct Gpu {
    pub(crate) ctx: Arc<CudaContext>,
    pub(crate) stream: Arc<CudaStream>,
    pub(crate) blas: CudaBlas,
    /// cuBLAS's workspace, owned here (declared after `blas`, so freed after the handle) so that no
    /// GEMM allocates inside a captured CUDA graph.
    _blas_workspace: CudaSlice<u8>,
    functions: HashMap<&'static str, CudaFunction>,
    name: String,
    cc: (i32, i32),
    arch: String,
    sms: u32,
    compile_seconds: f64,
    modules_from_cache: usize,
    /// The buffers and state ops keep between calls, each op naming its own slots.
    pub(crate) scratch: ScratchArena,
    /// Launch kernels with programmatic dependent launch (see [`Gpu::set_programmatic_launch`]).
    programmatic: AtomicBool,
    /// Bytes of its weight rows each weight-streaming block asks L2 for before its PDL wait (0: none).
    #[cfg(feature = "ablations")]
    gemv_prefetch: std::sync::atomic::AtomicU32,
}

impl std::fmt::Debug for Gpu {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gpu")
            .field("name", &self.name)
            .field("arch", &self.arch)
            .field("multiprocessors", &self.sms)
            .finish()
    }
}

/// cuBLAS workspace size (NVIDIA's recommendation for Hopper).
const CUBLAS_WORKSPACE_BYTES: usize = 32 << 20;

/// Whether the CUDA driver library can be loaded at all (cheap; no device is touched).
pub fn cuda_libraries_present() -> std::result::Result<(), String> {
    // SAFETY: probing for shared libraries has no preconditions.
    unsafe {
        if !cudarc::driver::sys::is_culib_present() {
            return Err("the CUDA driver library (libcuda) was not found".into());
        }
        if !cudarc::nvrtc::sys::is_culib_present() {
            return Err("the NVRTC library (libnvrtc) was not found".into());
        }
        if !cudarc::cublas::sys::is_culib_present() {
            return Err("the cuBLAS library (libcublas) was not found".into());
        }
    }
    Ok(())
}

impl Gpu {
    /// Opens device 0. See [`Gpu::with_device`].
    pub fn new() -> Result<Self> {
        Self::with_device(0)
    }

    /// Opens device `ordinal`: creates the context and a stream, compiles every module with NVRTC
    /// (`--gpu-architecture=sm_XY` from the device's compute capability X.Y), loads them, and opens
    /// a cuBLAS handle on the stream. Fails with [`KernelError::Unavailable`] where there is no
    /// CUDA library or device.
    pub fn with_device(ordinal: usize) -> Result<Self> {
        Self::with_device_and_cache(ordinal, ModuleCache::from_env())
    }

    /// [`Gpu::with_device`], taking compiled modules from `cache` where it holds them and keeping what it
    /// compiles there ([`crate::module_cache`]; [`Gpu::with_device`] uses the cache the environment names).
    pub fn with_device_and_cache(ordinal: usize, cache: ModuleCache) -> Result<Self> {
        cuda_libraries_present().map_err(KernelError::Unavailable)?;
        let count = CudaContext::device_count().ctx(|| "counting CUDA devices".into())?;
        if count <= ordinal as i32 {
            return Err(KernelError::Unavailable(format!(
                "device {ordinal} requested, {count} CUDA device(s) present"
            )));
        }
        let ctx =
            CudaContext::new(ordinal).ctx(|| format!("creating a context on device {ordinal}"))?;
        // SAFETY: this crate issues all work on one stream (see the single-stream contract above).
        unsafe { ctx.disable_event_tracking() };
        let stream = ctx.new_stream().ctx(|| "creating a stream".into())?;
        let name = ctx.name().ctx(|| "reading the device name".into())?;
        let cc = ctx
            .compute_capability()
            .ctx(|| "reading the compute capability".into())?;
        let sms = ctx
            .attribute(sys::CUdevice_attribute::CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT)
            .ctx(|| "reading the multiprocessor count".into())? as u32;
        let arch = format!("sm_{}{}", cc.0, cc.1);

        let started = Instant::now();
        let nvrtc = sources::nvrtc_version()?;
        let mut modules_from_cache = 0;
        let mut functions = HashMap::new();
        for source in SOURCES {
            // A cached cubin of these exact sources, options and NVRTC (module_cache.rs); one the driver
            // refuses is compiled again and replaced.
            let cached = cache
                .get(source, &arch, nvrtc)
                .and_then(|bytes| ctx.load_module(Ptx::from_binary(bytes)).ok());
            let module = match cached {
                Some(module) => {
                    modules_from_cache += 1;
                    module
                }
                None => {
                    let module = match sources::compile(source, &arch)? {
                        CompiledModule::Cubin(bytes) => {
                            cache.put(source, &arch, nvrtc, &bytes);
                            Ptx::from_binary(bytes)
                        }
                        CompiledModule::Ptx(text) => Ptx::from_src(text),
                    };
                    ctx.load_module(module)
                        .ctx(|| format!("loading module {}", source.name))?
                }
            };
            for f in source.functions {
                let func = module
                    .load_function(f)
                    .ctx(|| format!("finding kernel {f} in module {}", source.name))?;
                functions.insert(*f, func);
            }
        }
        let compile_seconds = started.elapsed().as_secs_f64();

        let blas = CudaBlas::new(stream.clone()).map_err(|source| KernelError::Cublas {
            context: "creating the cuBLAS handle".into(),
            source,
        })?;
        let mut workspace = stream
            .alloc_zeros::<u8>(CUBLAS_WORKSPACE_BYTES)
            .ctx(|| "allocating the cuBLAS workspace".into())?;
        {
            let (ptr, _g) = workspace.device_ptr_mut(&stream);
            // SAFETY: a live device buffer of the stated size, kept as long as the handle.
            unsafe {
                cudarc::cublas::sys::cublasSetWorkspace_v2(
                    *blas.handle(),
                    ptr as *mut std::ffi::c_void,
                    CUBLAS_WORKSPACE_BYTES,
                )
            }
            .result()
            .map_err(|source| KernelError::Cublas {
                context: "setting the cuBLAS workspace".into(),
                source,
            })?;
        }
        let scratch = ScratchArena::new(stream.clone());
        Ok(Self {
            ctx,
            stream,
            blas,
            _blas_workspace: workspace,
            functions,
            name,
            cc,
            arch,
            sms,
            compile_seconds,
            modules_from_cache,
            scratch,
            programmatic: AtomicBool::new(false),
            #[cfg(feature = "ablations")]
            gemv_prefetch: std::sync::atomic::AtomicU32::new(0),
        })
    }

    /// Switches programmatic dependent launch (PDL, compute capability 9.0 and later) on or off for every
    /// later launch of this crate's kernels. With it on, a kernel may be scheduled while the one before it
    /// on the stream is still running: every kernel here starts with `pdl_wait()` (common.cuh), which holds
    /// it until its predecessor has finished and its writes are visible, so results are unchanged; what
    /// overlaps is the launch itself and the work a kernel does before that wait (the GEMV starts pulling
    /// its weights, which no kernel writes). cuBLAS kernels are launched by cuBLAS, without it. Refused on
    /// older devices.
    pub fn set_programmatic_launch(&self, on: bool) -> Result<()> {
        if on && self.cc.0 < 9 {
            return Err(KernelError::Unavailable(format!(
                "programmatic dependent launch needs compute capability 9.0, {} has {}.{}",
                self.name, self.cc.0, self.cc.1
            )));
        }
        self.programmatic.store(on, Ordering::Relaxed);
        Ok(())
    }

    /// How many bytes of its rows of the weight matrix each GEMV and skinny-GEMM block prefetches into L2
    /// before it waits on the previous kernel (gemv.cu, gemm_skinny.cu); useful only with programmatic launch
    /// on. 0 (the default) turns it off.
    #[cfg(feature = "ablations")]
    pub fn set_gemv_prefetch_bytes(&self, bytes: u32) {
        self.gemv_prefetch.store(bytes, Ordering::Relaxed);
    }

    /// The L2 prefetch the weight-streaming launches pass (0 without the `ablations` feature: the
    /// kernels then have no prefetch block).
    pub fn gemv_prefetch_bytes(&self) -> u32 {
        #[cfg(feature = "ablations")]
        return self.gemv_prefetch.load(Ordering::Relaxed);
        #[cfg(not(feature = "ablations"))]
        0
    }

    /// Whether launches use programmatic dependent launch.
    pub fn programmatic_launch(&self) -> bool {
        self.programmatic.load(Ordering::Relaxed)
    }

    /// The device's name, e.g. "NVIDIA H200".
    pub fn device_name(&self) -> &str {
        &self.name
    }

    /// Compute capability (major, minor).
    pub fn compute_capability(&self) -> (i32, i32) {
        self.cc
    }

    /// The NVRTC target the kernels were compiled for, e.g. "sm_90".
    pub fn arch(&self) -> &str {
        &self.arch
    }

    /// Number of streaming multiprocessors.
    pub fn multiprocessors(&self) -> u32 {
        self.sms
    }

    /// Wall time spent compiling and loading every module in [`Gpu::with_device`].
    pub fn compile_seconds(&self) -> f64 {
        self.compile_seconds
    }

    /// How many of the modules came from the on-disk cache ([`crate::module_cache`]) rather than NVRTC.
    pub fn modules_from_cache(&self) -> usize {
        self.modules_from_cache
    }

    /// The one stream all work goes to.
    pub fn stream(&self) -> &Arc<CudaStream> {
        &self.stream
    }

    /// The CUDA context.
    pub fn context(&self) -> &Arc<CudaContext> {
        &self.ctx
    }

    /// Waits for all queued work; reports any asynchronous error from earlier launches.
    pub fn synchronize(&self) -> Result<()> {
        self.stream
            .synchronize()
            .ctx(|| "synchronizing the stream (an earlier launch may have failed)".into())
    }

    pub(crate) fn function(&self, name: &'static str) -> &CudaFunction {
        self.functions
            .get(name)
            .unwrap_or_else(|| panic!("kernel {name} is declared in SOURCES"))
    }
}
