//! Reference check of the tensor-core skinny GEMM (gemm_skinny.cu).

use super::{CheckReport, Checker};
use crate::error::Result;
use crate::tolerance as tol;

impl<'a> Checker<'a> {
    /// The skinny GEMM against the f64 product of the same bf16 operands (`sample_rows` of W checked
    /// when given; every output must be written). `kparts` `None` is the default split.
    pub fn skinny_split(
        &mut self,
        m: usize,
        n: usize,
        k: usize,
        kparts: Option<usize>,
        sample_rows: Option<usize>,
    ) -> Result<CheckReport> {
        self.projection(
            "skinny_gemm_bf16 (tensor cores)",
            (m, n, k, kparts, sample_rows),
            tol::MMA_F32_ACCUMULATION,
            |g, x, w, y| match kparts {
                Some(p) => g.skinny_gemm_bf16_split(x, w, m, n, k, p, y),
                None => g.skinny_gemm_bf16(x, w, m, n, k, y),
            },
        )
    }

    /// [`Checker::skinny_split`] with the default split.
    pub fn skinny(
        &mut self,
        m: usize,
        n: usize,
        k: usize,
        sample_rows: Option<usize>,
    ) -> Result<CheckReport> {
        self.skinny_split(m, n, k, None, sample_rows)
    }

    /// The skinny GEMM at every batch-tile edge (1..=32 rows), ragged and E4B widths, k from one
    /// chunk to 10240, and every k split.
    pub fn skinny_suite(&mut self) -> Result<Vec<CheckReport>> {
        let mut r = vec![];
        for m in [1, 2, 3, 7, 8, 9, 16, 17, 31, 32] {
            for (n, k, sample) in [
                (100, 256, None),
                (2560 + 8, 32, None),
                (256, 2560, None),
                (2048, 10240, Some(64)),
            ] {
                r.push(self.skinny(m, n, k, sample)?);
            }
            for kparts in [1, 2, 4, 8] {
                r.push(self.skinny_split(m, 2560 + 8, 2560, Some(kparts), Some(96))?);
                // 25 chunks: uneven splits, parts shorter than the ring of chunks in flight.
                r.push(self.skinny_split(m, 100, 32 * 25, Some(kparts), None)?);
            }
        }
        for m in [1, 8, 32] {
            r.push(self.skinny(m, 262_144, 2560, Some(64))?);
        }
        Ok(r)
    }
}
