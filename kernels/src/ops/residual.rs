//! Element-wise residual add and scale (residual.cu): launchers, f64 reference and check.

use crate::check::{poison_f32, CheckReport, Checker};
use crate::device::launch::{launched, need};
use crate::device::Gpu;
use crate::error::{DriverContext, Result};
use crate::tolerance::{self as tol, relative_error};
use cudarc::driver::{DevicePtr, DevicePtrMut};

impl Gpu {
    fn add_raw(&self, a: u64, b: u64, out: u64, n: usize) -> Result<()> {
        let n_i = n as i64;
        let mut l = self.launcher("add_f32");
        l.arg(&a).arg(&b).arg(&out).arg(&n_i);
        unsafe { l.launch(self.elementwise_cfg(n)) }.ctx(launched("add"))?;
        Ok(())
    }

    /// `out = a + b` over `n` f32 elements.
    pub fn add(
        &self,
        a: &impl DevicePtr<f32>,
        b: &impl DevicePtr<f32>,
        n: usize,
        out: &mut impl DevicePtrMut<f32>,
    ) -> Result<()> {
        need("add", "a", a.len(), n)?;
        need("add", "b", b.len(), n)?;
        need("add", "out", out.len(), n)?;
        if n == 0 {
            return Ok(());
        }
        let (ap, _g1) = a.device_ptr(&self.stream);
        let (bp, _g2) = b.device_ptr(&self.stream);
        let (op, _g3) = out.device_ptr_mut(&self.stream);
        self.add_raw(ap, bp, op, n)
    }

    /// `acc += b` over `n` f32 elements (the residual add).
    pub fn add_inplace(
        &self,
        acc: &mut impl DevicePtrMut<f32>,
        b: &impl DevicePtr<f32>,
        n: usize,
    ) -> Result<()> {
        need("add", "acc", acc.len(), n)?;
        need("add", "b", b.len(), n)?;
        if n == 0 {
            return Ok(());
        }
        let (ap, _g1) = acc.device_ptr_mut(&self.stream);
        let (bp, _g2) = b.device_ptr(&self.stream);
        self.add_raw(ap, bp, ap, n)
    }

    fn scale_raw(&self, x: u64, out: u64, n: usize, s: f32) -> Result<()> {
        let n_i = n as i64;
        let mut l = self.launcher("scale_f32");
        l.arg(&x).arg(&out).arg(&n_i).arg(&s);
        unsafe { l.launch(self.elementwise_cfg(n)) }.ctx(launched("scale"))?;
        Ok(())
    }

    /// `out = x * s` over `n` f32 elements.
    pub fn scale(
        &self,
        x: &impl DevicePtr<f32>,
        s: f32,
        n: usize,
        out: &mut impl DevicePtrMut<f32>,
    ) -> Result<()> {
        need("scale", "x", x.len(), n)?;
        need("scale", "out", out.len(), n)?;
        if n == 0 {
            return Ok(());
        }
        let (xp, _g1) = x.device_ptr(&self.stream);
        let (op, _g2) = out.device_ptr_mut(&self.stream);
        self.scale_raw(xp, op, n, s)
    }

    /// `x *= s` over `n` f32 elements (e.g. Gemma's `layer_scalar`).
    pub fn scale_inplace(&self, x: &mut impl DevicePtrMut<f32>, s: f32, n: usize) -> Result<()> {
        need("scale", "x", x.len(), n)?;
        if n == 0 {
            return Ok(());
        }
        let (xp, _g1) = x.device_ptr_mut(&self.stream);
        self.scale_raw(xp, xp, n, s)
    }
}

/// The f64 CPU reference.
pub mod reference {

    /// `a + b`.
    pub fn add(a: &[f32], b: &[f32]) -> Vec<f64> {
        a.iter()
            .zip(b)
            .map(|(&x, &y)| x as f64 + y as f64)
            .collect()
    }

    /// `x * s`.
    pub fn scale(x: &[f32], s: f64) -> Vec<f64> {
        x.iter().map(|&v| v as f64 * s).collect()
    }
}

impl Checker<'_> {
    /// Residual add (out of place and in place) and scale.
    pub fn residual(&mut self, n: usize) -> Result<Vec<CheckReport>> {
        let g = self.gpu;
        let a = self.rng.normal_vec(n, 1.0);
        let b = self.rng.normal_vec(n, 1.0);
        let s = (0.5 + self.rng.uniform()) as f32;
        let (da, db) = (g.upload(&a)?, g.upload(&b)?);
        let mut out = poison_f32(g, n)?;
        g.add(&da, &db, n, &mut out)?;
        let add = relative_error(&g.download(&out)?[..n], &reference::add(&a, &b));
        let mut acc = g.upload(&a)?;
        g.add_inplace(&mut acc, &db, n)?;
        let add_in = relative_error(&g.download(&acc)?, &reference::add(&a, &b));
        let mut out = poison_f32(g, n)?;
        g.scale(&da, s, n, &mut out)?;
        let scale = relative_error(&g.download(&out)?[..n], &reference::scale(&a, s as f64));
        let mut x = g.upload(&a)?;
        g.scale_inplace(&mut x, s, n)?;
        let scale_in = relative_error(&g.download(&x)?, &reference::scale(&a, s as f64));
        let shape = format!("n {n}");
        Ok(vec![
            CheckReport::new("add", shape.clone(), add, tol::F32_OP),
            CheckReport::new("add (in place)", shape.clone(), add_in, tol::F32_OP),
            CheckReport::new("scale", shape.clone(), scale, tol::F32_OP),
            CheckReport::new("scale (in place)", shape, scale_in, tol::F32_OP),
        ])
    }
}
