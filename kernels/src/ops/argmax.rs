//! Logit soft-capping and greedy argmax (softcap.cu, argmax.cu, softcap_argmax.cu): launchers, f64 references
//! and checks.

use crate::check::{CheckReport, Checker};
use crate::device::launch::{self, int, launched, need};
use crate::device::Gpu;
use crate::error::{shape, DriverContext, Result};
use crate::tolerance::{self as tol, relative_error};
use cudarc::driver::{CudaSlice, DevicePtr, DevicePtrMut, LaunchConfig};

/// Columns each block of the argmax's first pass reduces.
pub(crate) const ARGMAX_CHUNK: usize = 4096;

/// The scratch slot of the first pass's per-chunk (value, index) partials.
pub(crate) const PARTIALS: &str = "argmax.partials";

impl Gpu {
    /// Logit soft-capping in place: `x = tanh(x / cap) * cap` over `n` f32 elements (Gemma 4's final
    /// logits: cap 30).
    pub fn softcap_inplace(
        &self,
        x: &mut impl DevicePtrMut<f32>,
        cap: f32,
        n: usize,
    ) -> Result<()> {
        const OP: &str = "softcap";
        need(OP, "x", x.len(), n)?;
        if cap.is_nan() || cap <= 0.0 {
            return Err(shape(OP, format!("cap must be positive, got {cap}")));
        }
        if n == 0 {
            return Ok(());
        }
        let n_i = n as i64;
        let (xp, _g1) = x.device_ptr_mut(&self.stream);
        let mut l = self.launcher("softcap_f32");
        l.arg(&xp).arg(&xp).arg(&n_i).arg(&cap);
        unsafe { l.launch(self.elementwise_cfg(n)) }.ctx(launched(OP))?;
        Ok(())
    }

    /// Greedy argmax over rows: `out[r]` = the first index of the largest value of `x[r, :cols]`
    /// (NaN counts as largest, as in torch.argmax). `x`: f32 `[rows, cols]`; `out`: u32 `[rows]`.
    pub fn argmax_rows(
        &self,
        x: &impl DevicePtr<f32>,
        rows: usize,
        cols: usize,
        out: &mut impl DevicePtrMut<u32>,
    ) -> Result<()> {
        const OP: &str = "argmax_rows";
        const CHUNK: usize = ARGMAX_CHUNK;
        need(OP, "x", x.len(), rows * cols)?;
        need(OP, "out", out.len(), rows)?;
        if cols == 0 {
            return Err(shape(OP, "cols must be positive".into()));
        }
        if rows == 0 {
            return Ok(());
        }
        let cols_i = int(OP, "cols", cols)?;
        let chunks = cols.div_ceil(CHUNK);
        let chunks_i = chunks as i32;
        let chunk_i = CHUNK as i32;
        let slot = self.scratch.buffer::<u64>(PARTIALS);
        let mut partial = self.scratch.grown(&slot, rows * chunks)?;
        let (xp, _g1) = x.device_ptr(&self.stream);
        let (pp, _g2) = partial.device_ptr_mut(&self.stream);
        let (op, _g3) = out.device_ptr_mut(&self.stream);
        let cfg = LaunchConfig {
            grid_dim: (chunks as u32, int(OP, "rows", rows)? as u32, 1),
            block_dim: (256, 1, 1),
            shared_mem_bytes: 0,
        };
        let mut l = self.launcher("argmax_partial");
        l.arg(&xp).arg(&pp).arg(&cols_i).arg(&chunk_i);
        unsafe { l.launch(cfg) }.ctx(launched(OP))?;
        self.argmax_final(OP, pp, op, rows, chunks_i)
    }

    /// Soft-cap then greedy argmax in two launches (softcap_argmax.cu + argmax_final): `ids[r]` = the
    /// first index of the largest `tanh(x / cap) * cap` of row `r`; with `write_back` the capped
    /// values replace `x` (the logits a caller may still want), otherwise `x` is only read.
    pub fn softcap_argmax(
        &self,
        x: &mut CudaSlice<f32>,
        rows: usize,
        cols: usize,
        cap: f32,
        write_back: bool,
        ids: &mut CudaSlice<u32>,
    ) -> Result<()> {
        const OP: &str = "softcap_argmax";
        need(OP, "x", x.len(), rows * cols)?;
        need(OP, "ids", ids.len(), rows)?;
        if cols == 0 {
            return Err(shape(OP, "cols must be positive".into()));
        }
        if cap.is_nan() || cap <= 0.0 {
            return Err(shape(OP, format!("cap must be positive, got {cap}")));
        }
        if rows == 0 {
            return Ok(());
        }
        let cols_i = int(OP, "cols", cols)?;
        let chunks = cols.div_ceil(ARGMAX_CHUNK);
        let (chunks_i, chunk_i) = (chunks as i32, ARGMAX_CHUNK as i32);
        let slot = self.scratch.buffer::<u64>(PARTIALS);
        let mut partial = self.scratch.grown(&slot, rows * chunks)?;
        let (xp, _g1) = x.device_ptr_mut(&self.stream);
        let out = if write_back { xp } else { 0u64 };
        let (pp, _g2) = partial.device_ptr_mut(&self.stream);
        let (ip, _g3) = ids.device_ptr_mut(&self.stream);
        let cfg = LaunchConfig {
            grid_dim: (chunks as u32, int(OP, "rows", rows)? as u32, 1),
            block_dim: (256, 1, 1),
            shared_mem_bytes: 0,
        };
        let mut l = self.launcher("softcap_argmax_partial");
        l.arg(&xp)
            .arg(&out)
            .arg(&pp)
            .arg(&cols_i)
            .arg(&chunk_i)
            .arg(&cap);
        unsafe { l.launch(cfg) }.ctx(launched(OP))?;
        self.argmax_final(OP, pp, ip, rows, chunks_i)
    }

