//! The crate's one error type: every CUDA, NVRTC, cuBLAS and cuBLASLt failure, with what was being done.

use cudarc::cublas::result::CublasError;
use cudarc::driver::DriverError;

/// Errors from the GPU layer. Each carries the operation it interrupted.
#[derive(Debug, thiserror::Error)]
pub enum KernelError {
    /// No usable CUDA installation (driver, NVRTC or cuBLAS library missing, or no device).
    #[error("CUDA is not available: {0}")]
    Unavailable(String),
    /// A CUDA driver call failed.
    #[error("CUDA driver error while {context}: {source}")]
    Driver {
        context: String,
        #[source]
        source: DriverError,
    },
    /// NVRTC rejected a kernel module; `log` is the compiler's own output.
    #[error("NVRTC could not compile {module} ({message}):\n{log}")]
    Compile {
        module: String,
        message: String,
        log: String,
    },
    /// A cuBLAS call failed.
    #[error("cuBLAS error while {context}: {source}")]
    Cublas {
        context: String,
        #[source]
        source: CublasError,
    },
    /// A cuBLASLt call failed (a missing libcublasLt is [`KernelError::Unavailable`]).
    #[error("cuBLASLt error while {context}: {source}")]
    CublasLt {
        context: String,
        #[source]
        source: cudarc::cublaslt::result::CublasError,
    },
    /// An op was called with sizes that do not fit its buffers or its limits.
    #[error("{op}: {message}")]
    Shape { op: &'static str, message: String },
}

/// Result alias for this crate.
pub type Result<T, E = KernelError> = std::result::Result<T, E>;

pub(crate) trait DriverContext<T> {
    fn ctx(self, context: impl FnOnce() -> String) -> Result<T>;
}

impl<T> DriverContext<T> for std::result::Result<T, DriverError> {
    fn ctx(self, context: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|source| KernelError::Driver {
            context: context(),
            source,
        })
    }
}

pub(crate) fn shape(op: &'static str, message: String) -> KernelError {
    KernelError::Shape { op, message }
}
