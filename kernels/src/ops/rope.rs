//! Rotate-half RoPE in place (rope.cu): launcher, f64 reference and check.

use crate::check::{CheckReport, Checker};
use crate::device::launch::{int, launched, need};
use crate::device::Gpu;
use crate::error::{shape, DriverContext, Result};
use crate::rope::Rope;
use crate::tolerance::{self as tol, relative_error};
use cudarc::driver::{DevicePtr, DevicePtrMut, LaunchConfig};

impl Gpu {
    /// RoPE in place, rotate_half convention: pair `(i, i + head_dim/2)` of every head of token `t`
    /// turns by `positions[t] * inv_freq[i]`. `x`: f32 `[tokens, heads, head_dim]`; `positions`: i32
    /// `[tokens]` (each token's own position, so a batch may mix sequences at different depths);
    /// `inv_freq`: f32 `[head_dim / 2]`, from [`crate::rope::Rope::inv_freq`] (zero entries leave
    /// their pair unrotated, as proportional rope does).
    pub fn rope(
        &self,
        x: &mut impl DevicePtrMut<f32>,
        positions: &impl DevicePtr<i32>,
        inv_freq: &impl DevicePtr<f32>,
        tokens: usize,
        heads: usize,
        head_dim: usize,
    ) -> Result<()> {
        const OP: &str = "rope";
        if !head_dim.is_multiple_of(2) || head_dim == 0 {
            return Err(shape(
                OP,
                format!("head_dim {head_dim} must be even and positive"),
            ));
        }
        need(OP, "x", x.len(), tokens * heads * head_dim)?;
        need(OP, "positions", positions.len(), tokens)?;
        need(OP, "inv_freq", inv_freq.len(), head_dim / 2)?;
        if tokens == 0 {
            return Ok(());
        }
        let heads_i = int(OP, "heads", heads)?;
        let hd_i = int(OP, "head_dim", head_dim)?;
        let threads = ((head_dim / 2).div_ceil(32) * 32).min(256) as u32;
        let (xp, _gx) = x.device_ptr_mut(&self.stream);
        let (pp, _gp) = positions.device_ptr(&self.stream);
        let (fp, _gf) = inv_freq.device_ptr(&self.stream);
        let cfg = LaunchConfig {
            grid_dim: (int(OP, "tokens", tokens)? as u32, 1, 1),
            block_dim: (threads, 1, 1),
            shared_mem_bytes: 0,
        };
        let mut b = self.launcher("rope_inplace_f32");
        b.arg(&xp).arg(&pp).arg(&fp).arg(&heads_i).arg(&hd_i);
        unsafe { b.launch(cfg) }.ctx(launched(OP))?;
        Ok(())
    }
}

/// The f64 CPU reference.
pub mod reference {

    #[allow(clippy::needless_range_loop)] // index loops mirror the formula
    /// RoPE (rotate_half) on `[tokens, heads, head_dim]`: pair `(i, i + head_dim/2)` turns by
    /// `positions[t] * inv_freq[i]`.
    pub fn rope(
        x: &[f32],
        positions: &[i32],
        inv_freq: &[f32],
        tokens: usize,
        heads: usize,
        head_dim: usize,
    ) -> Vec<f64> {
        let half = head_dim / 2;
        let mut out: Vec<f64> = x[..tokens * heads * head_dim]
            .iter()
            .map(|&v| v as f64)
            .collect();
        for t in 0..tokens {
            for h in 0..heads {
                let base = (t * heads + h) * head_dim;
                for i in 0..half {
                    let ang = positions[t] as f64 * inv_freq[i] as f64;
                    let (s, c) = ang.sin_cos();
                    let a = x[base + i] as f64;
                    let b = x[base + i + half] as f64;
                    out[base + i] = a * c - b * s;
                    out[base + i + half] = b * c + a * s;
                }
            }
        }
        out
    }
}

impl Checker<'_> {
    /// RoPE in place at random positions below `max_pos`.
    pub fn rope(
        &mut self,
        tokens: usize,
        heads: usize,
        rope: Rope,
        max_pos: usize,
    ) -> Result<CheckReport> {
        let g = self.gpu;
        let hd = rope.head_dim();
        let x = self.rng.normal_vec(tokens * heads * hd, 1.0);
        let positions: Vec<i32> = (0..tokens)
            .map(|_| self.rng.below(max_pos as u64) as i32)
            .collect();
        let inv = rope.inv_freq();
        // Poison: the kernel works in place, so the check is that every element comes back finite
        // and rotated; untouched pairs (zero inv_freq) must equal the input, which the reference has.
        let mut dx = g.upload(&x)?;
        let (dp, df) = (g.upload(&positions)?, g.upload(&inv)?);
        g.rope(&mut dx, &dp, &df, tokens, heads, hd)?;
        let got = g.download(&dx)?;
        let want = reference::rope(&x, &positions, &inv, tokens, heads, hd);
        let kind = match rope {
            Rope::Default { theta, .. } => format!("rope (default, theta {theta:e})"),
            Rope::Proportional {
                theta,
                partial_rotary_factor,
                ..
            } => {
                format!("rope (proportional {partial_rotary_factor}, {theta:e})")
            }
        };
        Ok(CheckReport::new(
            kind,
            format!("tokens {tokens} heads {heads} hd {hd} pos<{max_pos}"),
            relative_error(&got, &want),
            tol::F32_OP,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::reference::*;

    #[test]
    fn rope_at_position_zero_is_identity_and_preserves_norm() {
        let x = [1.0f32, 2.0, 3.0, 4.0];
        let f = [1.0f32, 0.5];
        assert_eq!(rope(&x, &[0], &f, 1, 1, 4), vec![1.0, 2.0, 3.0, 4.0]);
        let r = rope(&x, &[7], &f, 1, 1, 4);
        let n0: f64 = x.iter().map(|&v| (v * v) as f64).sum();
        let n1: f64 = r.iter().map(|v| v * v).sum();
        assert!((n0 - n1).abs() < 1e-9);
    }
}
