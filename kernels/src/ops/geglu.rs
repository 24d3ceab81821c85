//! GeGLU, `gelu_tanh(gate) * up` over strided rows, f32 or bf16 out (geglu.cu): launchers, f64 reference and
//! checks.

use crate::check::{bf16_to_f32, poison_f32, CheckReport, Checker};
use crate::device::launch::{int, launched, need};
use crate::device::Gpu;
use crate::error::{shape, DriverContext, Result};
use crate::layout::Strided;
use crate::tolerance::{self as tol, relative_error};
use cudarc::driver::{DevicePtr, DevicePtrMut};
use half::bf16;

impl Gpu {
    /// GeGLU: `out[r, c] = gelu_tanh(gate[r * gate.stride + c]) * up[r * up.stride + c]` for
    /// `r < rows, c < n`; `out`: f32 `[rows, n]`. With a fused gate/up projection output
    /// `gu: [rows, 2n]` pass `gate = gu.slice(..)`, `up = gu.slice(n..)`, both strides `2n`.
    pub fn geglu<G, U>(
        &self,
        gate: Strided<'_, G>,
        up: Strided<'_, U>,
        rows: usize,
        n: usize,
        out: &mut impl DevicePtrMut<f32>,
    ) -> Result<()>
    where
        G: DevicePtr<f32>,
        U: DevicePtr<f32>,
    {
        need("geglu", "out", out.len(), rows * n)?;
        let (op, _g) = out.device_ptr_mut(&self.stream);
        self.geglu_launch("geglu", "geglu_f32", gate, up, (rows, n), op)
    }

    /// GeGLU with a bf16 output (geglu.cu `geglu_f32_to_bf16`), the next projection's operand; arguments as
    /// [`Gpu::geglu`].
    pub fn geglu_to_bf16<G, U>(
        &self,
        gate: Strided<'_, G>,
        up: Strided<'_, U>,
        rows: usize,
        n: usize,
        out: &mut impl DevicePtrMut<bf16>,
    ) -> Result<()>
    where
        G: DevicePtr<f32>,
        U: DevicePtr<f32>,
    {
        need("geglu_to_bf16", "out", out.len(), rows * n)?;
        let (op, _g) = out.device_ptr_mut(&self.stream);
        self.geglu_launch(
            "geglu_to_bf16",
            "geglu_f32_to_bf16",
            gate,
            up,
            (rows, n),
            op,
        )
    }

    /// Checks the inputs of `rows x n` outputs and launches kernel `func` writing to `out` (already checked).
    fn geglu_launch<G, U>(
        &self,
        op: &'static str,
        func: &'static str,
        gate: Strided<'_, G>,
        up: Strided<'_, U>,
        (rows, n): (usize, usize),
        out: u64,
    ) -> Result<()>
    where
        G: DevicePtr<f32>,
        U: DevicePtr<f32>,
    {
        if gate.stride < n || up.stride < n {
            return Err(shape(
                op,
                format!("strides {}, {} must be >= n = {n}", gate.stride, up.stride),
            ));
        }
        if rows == 0 || n == 0 {
            return Ok(());
        }
        need(op, "gate", gate.buf.len(), (rows - 1) * gate.stride + n)?;
        need(op, "up", up.buf.len(), (rows - 1) * up.stride + n)?;
        let rows_i = int(op, "rows", rows)?;
        let n_i = int(op, "n", n)?;
        let (gs, us) = (gate.stride as i64, up.stride as i64);
        let (gp, _g1) = gate.buf.device_ptr(&self.stream);
        let (upp, _g2) = up.buf.device_ptr(&self.stream);
        let mut b = self.launcher(func);
        b.arg(&gp)
            .arg(&upp)
            .arg(&out)
            .arg(&rows_i)
            .arg(&n_i)
            .arg(&gs)
            .arg(&us);
        unsafe { b.launch(self.elementwise_cfg(rows * n)) }.ctx(launched(op))?;
        Ok(())
    }
}

/// The f64 CPU reference.
pub mod reference {

    /// PyTorch's tanh-approximated GELU.
    pub fn gelu_tanh(x: f64) -> f64 {
        0.5 * x * (1.0 + ((2.0 / std::f64::consts::PI).sqrt() * (x + 0.044715 * x * x * x)).tanh())
    }

    /// `out[r, c] = gelu_tanh(gate[r * gate_stride + c]) * up[r * up_stride + c]`.
    pub fn geglu(
        gate: &[f32],
        gate_stride: usize,
        up: &[f32],
        up_stride: usize,
        rows: usize,
        n: usize,
    ) -> Vec<f64> {
        let mut out = Vec::with_capacity(rows * n);
        for r in 0..rows {
            for c in 0..n {
                out.push(
                    gelu_tanh(gate[r * gate_stride + c] as f64) * up[r * up_stride + c] as f64,
                );
            }
        }
        out
    }
}

impl Checker<'_> {
    /// GeGLU with separate gate/up tensors, or the two halves of one fused `[rows, 2n]` tensor.
    pub fn geglu(&mut self, rows: usize, n: usize, fused: bool) -> Result<CheckReport> {
        let g = self.gpu;
        let mut out = poison_f32(g, rows * n)?;
        let (got, want) = if fused {
            let gu = self.rng.normal_vec(rows * 2 * n, 2.0);
            let d = g.upload(&gu)?;
            g.geglu(
                Strided::new(&d, 2 * n),
                Strided::new(&d.slice(n..), 2 * n),
                rows,
                n,
                &mut out,
            )?;
            (
                g.download(&out)?,
                reference::geglu(&gu, 2 * n, &gu[n..], 2 * n, rows, n),
            )
        } else {
            let gate = self.rng.normal_vec(rows * n, 2.0);
            let up = self.rng.normal_vec(rows * n, 1.0);
            let (dg, du) = (g.upload(&gate)?, g.upload(&up)?);
            g.geglu(
                Strided::new(&dg, n),
                Strided::new(&du, n),
                rows,
                n,
                &mut out,
            )?;
            (
                g.download(&out)?,
                reference::geglu(&gate, n, &up, n, rows, n),
            )
        };
        Ok(CheckReport::new(
            if fused {
                "geglu (fused gate|up)"
            } else {
                "geglu"
            },
            format!("rows {rows} n {n}"),
            relative_error(&got[..rows * n], &want),
            tol::F32_OP,
        ))
    }

    /// GeGLU writing bf16.
    pub fn geglu_to_bf16(&mut self, rows: usize, n: usize) -> Result<CheckReport> {
        let g = self.gpu;
        let gu = self.rng.normal_vec(rows * 2 * n, 2.0);
        let d = g.upload(&gu)?;
        let mut out = g.upload(&vec![bf16::NAN; rows * n])?;
        g.geglu_to_bf16(
            Strided::new(&d, 2 * n),
            Strided::new(&d.slice(n..), 2 * n),
            rows,
            n,
            &mut out,
        )?;
        let got = bf16_to_f32(&g.download(&out)?);
        Ok(CheckReport::new(
            "geglu_to_bf16 (fused gate|up)",
            format!("rows {rows} n {n}"),
            relative_error(
                &got,
                &reference::geglu(&gu, 2 * n, &gu[n..], 2 * n, rows, n),
            ),
            tol::BF16_ROUNDING,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::reference::*;

    #[test]
    fn gelu_tanh_matches_known_values() {
        assert_eq!(gelu_tanh(0.0), 0.0);
        assert!((gelu_tanh(1.0) - 0.841_191_990_1).abs() < 1e-9);
    }
}
