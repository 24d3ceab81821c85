//! The fused residual step after a projection: residual add, post-norm, layer scalar, then the next norm
//! (residual_norm.cu): launcher, f64 reference and check.

use crate::check::{bf16_to_f32, CheckReport, Checker};
use crate::device::launch::{int, launched, need, ptr_or_null};
use crate::device::Gpu;
use crate::error::{shape, DriverContext, Result};
use crate::tolerance::{self as tol, relative_error};
use cudarc::driver::{CudaSlice, DevicePtrMut, LaunchConfig};
use half::bf16;

/// The residual step after a projection: `x = (x + rmsnorm(o) * w_post) * s`, then `out_norm =
/// bf16(rmsnorm(x) * w_next)` and `out_x = bf16(x)` where given ([`Gpu::residual_step`]'s operands, with
/// `o` the projection's output).
pub struct ResidualNorm<'a> {
    /// The residual stream, f32 `[rows, cols]`, updated in place.
    pub x: &'a mut CudaSlice<f32>,
    pub w_post: Option<&'a CudaSlice<bf16>>,
    pub s: f32,
    pub w_next: Option<&'a CudaSlice<bf16>>,
    pub out_norm: Option<&'a mut CudaSlice<bf16>>,
    pub out_x: Option<&'a mut CudaSlice<bf16>>,
    pub eps: f32,
}

impl ResidualNorm<'_> {
    /// Checks every operand against `rows` rows of `cols` values.
    fn check(&self, op: &'static str, rows: usize, cols: usize) -> Result<()> {
        let n = rows * cols;
        need(op, "x", self.x.len(), n)?;
        for (what, w) in [("w_post", self.w_post), ("w_next", self.w_next)] {
            if let Some(w) = w {
                need(op, what, w.len(), cols)?;
            }
        }
        if let Some(b) = &self.out_norm {
            need(op, "out_norm", b.len(), n)?;
        }
        if let Some(b) = &self.out_x {
            need(op, "out_x", b.len(), n)?;
        }
        Ok(())
    }
}

/// Row elements one thread of the residual step holds (`RESID_PER_THREAD` in residual_norm.cu).
const RESID_PER_THREAD: usize = 12;

impl Gpu {
    /// Fused residual add + RMSNorm (residual_norm.cu), `rows` rows of `cols`:
    /// `x = (x + rmsnorm(o) * w_post) * s` (no `o`: `x *= s`), then `out_norm = bf16(rmsnorm(x) * w_next)`
    /// and `out_x = bf16(x)` where given. Weights `None` are scale-free norms.
    pub fn residual_step(
        &self,
        o: Option<&CudaSlice<f32>>,
        step: ResidualNorm<'_>,
        rows: usize,
        cols: usize,
    ) -> Result<()> {
        const OP: &str = "residual_rms_norm";
        if cols == 0 {
            return Err(shape(OP, "cols must be positive".into()));
        }
        step.check(OP, rows, cols)?;
        if let Some(o) = o {
            need(OP, "o", o.len(), rows * cols)?;
        }
        if rows == 0 {
            return Ok(());
        }
        let cols_i = int(OP, "cols", cols)?;
        let (xp, _gx) = step.x.device_ptr_mut(&self.stream);
        let op = ptr_or_null(self, o);
        let wp = ptr_or_null(self, step.w_post);
        let wn = ptr_or_null(self, step.w_next);
        let onp = step
            .out_norm
            .map_or(0, |b| b.device_ptr_mut(&self.stream).0);
        let oxp = step.out_x.map_or(0, |b| b.device_ptr_mut(&self.stream).0);
        let threads = (cols / 8).next_power_of_two().clamp(32, 1024);
        if cols > threads * RESID_PER_THREAD {
            return Err(shape(
                OP,
                format!("cols {cols} is more than {}", 1024 * RESID_PER_THREAD),
            ));
        }
        let cfg = LaunchConfig {
            grid_dim: (int(OP, "rows", rows)? as u32, 1, 1),
            block_dim: (threads as u32, 1, 1),
            shared_mem_bytes: 0,
        };
        let mut b = self.launcher("residual_rms_norm");
        b.arg(&xp)
            .arg(&op)
            .arg(&wp)
            .arg(&step.s)
            .arg(&wn)
            .arg(&onp)
            .arg(&oxp);
        b.arg(&cols_i).arg(&step.eps);
        unsafe { b.launch(cfg) }.ctx(launched(OP))?;
        Ok(())
    }
}

