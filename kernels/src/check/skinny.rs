//! Reference check of the tensor-core skinny GEMM (gemm_skinny.cu).

use super::{bf16_round, poison_f32, CheckReport, Checker};
use crate::error::Result;
use crate::reference as cpu;
use crate::tolerance::{self as tol, relative_error};
use half::bf16;

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
        let g = self.gpu;
        let x = bf16_round(&self.rng.normal_vec(m * k, 1.0));
        let xb: Vec<bf16> = x.iter().map(|&v| bf16::from_f32(v)).collect();
        // A chunk length that is no multiple of k: tiled rows differ from each other.
        let chunk_len = (n * k).min((1 << 20) - 3);
        let chunk = self.rng.normal_bf16(chunk_len, 0.02);
        let (dx, dw) = (g.upload(&xb)?, g.upload_tiled(&chunk, n * k)?);
        let mut y = poison_f32(g, m * n)?;
        match kparts {
            Some(p) => g.skinny_gemm_bf16_split(&dx, &dw, m, n, k, p, &mut y)?,
            None => g.skinny_gemm_bf16(&dx, &dw, m, n, k, &mut y)?,
        }
        let got = g.download(&y)?;
        let cols: Vec<usize> = match sample_rows {
            Some(s) if s < n => {
                let mut c: Vec<usize> = (0..s).map(|_| self.rng.below(n as u64) as usize).collect();
                c.push(n - 1); // the ragged last row tile
                c
            }
            _ => (0..n).collect(),
        };
        let wsub: Vec<bf16> = cols
            .iter()
            .flat_map(|&j| (0..k).map(move |i| (j * k + i) % chunk_len))
            .map(|idx| chunk[idx])
            .collect();
        let want = cpu::gemm(&x, &wsub, m, cols.len(), k);
        let gsub: Vec<f32> = (0..m)
            .flat_map(|i| cols.iter().map(move |&j| (i, j)))
            .map(|(i, j)| got[i * n + j])
            .collect();
        let all_written = got[..m * n].iter().all(|v| v.is_finite());
        Ok(CheckReport::new(
            "skinny_gemm_bf16 (tensor cores)",
            format!(
                "m {m} n {n} k {k} kparts {kparts:?}{}",
                if cols.len() < n {
                    format!(" ({} cols checked)", cols.len())
                } else {
                    String::new()
                }
            ),
            if all_written {
                relative_error(&gsub, &want)
            } else {
                f64::NAN
            },
            tol::MMA_F32_ACCUMULATION,
        ))
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
