//! # vkae-kernels: the GPU foundation of VKAE's decode path
//!
//! CUDA kernels compiled at start with NVRTC, a cuBLAS projection GEMM, and an f64 CPU reference
//! for each, on [`cudarc`] (CUDA 13, libraries loaded at run time, so this crate builds and its
//! tests pass, skipping the GPU parts, on machines without CUDA).
//!
//! ## Use
//! ```no_run
//! # fn main() -> vkae_kernels::Result<()> {
//! use vkae_kernels::{Gpu, half::bf16};
//! let gpu = Gpu::new()?; // device 0: context, stream, cuBLAS, every module compiled for sm_XY
//! let x = gpu.upload(&vec![1.0f32; 2 * 2560])?;
//! let w = gpu.upload(&vec![bf16::ONE; 2560])?;
//! let mut y = gpu.alloc::<f32>(2 * 2560)?;
//! gpu.rms_norm(&x, Some(&w), 1e-6, 2, 2560, &mut y)?;
//! let host: Vec<f32> = gpu.download(&y)?; // synchronizes
//! # Ok(()) }
//! ```
//!
//! ## Conventions (every op)
//! - All tensors are row-major and contiguous; shapes below are `[outer, ..., inner]`.
//!   Activations are f32; weights and the KV cache are bf16 ([`half::bf16`]); token ids u32;
//!   positions and sequence ids i32.
//! - A batch is a flat list of `tokens` rows. Each token carries its own position (and, for the KV
//!   cache and attention, its sequence id), so prefill (`B` sequences x `T` tokens) and decode
//!   (`B` tokens, one per sequence, each at its own depth) use the same ops.
//! - Buffers are cudarc [`CudaSlice`]s or views of them; each must hold at least what the layout
//!   needs. Sizes are checked before launch ([`KernelError::Shape`]); every CUDA, NVRTC and cuBLAS
//!   call's result is checked and returned as a [`KernelError`] that says what was being done.
//! - Ops queue work on the [`Gpu`]'s single stream and return; [`Gpu::download`] and
//!   [`Gpu::synchronize`] wait (and surface asynchronous launch errors).
//! - Every launch goes through `cuLaunchKernelEx`. [`Gpu::set_programmatic_launch`] (compute capability 9.0+)
//!   lets each kernel be scheduled while its predecessor drains; every kernel waits on its predecessor before it
//!   touches data (`PDL_ENTRY` in `common.cuh`), so results do not depend on the setting.
//!
//! ## Ops ([`Gpu`] methods)
//! | op | what | layout |
//! |---|---|---|
//! | [`Gpu::embed`] | `out = table[ids] * scale` | table bf16 `[vocab, hidden]`, ids u32 `[rows]`, out f32 `[rows, hidden]` |
//! | [`Gpu::rms_norm`], [`Gpu::rms_norm_inplace`] | `x * rsqrt(mean(x²) + eps) * weight` (Gemma 4: weight, not 1 + weight; `None`: scale-free) | x, out f32 `[rows, cols]`, weight bf16 `[cols]` |
//! | [`Gpu::rope`] | rotate_half RoPE in place, angle `pos * inv_freq[i]` | x f32 `[tokens, heads, head_dim]`, positions i32 `[tokens]`, inv_freq f32 `[head_dim/2]` from [`Rope::inv_freq`] |
//! | [`Gpu::kv_append`] | write new K/V into a layer's cache | k_new, v_new f32 `[tokens, kv_heads, head_dim]`; caches bf16 `[num_seqs, capacity, kv_heads, head_dim]` ([`KvLayout`]), position p in slot `p % capacity` |
//! | [`Gpu::attention`] | causal (optionally sliding-window) GQA attention against the cache, `scale * q·k`, f32 softmax, split-KV | q f32 `[tokens, heads, head_dim]`, out f32 or bf16 `[tokens, heads, head_dim]`, head_dim ≤ 512 ([`AttentionSpec`]) |
//! | [`Gpu::geglu`] | `gelu_tanh(gate) * up`, strided rows | gate, up f32 rows with strides, out f32 `[rows, n]` |
//! | [`Gpu::add`], [`Gpu::add_inplace`] | `a + b` (residual) | f32 `[n]` |
//! | [`Gpu::scale`], [`Gpu::scale_inplace`] | `x * s` | f32 `[n]` |
//! | [`Gpu::softcap_inplace`] | `tanh(x / cap) * cap` | f32 `[n]` |
//! | [`Gpu::argmax_rows`] | first index of each row's maximum (greedy) | x f32 `[rows, cols]`, out u32 `[rows]` |
//! | [`Gpu::cast_f32_to_bf16`], [`Gpu::cast_bf16_to_f32`] | casts (round to nearest even) | `[n]` |
//! | [`Gpu::gemm_bf16`] | `y = x · Wᵀ` (cuBLAS, f32 accumulate) | x bf16 `[m, k]`, W bf16 `[n, k]` (HF Linear layout), y f32 `[m, n]` |
//! | [`Gpu::linear`] | the same with an f32 `x`, cast to bf16 first | x f32 `[m, k]` |
//!
//! Fused and weight-streaming ops of the VKAE decode path (one `.cu` file each):
//!
//! | op | what |
//! |---|---|
//! | [`Gpu::residual_step`] | `x = (x + rmsnorm(o)·w_post)·s`, then bf16 `rmsnorm(x)·w_next` and/or bf16 `x` (sandwich norms, layer scalar) |
//! | [`Gpu::qkv_prologue`] | from the fused q\|k\|v projection: q/k RMSNorm + RoPE, v scale-free norm, bf16 KV-cache write ([`QkvLayout`]) |
//! | [`Gpu::ple_combine`] | per-layer inputs: norm of the scaled model projection + the table row, combined |
//! | [`Gpu::softcap_argmax`] | soft-cap fused into the argmax's first pass (capped logits optionally written back) |
//! | [`Gpu::geglu_to_bf16`] | GeGLU writing the next projection's bf16 operand |
//! | [`Gpu::gemv_bf16`] | weight-streaming GEMM for 1..=8 rows: 16-byte loads, 4 rows a warp, split-K inside the block; [`Gpu::gemv_bf16_geglu_halves`] / [`Gpu::gemv_bf16_geglu_with`] apply GeGLU in its epilogue |
//! | [`Gpu::skinny_gemm_bf16`] | tensor-core weight-streaming GEMM for 1..=32 rows (`mma.sync` m16n8k16, bf16 in, f32 accumulate): 16-byte loads, 16 or 32 output rows a warp, split-K inside the block; `k % 32 == 0` |
//! | [`Gpu::decode_advance`] | end of a captured decode step: ids to history, positions + 1, step + 1 on the device |
//!
//! Memory: [`Gpu::alloc`] (zeroed), [`Gpu::upload`], [`Gpu::upload_into`],
//! [`Gpu::upload_bf16_bytes`] (raw little-endian bf16, e.g. safetensors data), [`Gpu::download`],
//! [`Gpu::copy`], [`Gpu::upload_tiled`] (a chunk repeated: large random or synthetic data).
//! [`Gpu::reserve_scratch`] sizes the internal scratch buffers of `linear`, `argmax_rows` and
//! `attention` up front (nothing then allocates inside a captured CUDA graph); the cuBLAS workspace
//! is allocated once at start for the same reason.
//!
//! ## Layout
//! - [`device`]: the [`Gpu`] (context, stream, cuBLAS, compiled modules), launch assembly, memory, the scratch
//!   arena ops keep their buffers in, the CUDA sources and the module cache.
//! - [`ops`]: one file per op family with its launchers, its f64 CPU reference and its check.
//! - [`matmul`]: the projection GEMMs (cuBLAS, the weight-streaming GEMV, the skinny tensor-core GEMM; with the
//!   `ablations` feature, cuBLASLt with a chosen algorithm).
//! - [`layout`]: the operand groups launchers take ([`KvLayout`], [`KvCache`], [`Tokens`], [`GemmShape`], ...).
//!
//! ## Checks
//! Each family's `reference` module holds an f64 CPU reference; its check (a [`check::Checker`] method) runs
//! the kernel on fresh random inputs with its output poisoned (NaN) first and compares by
//! `||out - ref|| / ||ref||` against the tolerances in [`tolerance`]. [`kernels_sha256`] is the digest of the
//! exact sources compiled.
//!
//! ## Features
//! `ablations` (off by default) adds what only benchmarks and ablation runs use: cuBLASLt algorithm choice
//! (`Gpu::gemm_bf16_lt`) and the weight-streaming kernels' L2 prefetch (`Gpu::set_gemv_prefetch_bytes`, with its
//! block in gemv.cu and gemm_skinny.cu).

