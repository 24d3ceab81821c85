//! The GPU context: device, stream, cuBLAS handle, the compiled kernels, and device memory helpers.

use crate::error::{shape, DriverContext, KernelError, Result};
use crate::module_cache::ModuleCache;
use crate::sources::{self, CompiledModule, SOURCES};
use cudarc::cublas::CudaBlas;
use cudarc::driver::{
    sys, CudaContext, CudaFunction, CudaSlice, CudaStream, DevicePtr, DevicePtrMut, DeviceRepr,
    ValidAsZeroBits,
};
use cudarc::nvrtc::Ptx;
use half::bf16;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
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
    pub(crate) scratch_bf16: Mutex<Option<CudaSlice<bf16>>>,
    pub(crate) scratch_argmax: Mutex<Option<CudaSlice<u64>>>,
    pub(crate) scratch_attention: Mutex<Option<CudaSlice<f32>>>,
    /// One u32 per query (token x head) for attention that merges its splits in the kernel; zero between
    /// launches.
    pub(crate) scratch_attention_counters: Mutex<Option<CudaSlice<u32>>>,
    /// Launch kernels with programmatic dependent launch (see [`Gpu::set_programmatic_launch`]).
    programmatic: AtomicBool,
    /// Bytes of its weight rows each GEMV block asks L2 for before its PDL wait (0: none).
    gemv_prefetch: AtomicU32,
    /// cuBLASLt (gemm_lt.rs), created on first use, or why it cannot be.
    pub(crate) lt: std::sync::OnceLock<std::result::Result<crate::gemm_lt::LtState, String>>,
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

/// A kernel launch being assembled: arguments by reference, in the kernel's parameter order (device
/// pointers as `u64`, `int` as `i32`, `float` as `f32`), then [`Launch::launch`]. Launches go through
/// `cuLaunchKernelEx` so that programmatic dependent launch can be asked for per launch.
pub(crate) struct Launch<'a> {
    gpu: &'a Gpu,
    func: &'a CudaFunction,
    args: Vec<*mut std::ffi::c_void>,
}

impl<'a> Launch<'a> {
    pub(crate) fn arg<T: DeviceRepr>(&mut self, value: &'a T) -> &mut Self {
        self.args.push(value as *const T as *mut std::ffi::c_void);
        self
    }

    /// Queues the kernel.
    ///
    /// # Safety
    /// The arguments must match the kernel's parameters in number, order and type, and every pointer must
    /// point at device memory large enough for what the kernel touches (the callers check sizes first).
    pub(crate) unsafe fn launch(
        &mut self,
        cfg: cudarc::driver::LaunchConfig,
    ) -> std::result::Result<(), cudarc::driver::DriverError> {
        self.gpu.ctx.bind_to_thread()?;
        // SAFETY: an all-zero launch attribute is a valid (empty) value; the union member set is the one
        // the attribute id names.
        let mut attr: sys::CUlaunchAttribute = unsafe { std::mem::zeroed() };
        attr.id = sys::CUlaunchAttributeID::CU_LAUNCH_ATTRIBUTE_PROGRAMMATIC_STREAM_SERIALIZATION;
        attr.value.programmaticStreamSerializationAllowed = 1;
        let programmatic = self.gpu.programmatic_launch();
        let config = sys::CUlaunchConfig {
            gridDimX: cfg.grid_dim.0,
            gridDimY: cfg.grid_dim.1,
            gridDimZ: cfg.grid_dim.2,
            blockDimX: cfg.block_dim.0,
            blockDimY: cfg.block_dim.1,
            blockDimZ: cfg.block_dim.2,
            sharedMemBytes: cfg.shared_mem_bytes,
            hStream: self.gpu.stream.cu_stream(),
            attrs: if programmatic {
                &mut attr
            } else {
                std::ptr::null_mut()
            },
            numAttrs: programmatic as u32,
        };
        // SAFETY: the config, function and argument pointers are live for the call (the caller
        // guarantees that the arguments fit the kernel).
        unsafe {
            sys::cuLaunchKernelEx(
                &config,
                self.func.cu_function(),
                self.args.as_mut_ptr(),
                std::ptr::null_mut(),
            )
        }
        .result()
    }
}

