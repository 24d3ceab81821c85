//! Reference check of the projection GEMM through cuBLASLt (gemm_lt.rs): every algorithm the heuristic lists
//! for a shape, each against the f64 product of the same bf16 operands.

use super::{CheckReport, Checker};
use crate::error::Result;
use crate::tolerance as tol;

impl<'a> Checker<'a> {
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
                    |g, x, w, y| g.gemm_bf16_lt(x, w, m, n, k, algo, y),
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