pub mod bench;
pub mod check;
pub mod device;
mod error;
pub mod layout;
pub mod matmul;
pub mod ops;
pub mod rng;
pub mod rope;
mod scratch_limits;
pub mod tolerance;

pub use cudarc;
pub use cudarc::driver::{CudaSlice, CudaView, CudaViewMut, DevicePtr, DevicePtrMut};
pub use device::sources::kernels_sha256;
pub use device::{cuda_libraries_present, module_cache, sources, Gpu};
pub use error::{KernelError, Result};
pub use half;
pub use layout::{GemmShape, KvCache, KvCacheMut, KvLayout, QkvLayout, Strided, Tokens};
#[cfg(feature = "ablations")]
pub use matmul::cublas_lt::{LT_MAX_ALGOS, LT_WORKSPACE_BYTES};
pub use matmul::gemv::GEMV_MAX_ROWS;
pub use matmul::skinny::SKINNY_MAX_ROWS;
pub use ops::attention::{
    AttentionOutput, AttentionPath, AttentionSpec, ATTENTION_KEYS_PER_SPLIT, ATTENTION_MAX_SPLITS,
    MAX_HEAD_DIM,
};
pub use ops::ple::PleCombine;
pub use ops::qk_norm_rope_kv::QkvPrologue;
pub use ops::residual_norm::ResidualNorm;
pub use rope::Rope;
pub use scratch_limits::ScratchLimits;
