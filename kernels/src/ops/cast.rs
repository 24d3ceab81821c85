//! f32 <-> bf16 casts, round to nearest even (cast.cu): launchers and check.

use crate::check::{poison_f32, CheckReport, Checker};
use crate::device::launch::{launched, need};
use crate::device::Gpu;
use crate::error::{DriverContext, Result};
use crate::tolerance::{self as tol, relative_error};
use cudarc::driver::{DevicePtr, DevicePtrMut};
use half::bf16;

impl Gpu {
    /// Casts `n` f32 values to bf16 (round to nearest even; NaN stays NaN).
    pub fn cast_f32_to_bf16(
        &self,
        x: &impl DevicePtr<f32>,
        n: usize,
        out: &mut impl DevicePtrMut<bf16>,
    ) -> Result<()> {
        self.cast_launch("cast_f32_to_bf16", x, n, out)
    }

    /// Casts `n` bf16 values to f32 (exact).
    pub fn cast_bf16_to_f32(
        &self,
        x: &impl DevicePtr<bf16>,
        n: usize,
        out: &mut impl DevicePtrMut<f32>,
    ) -> Result<()> {
        self.cast_launch("cast_bf16_to_f32", x, n, out)
    }

    /// Checks `n` elements of `x` and `out` and launches cast kernel `func` (also the op's name).
    fn cast_launch<A, B>(
        &self,
        func: &'static str,
        x: &impl DevicePtr<A>,
        n: usize,
        out: &mut impl DevicePtrMut<B>,
    ) -> Result<()> {
        need(func, "x", x.len(), n)?;
        need(func, "out", out.len(), n)?;
        if n == 0 {
            return Ok(());
        }
        let n_i = n as i64;
        let (xp, _g1) = x.device_ptr(&self.stream);
        let (op, _g2) = out.device_ptr_mut(&self.stream);
        let mut l = self.launcher(func);
        l.arg(&xp).arg(&op).arg(&n_i);
        unsafe { l.launch(self.elementwise_cfg(n)) }.ctx(launched(func))?;
        Ok(())
    }
}

impl Checker<'_> {
    /// Both casts. f32 -> bf16 must equal round-to-nearest-even bit for bit (else NaN is reported)
    /// and is measured against the unrounded values; bf16 -> f32 is exact.
    pub fn casts(&mut self, n: usize) -> Result<Vec<CheckReport>> {
        let g = self.gpu;
        let x = self.rng.normal_vec(n, 10.0);
        let dx = g.upload(&x)?;
        let mut b = g.upload(&vec![bf16::NAN; n])?;
        g.cast_f32_to_bf16(&dx, n, &mut b)?;
        let got = g.download(&b)?;
        let bit_exact = got
            .iter()
            .zip(&x)
            .all(|(a, &v)| a.to_bits() == bf16::from_f32(v).to_bits());
        let gotf: Vec<f32> = got.iter().map(|v| v.to_f32()).collect();
        let want: Vec<f64> = x.iter().map(|&v| v as f64).collect();
        let e1 = if bit_exact {
            relative_error(&gotf, &want)
        } else {
            f64::NAN
        };
        let src = self.rng.normal_bf16(n, 10.0);
        let ds = g.upload(&src)?;
        let mut out = poison_f32(g, n)?;
        g.cast_bf16_to_f32(&ds, n, &mut out)?;
        let want2: Vec<f64> = src.iter().map(|v| v.to_f64()).collect();
        let e2 = relative_error(&g.download(&out)?[..n], &want2);
        Ok(vec![
            CheckReport::new(
                "cast f32->bf16 (bit-exact RNE)",
                format!("n {n}"),
                e1,
                tol::BF16_ROUNDING,
            ),
            CheckReport::new("cast bf16->f32", format!("n {n}"), e2, 0.0),
        ])
    }
}