    /// The argmax's second pass (argmax.cu `argmax_final`): each row's winner among its `chunks` partials
    /// at `partials`, written to `ids` (both device pointers, checked by the caller).
    fn argmax_final(
        &self,
        op: &'static str,
        partials: u64,
        ids: u64,
        rows: usize,
        chunks: i32,
    ) -> Result<()> {
        let mut l = self.launcher("argmax_final");
        l.arg(&partials).arg(&ids).arg(&chunks);
        unsafe { l.launch(launch::blocks(rows as u32, 128)) }.ctx(launched(op))?;
        Ok(())
    }
}

/// The f64 CPU reference.
pub mod reference {

    /// `tanh(x / cap) * cap`.
    pub fn softcap(x: &[f32], cap: f64) -> Vec<f64> {
        x.iter().map(|&v| (v as f64 / cap).tanh() * cap).collect()
    }

    /// First index of the largest value of each row (NaN counts as largest).
    pub fn argmax_rows(x: &[f32], rows: usize, cols: usize) -> Vec<u32> {
        (0..rows)
            .map(|r| {
                let row = &x[r * cols..(r + 1) * cols];
                if let Some(i) = row.iter().position(|v| v.is_nan()) {
                    return i as u32;
                }
                let mut best = 0;
                for (i, &v) in row.iter().enumerate() {
                    if v > row[best] {
                        best = i;
                    }
                }
                best as u32
            })
            .collect()
    }
}

impl Checker<'_> {
    /// Final-logit softcap (cap 30) on values spread well past the cap.
    pub fn softcap(&mut self, n: usize) -> Result<CheckReport> {
        let g = self.gpu;
        let x = self.rng.normal_vec(n, 40.0);
        let mut d = g.upload(&x)?;
        g.softcap_inplace(&mut d, 30.0, n)?;
        Ok(CheckReport::new(
            "softcap",
            format!("n {n} cap 30"),
            relative_error(&g.download(&d)?, &reference::softcap(&x, 30.0)),
            tol::F32_OP,
        ))
    }

    /// Greedy argmax; each row gets a planted tie of its maximum at two indices (the lower must
    /// win). Reported error: the fraction of rows whose index differs from the reference.
    pub fn argmax(&mut self, rows: usize, cols: usize) -> Result<CheckReport> {
        let g = self.gpu;
        let mut x = self.rng.normal_vec(rows * cols, 1.0);
        for r in 0..rows {
            let a = self.rng.below(cols as u64) as usize;
            let b = self.rng.below(cols as u64) as usize;
            let top = 10.0 + self.rng.uniform() as f32;
            x[r * cols + a] = top;
            x[r * cols + b] = top;
        }
        let d = g.upload(&x)?;
        let mut out = g.upload(&vec![u32::MAX; rows])?;
        g.argmax_rows(&d, rows, cols, &mut out)?;
        let got = g.download(&out)?;
        let want = reference::argmax_rows(&x, rows, cols);
        let wrong = got.iter().zip(&want).filter(|(a, b)| a != b).count();
        Ok(CheckReport::new(
            "argmax_rows (planted ties)",
            format!("rows {rows} cols {cols}"),
            wrong as f64 / rows as f64,
            0.0,
        ))
    }

    /// Soft-cap fused with the argmax: capped values written back (vs the f64 soft-cap), and the ids
    /// equal to the reference argmax of exactly those capped values (planted ties included).
    pub fn softcap_argmax(&mut self, rows: usize, cols: usize) -> Result<Vec<CheckReport>> {
        let g = self.gpu;
        let mut x = self.rng.normal_vec(rows * cols, 20.0);
        for r in 0..rows {
            // A planted tie after capping: two huge values saturate tanh to the same f32.
            let (a, b) = (
                self.rng.below(cols as u64) as usize,
                self.rng.below(cols as u64) as usize,
            );
            x[r * cols + a] = 1e4;
            x[r * cols + b] = 2e4;
        }
        let mut dx = g.upload(&x)?;
        let mut ids = g.upload(&vec![u32::MAX; rows])?;
        g.softcap_argmax(&mut dx, rows, cols, 30.0, true, &mut ids)?;
        let capped = g.download(&dx)?;
        let got = g.download(&ids)?;
        let want_ids = reference::argmax_rows(&capped, rows, cols);
        let mut ro = g.upload(&x)?;
        let mut ids2 = g.upload(&vec![u32::MAX; rows])?;
        g.softcap_argmax(&mut ro, rows, cols, 30.0, false, &mut ids2)?;
        let (got2, untouched) = (g.download(&ids2)?, g.download(&ro)? == x);
        let mismatches = got.iter().zip(&want_ids).filter(|(a, b)| a != b).count()
            + got2.iter().zip(&want_ids).filter(|(a, b)| a != b).count();
        let shape = format!("rows {rows} cols {cols}");
        Ok(vec![
            CheckReport::new(
                "softcap_argmax: capped logits",
                shape.clone(),
                relative_error(&capped, &reference::softcap(&x, 30.0)),
                tol::F32_OP,
            ),
            CheckReport::new(
                "softcap_argmax: ids (ties, read-only too)",
                shape,
                if untouched {
                    mismatches as f64
                } else {
                    f64::NAN
                },
                0.0,
            ),
        ])
    }
}

#[cfg(test)]
mod tests {
    use super::reference::*;

    #[test]
    fn argmax_takes_the_first_of_equal_maxima() {
        assert_eq!(argmax_rows(&[1.0, 3.0, 3.0, 0.0], 1, 4), vec![1]);
        assert_eq!(argmax_rows(&[1.0, f32::NAN, 3.0], 1, 3), vec![1]);
    }
}
