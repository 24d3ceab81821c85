//! How the VKAE path runs: the settings a user or a serving recipe may choose ([`VkaeOptions`]), and the
//! ablations only benchmarks and tests change ([`Ablations`], settable with the engine's `ablations` cargo
//! feature; without it every session runs [`Ablations::PRODUCT`]).

use crate::error::{EngineError, Result};

/// The VKAE path's settings; the defaults are the ones verified on the H200 (docs/benchmarks/vkae-path.md).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VkaeOptions {
    /// Capture each decode step as a CUDA graph and replay it (off: the same launches, issued eagerly).
    pub graphs: bool,
    /// Projection kernel choice for decode batches of at most 32 rows.
    pub projections: ProjectionMode,
    /// Programmatic dependent launch (Hopper and later): each of the path's kernels may be scheduled while
    /// the one before it drains, and waits on it on the device (`Gpu::set_programmatic_launch`). Ignored
    /// below compute capability 9.0.
    pub programmatic_launch: bool,
    /// What benchmarks and tests switch off to attribute a gain (feature `ablations`).
    #[cfg(feature = "ablations")]
    pub ablations: Ablations,
}

impl Default for VkaeOptions {
    fn default() -> Self {
        Self {
            graphs: true,
            projections: ProjectionMode::Measured,
            programmatic_launch: true,
            #[cfg(feature = "ablations")]
            ablations: Ablations::PRODUCT,
        }
    }
}

impl VkaeOptions {
    /// The ablations in effect: [`Ablations::PRODUCT`] unless the `ablations` feature set others.
    pub fn ablations(&self) -> Ablations {
        #[cfg(feature = "ablations")]
        {
            self.ablations
        }
        #[cfg(not(feature = "ablations"))]
        {
            Ablations::PRODUCT
        }
    }

    /// Whether the projection measurement also times cuBLASLt's algorithms (only ever with the feature).
    pub fn cublaslt_candidates(&self) -> bool {
        #[cfg(feature = "ablations")]
        {
            self.ablations.cublaslt_candidates
        }
        #[cfg(not(feature = "ablations"))]
        {
            false
        }
    }
}

/// Parts of the path a benchmark or test turns off (or, for the last two, on) one at a time to measure what
/// each buys. The product runs [`Ablations::PRODUCT`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ablations {
    /// Decode attention splits the keys by the context the cache was sized for (~64 keys a split) instead of
    /// by the batch's parallelism alone (fewer splits and no combine launch at short context).
    pub context_splits: bool,
    /// With [`ProjectionMode::Measured`], time the weight-streaming kernels at every k split (1, 2, 4, 8 of a
    /// block's warps) rather than only their default split.
    pub split_search: bool,
    /// Where the GEMV runs the MLP's gate|up projection or the per-layer-input gate, apply the GeGLU in its
    /// epilogue instead of a launch of its own.
    pub fuse_geglu: bool,
    /// The last split block of each query merges the attention partials (`AttentionPath::merge_in_kernel`)
    /// instead of a merge launch: one launch a layer fewer.
    pub merge_attention: bool,
    /// Decode attention's online softmax takes each round of 4 keys at once (their scores, one max and one
    /// rescale; `AttentionPath::softmax_per_round`) instead of key by key: a shorter dependent chain per key.
    pub attention_softmax_per_round: bool,
    /// Bytes of its weight rows each weight-streaming block asks L2 for before its programmatic-launch wait
    /// (0: none).
    #[cfg(feature = "ablations")]
    pub prefetch_bytes: u32,
    /// With [`ProjectionMode::Measured`], also time the algorithms cuBLASLt's heuristic lists for each shape
    /// (up to 8; `Gpu::gemm_bf16_lt`) beside the GEMV, the skinny GEMM and cuBLAS, each first checked against
    /// cuBLAS's output on the model's own weights.
    #[cfg(feature = "ablations")]
    pub cublaslt_candidates: bool,
}

impl Ablations {
    /// What the product runs.
    pub const PRODUCT: Ablations = Ablations {
        context_splits: true,
        split_search: true,
        fuse_geglu: true,
        merge_attention: true,
        attention_softmax_per_round: true,
        #[cfg(feature = "ablations")]
        prefetch_bytes: 0,
        #[cfg(feature = "ablations")]
        cublaslt_candidates: false,
    };

    /// Bytes each weight-streaming block prefetches into L2 (0 unless the feature set it).
    pub fn prefetch_bytes(&self) -> u32 {
        #[cfg(feature = "ablations")]
        {
            self.prefetch_bytes
        }
        #[cfg(not(feature = "ablations"))]
        {
            0
        }
    }
}

impl Default for Ablations {
    fn default() -> Self {
        Self::PRODUCT
    }
}

/// Which kernel runs a decode projection of at most 32 rows (larger row counts, i.e. prefill, use cuBLAS).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProjectionMode {
    /// Time the candidates on each shape when a batch size is first seen (the GEMV for <= 8 rows, the
    /// tensor-core skinny GEMM for <= 32 rows, cuBLAS); use the fastest.
    Measured,
    /// cuBLAS everywhere.
    Cublas,
    /// The weight-streaming GEMV wherever it applies (<= 8 rows), cuBLAS elsewhere.
    Gemv,
    /// The tensor-core skinny GEMM wherever it applies (<= 32 rows, k a multiple of 32), cuBLAS elsewhere.
    Skinny,
}

impl ProjectionMode {
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "measured" => Ok(Self::Measured),
            "cublas" => Ok(Self::Cublas),
            "gemv" => Ok(Self::Gemv),
            "skinny" => Ok(Self::Skinny),
            other => Err(EngineError::Input(format!(
                "unknown projection mode {other:?} (expected measured, cublas, gemv or skinny)"
            ))),
        }
    }
}
