//! Assembling one kernel launch ([`Launch`]) and the checks every launcher shares: sizes against buffers
//! ([`need`]), `int` kernel arguments ([`int`]), and the error context of a failed launch ([`launched`]).

use super::Gpu;
use crate::error::{shape, Result};
use cudarc::driver::{sys, CudaFunction, DeviceRepr, LaunchConfig};

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
        cfg: LaunchConfig,
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

/// `v` as a kernel's `int` argument, or a shape error naming `what`.
pub(crate) fn int(op: &'static str, what: &str, v: usize) -> Result<i32> {
    i32::try_from(v).map_err(|_| shape(op, format!("{what} = {v} does not fit in i32")))
}

/// A shape error unless buffer `what` holds at least `want` elements.
pub(crate) fn need(op: &'static str, what: &str, have: usize, want: usize) -> Result<()> {
    if have < want {
        return Err(shape(
            op,
            format!("{what} holds {have} elements, the layout needs {want}"),
        ));
    }
    Ok(())
}

/// The error context of a failed launch of `op`.
pub(crate) fn launched(op: &'static str) -> impl FnOnce() -> String {
    move || format!("launching {op}")
}

/// A one-dimensional launch of `blocks` blocks of `threads` threads, no dynamic shared memory.
pub(crate) fn blocks(blocks: u32, threads: u32) -> LaunchConfig {
    LaunchConfig {
        grid_dim: (blocks, 1, 1),
        block_dim: (threads, 1, 1),
        shared_mem_bytes: 0,
    }
}

impl Gpu {
    /// Starts assembling a launch of kernel `name` (declared in [`super::sources::SOURCES`]) on this stream.
    pub(crate) fn launcher(&self, name: &'static str) -> Launch<'_> {
        Launch {
            gpu: self,
            func: self.function(name),
            args: Vec::with_capacity(16),
        }
    }

    /// Grid for a grid-stride element-wise kernel over `n` elements, 256 threads a block.
    pub(crate) fn elementwise_cfg(&self, n: usize) -> LaunchConfig {
        let count = n
            .div_ceil(256)
            .clamp(1, self.multiprocessors() as usize * 16);
        blocks(count as u32, 256)
    }
}

/// The device pointer of an optional operand, or null (0) for the kernel's "absent".
pub(crate) fn ptr_or_null<T>(gpu: &Gpu, s: Option<&cudarc::driver::CudaSlice<T>>) -> u64 {
    use cudarc::driver::DevicePtr;
    s.map_or(0, |s| s.device_ptr(gpu.stream()).0)
}