/// The f64 CPU reference.
pub mod reference {
    use crate::ops::norm::reference::rms_norm;
    use half::bf16;

    /// Fused residual add + RMSNorm: `x_new = (x + rmsnorm(o) * w_post) * s` (no `o`: `x * s`); returns
    /// `(x_new, rmsnorm(x_new) * w_next)`, for `rows` rows of `cols` (`shape = (rows, cols)`).
    pub fn residual_rms_norm(
        x: &[f32],
        o: Option<&[f32]>,
        w_post: Option<&[bf16]>,
        s: f64,
        w_next: Option<&[bf16]>,
        (rows, cols): (usize, usize),
        eps: f64,
    ) -> (Vec<f64>, Vec<f64>) {
        let normed_o = o.map(|o| rms_norm(o, w_post, eps, rows, cols));
        let x_new: Vec<f64> = (0..rows * cols)
            .map(|i| (x[i] as f64 + normed_o.as_ref().map_or(0.0, |n| n[i])) * s)
            .collect();
        let mut out = Vec::with_capacity(rows * cols);
        for r in 0..rows {
            let row = &x_new[r * cols..(r + 1) * cols];
            let inv = 1.0 / (row.iter().map(|v| v * v).sum::<f64>() / cols as f64 + eps).sqrt();
            out.extend(
                row.iter()
                    .enumerate()
                    .map(|(i, v)| v * inv * w_next.map_or(1.0, |w| w[i].to_f64())),
            );
        }
        (x_new, out)
    }
}

impl Checker<'_> {
    /// Fused residual add + RMSNorm: the updated residual (f32) and both bf16 outputs.
    pub fn residual_rms_norm(
        &mut self,
        rows: usize,
        cols: usize,
        with_branch: bool,
    ) -> Result<Vec<CheckReport>> {
        let g = self.gpu;
        let x = self.rng.normal_vec(rows * cols, 2.0);
        let o = self.rng.normal_vec(rows * cols, 5.0);
        let (w_post, w_next) = (
            self.rng.norm_weight_bf16(cols),
            self.rng.norm_weight_bf16(cols),
        );
        let s = (0.25 + self.rng.uniform()) as f32;
        let eps = 1e-6f32;
        let mut dx = g.upload(&x)?;
        let (dout, dwp, dwn) = (g.upload(&o)?, g.upload(&w_post)?, g.upload(&w_next)?);
        let mut on = g.upload(&vec![bf16::NAN; rows * cols])?;
        let mut ox = g.upload(&vec![bf16::NAN; rows * cols])?;
        let step = ResidualNorm {
            x: &mut dx,
            w_post: Some(&dwp),
            s,
            w_next: Some(&dwn),
            out_norm: Some(&mut on),
            out_x: Some(&mut ox),
            eps,
        };
        g.residual_step(with_branch.then_some(&dout), step, rows, cols)?;
        let (got_x, got_n, got_xb) = (
            g.download(&dx)?,
            bf16_to_f32(&g.download(&on)?),
            bf16_to_f32(&g.download(&ox)?),
        );
        let (want_x, want_n) = reference::residual_rms_norm(
            &x,
            with_branch.then_some(&o[..]),
            Some(&w_post),
            s as f64,
            Some(&w_next),
            (rows, cols),
            eps as f64,
        );
        let what = if with_branch { "x + norm(o)" } else { "x only" };
        let shape = format!("rows {rows} cols {cols} s {s:.3}");
        Ok(vec![
            CheckReport::new(
                format!("residual_rms_norm ({what}): x"),
                shape.clone(),
                relative_error(&got_x, &want_x),
                tol::F32_OP,
            ),
            CheckReport::new(
                format!("residual_rms_norm ({what}): bf16 norm"),
                shape.clone(),
                relative_error(&got_n, &want_n),
                tol::BF16_ROUNDING,
            ),
            CheckReport::new(
                format!("residual_rms_norm ({what}): bf16 x"),
                shape,
                relative_error(&got_xb, &want_x),
                tol::BF16_ROUNDING,
            ),
        ])
    }
}
