//! The op families. Each file holds one family's launchers (`impl Gpu`), its f64 CPU reference
//! (`reference`) and its reference check (`impl Checker`). Every launcher checks its sizes against its
//! buffers first (a [`crate::KernelError::Shape`] names the op and what does not fit), then queues its
//! launches on the [`crate::Gpu`]'s stream and returns.
//!
//! Buffers are anything cudarc can hand a device pointer for: a [`crate::CudaSlice`], or a view of one
//! (`buf.slice(a..b)`, `buf.slice_mut(a..b)`). Every buffer must hold at least the elements the op's layout
//! needs; longer ones are fine (only the front is used). Optional operands are `Option`s (a null pointer for
//! the kernel).

pub mod argmax;
pub mod attention;
pub mod cast;
pub mod decode_step;
pub mod embedding;
pub mod geglu;
pub mod kv_cache;
pub mod norm;
pub mod ple;
pub mod qk_norm_rope_kv;
pub mod residual;
pub mod residual_norm;
pub mod rope;
pub mod suite;
