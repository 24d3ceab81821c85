//! RMSNorm over rows, Gemma 4 convention (rms_norm.cu): launcher, f64 reference and check.

use crate::check::{poison_f32, CheckReport, Checker};
use crate::device::launch::{int, launched, need};
use crate::device::Gpu;
use crate::error::{shape, DriverContext, Result};
use crate::tolerance::{self as tol, relative_error};
use cudarc::driver::{CudaSlice, DevicePtr, DevicePtrMut, LaunchConfig};
use half::bf16;

impl Gpu {
    fn rms_norm_raw(
        &self,
        x: u64,
        weight: Option<&CudaSlice<bf16>>,
        out: u64,
        eps: f32,
        rows: usize,
        cols: usize,
    ) -> Result<()> {
        const OP: &str = "rms_norm";
        if let Some(w) = weight {
            need(OP, "weight", w.len(), cols)?;
        }
        if rows == 0 {
            return Ok(());
        }
        if cols == 0 {
            return Err(shape(OP, "cols must be positive".into()));
        }
        let cols_i = int(OP, "cols", cols)?;
        let threads = (cols / 8).next_power_of_two().clamp(32, 1024) as u32;
        let (w, _gw) = match weight {
            Some(w) => {
                let (p, g) = w.device_ptr(&self.stream);
                (p, Some(g))
            }
            None => (0u64, None),
        };
        let cfg = LaunchConfig {
            grid_dim: (int(OP, "rows", rows)? as u32, 1, 1),
            block_dim: (threads, 1, 1),
            shared_mem_bytes: 0,
        };
        let mut b = self.launcher("rms_norm_f32");
        b.arg(&x).arg(&w).arg(&out).arg(&cols_i).arg(&eps);
        unsafe { b.launch(cfg) }.ctx(launched(OP))?;
        Ok(())
    }

    /// RMSNorm over rows, Gemma 4 convention: `out = x * rsqrt(mean(x^2) + eps) * weight`
    /// (`weight: None` is the scale-free variant). `x`, `out`: f32 `[rows, cols]`; `weight`: bf16
    /// `[cols]`. Use `rows = tokens * heads, cols = head_dim` for the per-head q/k/v norms.
    pub fn rms_norm(
        &self,
        x: &impl DevicePtr<f32>,
        weight: Option<&CudaSlice<bf16>>,
        eps: f32,
        rows: usize,
        cols: usize,
        out: &mut impl DevicePtrMut<f32>,
    ) -> Result<()> {
        need("rms_norm", "x", x.len(), rows * cols)?;
        need("rms_norm", "out", out.len(), rows * cols)?;
        let (xp, _gx) = x.device_ptr(&self.stream);
        let (op, _go) = out.device_ptr_mut(&self.stream);
        self.rms_norm_raw(xp, weight, op, eps, rows, cols)
    }

    /// [`Gpu::rms_norm`] in place on `x`.
    pub fn rms_norm_inplace(
        &self,
        x: &mut impl DevicePtrMut<f32>,
        weight: Option<&CudaSlice<bf16>>,
        eps: f32,
        rows: usize,
        cols: usize,
    ) -> Result<()> {
        need("rms_norm", "x", x.len(), rows * cols)?;
        let (xp, _gx) = x.device_ptr_mut(&self.stream);
        self.rms_norm_raw(xp, weight, xp, eps, rows, cols)
    }
}

/// The f64 CPU reference.
pub mod reference {
    use half::bf16;

    /// Gemma 4 RMSNorm over rows: `x * (mean(x^2) + eps)^-1/2 * weight` (no weight: scale-free).
    pub fn rms_norm(
        x: &[f32],
        weight: Option<&[bf16]>,
        eps: f64,
        rows: usize,
        cols: usize,
    ) -> Vec<f64> {
        let mut out = Vec::with_capacity(rows * cols);
        for r in 0..rows {
            let row = &x[r * cols..(r + 1) * cols];
            let ms = row.iter().map(|&v| (v as f64) * (v as f64)).sum::<f64>() / cols as f64;
            let inv = 1.0 / (ms + eps).sqrt();
            for (i, &v) in row.iter().enumerate() {
                let w = weight.map_or(1.0, |w| w[i].to_f64());
                out.push(v as f64 * inv * w);
            }
        }
        out
    }
}

impl Checker<'_> {
    /// RMSNorm with or without weight, out of place or in place.
    pub fn rms_norm(
        &mut self,
        rows: usize,
        cols: usize,
        weighted: bool,
        inplace: bool,
    ) -> Result<CheckReport> {
        let g = self.gpu;
        let x = self.rng.normal_vec(rows * cols, 3.0);
        let w = self.rng.norm_weight_bf16(cols);
        let dw = g.upload(&w)?;
        let weight = weighted.then_some(&dw);
        let eps = 1e-6f32;
        let got = if inplace {
            let mut dx = g.upload(&x)?;
            g.rms_norm_inplace(&mut dx, weight, eps, rows, cols)?;
            g.download(&dx)?
        } else {
            let dx = g.upload(&x)?;
            let mut out = poison_f32(g, rows * cols)?;
            g.rms_norm(&dx, weight, eps, rows, cols, &mut out)?;
            g.download(&out)?
        };
        let want = reference::rms_norm(&x, weighted.then_some(&w[..]), eps as f64, rows, cols);
        let name = format!(
            "rms_norm ({}{})",
            if weighted { "weight" } else { "scale-free" },
            if inplace { ", in place" } else { "" }
        );
        Ok(CheckReport::new(
            name,
            format!("rows {rows} cols {cols}"),
            relative_error(&got[..rows * cols], &want),
            tol::F32_OP,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::reference::*;
    use half::bf16;

    #[test]
    fn rms_norm_of_constant_row_is_the_weight() {
        let w = [bf16::from_f32(2.0), bf16::from_f32(0.5)];
        let out = rms_norm(&[3.0, 3.0], Some(&w), 0.0, 1, 2);
        assert!((out[0] - 2.0).abs() < 1e-12 && (out[1] - 0.5).abs() < 1e-12);
    }
}
