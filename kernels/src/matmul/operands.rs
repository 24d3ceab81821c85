//! The operand checks every projection GEMM shares: lengths for `y = x · wᵀ`, and for the weight-streaming
//! kernels the k split and 16-byte alignment.

use crate::device::launch::need;
use crate::device::Gpu;
use crate::error::{shape, Result};
use crate::layout::GemmShape;
use cudarc::driver::DevicePtr;
use half::bf16;

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

impl Gpu {
    /// The checks the weight-streaming kernels (the GEMV, the skinny GEMM) share: the k split, the operand sizes
    /// and 16-byte alignment. The x and w device pointers, or `None` when there is nothing to compute (`n == 0`).
    pub(crate) fn weight_streaming_operands(
        &self,
        op: &'static str,
        x: &impl DevicePtr<bf16>,
        w: &impl DevicePtr<bf16>,
        dims: GemmShape,
        kparts: usize,
    ) -> Result<Option<(u64, u64)>> {
        let GemmShape { m, n, k } = dims;
        if ![1, 2, 4, 8].contains(&kparts) {
            return Err(shape(op, format!("kparts = {kparts} must be 1, 2, 4 or 8")));
        }
        need(op, "x", x.len(), m * k)?;
        need(op, "w", w.len(), n * k)?;
        if n == 0 {
            return Ok(None);
        }
        let (xp, _g1) = x.device_ptr(&self.stream);
        let (wp, _g2) = w.device_ptr(&self.stream);
        if xp % 16 != 0 || wp % 16 != 0 {
            return Err(shape(op, "x and w must be 16-byte aligned".into()));
        }
        Ok(Some((xp, wp)))
    }
}

/// The split of k across a weight-streaming block's 8 warps: the fewest parts (1, 2, 4 or 8) that still give
/// at least four blocks per multiprocessor for `n` output rows at `rows_per_warp` a warp, so narrow outputs
/// keep every SM streaming.
pub(super) fn fewest_kparts(sms: usize, n: usize, rows_per_warp: usize) -> usize {
    for kparts in [1usize, 2, 4] {
        if n.div_ceil(rows_per_warp * (8 / kparts)) >= 4 * sms {
            return kparts;
        }
    }
    8
}
