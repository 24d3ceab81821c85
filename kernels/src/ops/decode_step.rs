//! The end of a captured greedy decode step on the device (decode_step.cu): launcher and check.

use crate::check::{CheckReport, Checker};
use crate::device::launch::{int, launched, need};
use crate::device::Gpu;
use crate::error::{DriverContext, Result};
use cudarc::driver::{CudaSlice, DevicePtr, DevicePtrMut, LaunchConfig};

impl Gpu {
    /// The end of a captured greedy decode step (decode_step.cu): `history[*step, :] = ids`, every
    /// position + 1, `*step += 1`, all on the device. `history`: u32 `[capacity_steps, batch]`.
    pub fn decode_advance(
        &self,
        ids: &CudaSlice<u32>,
        history: &mut CudaSlice<u32>,
        step: &mut CudaSlice<i32>,
        positions: &mut CudaSlice<i32>,
        batch: usize,
    ) -> Result<()> {
        const OP: &str = "decode_advance";
        need(OP, "ids", ids.len(), batch)?;
        need(OP, "positions", positions.len(), batch)?;
        need(OP, "step", step.len(), 1)?;
        if batch == 0 {
            return Ok(());
        }
        let cap_steps = int(OP, "capacity steps", history.len() / batch)?;
        let batch_i = int(OP, "batch", batch)?;
        let (ip, _g1) = ids.device_ptr(&self.stream);
        let (hp, _g2) = history.device_ptr_mut(&self.stream);
        let (sp, _g3) = step.device_ptr_mut(&self.stream);
        let (pp, _g4) = positions.device_ptr_mut(&self.stream);
        let cfg = LaunchConfig {
            grid_dim: (1, 1, 1),
            block_dim: (batch.div_ceil(32).clamp(1, 32) as u32 * 32, 1, 1),
            shared_mem_bytes: 0,
        };
        let mut l = self.launcher("decode_advance");
        l.arg(&ip)
            .arg(&hp)
            .arg(&cap_steps)
            .arg(&sp)
            .arg(&pp)
            .arg(&batch_i);
        unsafe { l.launch(cfg) }.ctx(launched(OP))?;
        Ok(())
    }
}

impl Checker<'_> {
    /// The decode-step bookkeeping: history row, positions + 1, step + 1, and no write past capacity.
    pub fn decode_advance(&mut self, batch: usize) -> Result<CheckReport> {
        let g = self.gpu;
        let cap_steps = 3usize;
        let ids: Vec<u32> = (0..batch).map(|_| self.rng.below(1000) as u32).collect();
        let pos: Vec<i32> = (0..batch).map(|_| self.rng.below(1000) as i32).collect();
        let di = g.upload(&ids)?;
        let mut hist = g.upload(&vec![u32::MAX; cap_steps * batch])?;
        let mut step = g.upload(&[1i32])?;
        let mut dp = g.upload(&pos)?;
        for _ in 0..3 {
            g.decode_advance(&di, &mut hist, &mut step, &mut dp, batch)?;
        }
        let (h, s, p) = (g.download(&hist)?, g.download(&step)?, g.download(&dp)?);
        let mut want_h = vec![u32::MAX; cap_steps * batch];
        want_h[batch..2 * batch].copy_from_slice(&ids);
        want_h[2 * batch..].copy_from_slice(&ids);
        let ok = h == want_h && s == [4] && p.iter().zip(&pos).all(|(a, b)| *a == b + 3);
        Ok(CheckReport::new(
            "decode_advance (3 steps, past capacity)",
            format!("batch {batch}"),
            if ok { 0.0 } else { f64::NAN },
            0.0,
        ))
    }
}