/// cuBLAS workspace size (NVIDIA's recommendation for Hopper).
const CUBLAS_WORKSPACE_BYTES: usize = 32 << 20;

/// Largest sizes the ops with internal scratch buffers will see; [`Gpu::reserve_scratch`] allocates
/// for them up front, so that no op allocates later (e.g. inside a captured CUDA graph).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ScratchLimits {
    /// Largest `m * k` passed to [`Gpu::linear`].
    pub linear_elements: usize,
    /// Largest `rows` and `cols` passed to [`Gpu::argmax_rows`].
    pub argmax_rows: usize,
    pub argmax_cols: usize,
    /// Largest `tokens`, `heads` and `head_dim` passed to [`Gpu::attention`].
    pub attention_tokens: usize,
    pub attention_heads: usize,
    pub attention_head_dim: usize,
}

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
            scratch_bf16: Mutex::new(None),
            scratch_argmax: Mutex::new(None),
            scratch_attention: Mutex::new(None),
            scratch_attention_counters: Mutex::new(None),
            programmatic: AtomicBool::new(false),
            gemv_prefetch: AtomicU32::new(0),
            lt: std::sync::OnceLock::new(),
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

    /// How many bytes of its rows of the weight matrix each GEMV block prefetches into L2 before it waits on
    /// the previous kernel (gemv.cu); useful only with programmatic launch on. 0 (the default) turns it off.
    pub fn set_gemv_prefetch_bytes(&self, bytes: u32) {
        self.gemv_prefetch.store(bytes, Ordering::Relaxed);
    }

    pub fn gemv_prefetch_bytes(&self) -> u32 {
        self.gemv_prefetch.load(Ordering::Relaxed)
    }

    /// Whether launches use programmatic dependent launch.
    pub fn programmatic_launch(&self) -> bool {
        self.programmatic.load(Ordering::Relaxed)
    }

    /// Starts assembling a launch of kernel `name` (declared in [`SOURCES`]) on this stream.
    pub(crate) fn launcher(&self, name: &'static str) -> Launch<'_> {
        Launch {
            gpu: self,
            func: self.function(name),
            args: Vec::with_capacity(16),
        }
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

    /// Allocates every internal scratch buffer for `limits` now (buffers only grow).
    pub fn reserve_scratch(&self, limits: ScratchLimits) -> Result<()> {
        fn grow<T: DeviceRepr + ValidAsZeroBits>(
            gpu: &Gpu,
            slot: &Mutex<Option<CudaSlice<T>>>,
            len: usize,
        ) -> Result<()> {
            let mut s = slot.lock().expect("scratch lock");
            if len > 0 && s.as_ref().is_none_or(|b| b.len() < len) {
                *s = Some(gpu.alloc::<T>(len)?);
            }
            Ok(())
        }
        grow(self, &self.scratch_bf16, limits.linear_elements)?;
        grow(
            self,
            &self.scratch_argmax,
            limits.argmax_rows * limits.argmax_cols.div_ceil(crate::ops::ARGMAX_CHUNK),
        )?;
        // Attention's split partials and merge counters, at the bound that holds for every token count (so no
        // later call, prefill included, grows them: a captured decode step keeps valid pointers).
        if limits.attention_tokens > 0 && limits.attention_heads > 0 {
            let (partials, counters) = self.attention_scratch_bound(limits.attention_head_dim);
            grow(self, &self.scratch_attention, partials)?;
            grow(self, &self.scratch_attention_counters, counters)?;
        }
        Ok(())
    }

    /// The most f32 partials and u32 merge counters any attention call needs, whatever its token count: a
    /// query's keys are split only while its blocks number under two waves (`queries < 2 * SMs`, queries =
    /// tokens x heads), so the counters stay under `2 * SMs`, and `queries x splits < queries x (2 * SMs /
    /// queries + 1) < 4 * SMs` blocks write partials of `head_dim + 2` floats each.
    pub fn attention_scratch_bound(&self, head_dim: usize) -> (usize, usize) {
        let sms = self.multiprocessors() as usize;
        (4 * sms * (head_dim + 2), 2 * sms)
    }

    /// A zero-filled device buffer of `len` elements.
    pub fn alloc<T: DeviceRepr + ValidAsZeroBits>(&self, len: usize) -> Result<CudaSlice<T>> {
        self.stream.alloc_zeros::<T>(len).ctx(|| {
            format!(
                "allocating {len} elements ({} bytes)",
                len * std::mem::size_of::<T>()
            )
        })
    }

    /// Copies a host slice to a new device buffer.
    pub fn upload<T: DeviceRepr>(&self, host: &[T]) -> Result<CudaSlice<T>> {
        self.stream.clone_htod(host).ctx(|| {
            format!(
                "uploading {} elements ({} bytes)",
                host.len(),
                std::mem::size_of_val(host)
            )
        })
    }

    /// A device buffer of `n` elements filled by repeating `chunk` (element `i` is
    /// `chunk[i % chunk.len()]`), built with device-to-device copies: large random test data or
    /// synthetic weights without a host array of the full size.
    pub fn upload_tiled<T: DeviceRepr + ValidAsZeroBits>(
        &self,
        chunk: &[T],
        n: usize,
    ) -> Result<CudaSlice<T>> {
        if chunk.is_empty() {
            return Err(shape("upload_tiled", "the chunk is empty".into()));
        }
        let src = self.upload(chunk)?;
        let mut dst = self.alloc::<T>(n.max(1))?;
        let mut off = 0;
        while off < n {
            let len = chunk.len().min(n - off);
            self.copy(&src.slice(0..len), &mut dst.slice_mut(off..off + len))?;
            off += len;
        }
        Ok(dst)
    }

    /// Copies a host slice into an existing device buffer (which must be at least as long).
    pub fn upload_into<T: DeviceRepr>(
        &self,
        host: &[T],
        dst: &mut impl DevicePtrMut<T>,
    ) -> Result<()> {
        if dst.len() < host.len() {
            return Err(shape(
                "upload_into",
                format!("{} elements into a buffer of {}", host.len(), dst.len()),
            ));
        }
        self.stream
            .memcpy_htod(host, dst)
            .ctx(|| format!("uploading {} elements", host.len()))
    }

    /// Uploads raw little-endian bf16 bytes (e.g. a safetensors tensor's data) as a bf16 buffer.
    pub fn upload_bf16_bytes(&self, bytes: &[u8]) -> Result<CudaSlice<bf16>> {
        if !bytes.len().is_multiple_of(2) {
            return Err(shape(
                "upload_bf16_bytes",
                format!("{} bytes is not a whole number of bf16 values", bytes.len()),
            ));
        }
        let n = bytes.len() / 2;
        let mut dst = self.alloc::<bf16>(n)?;
        {
            // SAFETY: a u8 view of exactly the buffer's bytes.
            let mut view =
                unsafe { dst.transmute_mut::<u8>(bytes.len()) }.expect("byte view fits the buffer");
            self.stream
                .memcpy_htod(bytes, &mut view)
                .ctx(|| format!("uploading {} bf16 bytes", bytes.len()))?;
        }
        Ok(dst)
    }

    /// Copies a device buffer (or view) to a new host vector; synchronizes the stream.
    pub fn download<T: DeviceRepr>(&self, src: &impl DevicePtr<T>) -> Result<Vec<T>> {
        let v = self
            .stream
            .clone_dtoh(src)
            .ctx(|| format!("downloading {} elements", src.len()))?;
        self.synchronize()?;
        Ok(v)
    }

    /// Device-to-device copy of `src` into the front of `dst`.
    pub fn copy<T>(&self, src: &impl DevicePtr<T>, dst: &mut impl DevicePtrMut<T>) -> Result<()> {
        if dst.len() < src.len() {
            return Err(shape(
                "copy",
                format!("{} elements into a buffer of {}", src.len(), dst.len()),
            ));
        }
        self.stream
            .memcpy_dtod(src, dst)
            .ctx(|| format!("copying {} elements device to device", src.len()))
    }
}
