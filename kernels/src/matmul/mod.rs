//! Projection GEMMs `y[m, n] = x[m, k] · w[n, k]ᵀ` (bf16 operands, f32 accumulation): cuBLAS ([`cublas`]), the
//! weight-streaming GEMV for 1..=8 rows ([`gemv`]), the tensor-core skinny GEMM for 1..=32 rows ([`skinny`]),
//! cuBLASLt with a chosen algorithm ([`cublas_lt`], `ablations` feature), and the operand checks they share.

pub mod cublas;
#[cfg(feature = "ablations")]
pub mod cublas_lt;
pub mod gemv;
mod operands;
mod projection_check;
pub use projection_check::StreamingKernel;
pub mod skinny;
