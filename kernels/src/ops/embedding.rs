//! Embedding gather with scale (embedding.cu): launcher, f64 reference and check.

use crate::check::{poison_f32, CheckReport, Checker};
use crate::device::launch::{int, launched, need};
use crate::device::Gpu;
use crate::error::{shape, DriverContext, Result};
use crate::tolerance::{self as tol, relative_error};
use cudarc::driver::{DevicePtr, DevicePtrMut, LaunchConfig};
use half::bf16;

impl Gpu {
    /// Embedding gather with scale: `out[r, :] = f32(table[ids[r], :]) * scale`.
    ///
    /// `table`: bf16 `[vocab, hidden]` (vocab = table.len() / hidden); `ids`: u32 `[rows]`;
    /// `out`: f32 `[rows, hidden]`. An id >= vocab fills its row with NaN. Gemma scales by
    /// sqrt(hidden); transformers rounds that scale to bf16 first, so pass the value you mean.
    pub fn embed(
        &self,
        table: &impl DevicePtr<bf16>,
        ids: &impl DevicePtr<u32>,
        rows: usize,
        hidden: usize,
        scale: f32,
        out: &mut impl DevicePtrMut<f32>,
    ) -> Result<()> {
        const OP: &str = "embed";
        if hidden == 0 || table.len() % hidden != 0 {
            return Err(shape(
                OP,
                format!("table of {} elements is not [vocab, {hidden}]", table.len()),
            ));
        }
        let vocab = u32::try_from(table.len() / hidden)
            .map_err(|_| shape(OP, "vocab does not fit in u32".into()))?;
        need(OP, "ids", ids.len(), rows)?;
        need(OP, "out", out.len(), rows * hidden)?;
        if rows == 0 {
            return Ok(());
        }
        let hidden_i = int(OP, "hidden", hidden)?;
        let (t, _gt) = table.device_ptr(&self.stream);
        let (i, _gi) = ids.device_ptr(&self.stream);
        let (o, _go) = out.device_ptr_mut(&self.stream);
        let cfg = LaunchConfig {
            grid_dim: (int(OP, "rows", rows)? as u32, 1, 1),
            block_dim: (256, 1, 1),
            shared_mem_bytes: 0,
        };
        let mut b = self.launcher("embed_gather_bf16");
        b.arg(&t)
            .arg(&i)
            .arg(&o)
            .arg(&hidden_i)
            .arg(&vocab)
            .arg(&scale);
        unsafe { b.launch(cfg) }.ctx(launched(OP))?;
        Ok(())
    }
}

/// The f64 CPU reference.
pub mod reference {
    use half::bf16;

    /// `out[r, :] = table[ids[r], :] * scale`; an id out of range gives a NaN row.
    pub fn embed(table: &[bf16], ids: &[u32], hidden: usize, scale: f64) -> Vec<f64> {
        let vocab = table.len() / hidden;
        let mut out = Vec::with_capacity(ids.len() * hidden);
        for &id in ids {
            let id = id as usize;
            if id >= vocab {
                out.extend(std::iter::repeat_n(f64::NAN, hidden));
            } else {
                out.extend(
                    table[id * hidden..(id + 1) * hidden]
                        .iter()
                        .map(|v| v.to_f64() * scale),
                );
            }
        }
        out
    }
}

impl Checker<'_> {
    /// Embedding gather (one id out of range must give a NaN row; checked separately).
    pub fn embed(&mut self, rows: usize, hidden: usize, vocab: usize) -> Result<CheckReport> {
        let g = self.gpu;
        let table = self.rng.normal_bf16(vocab * hidden, 0.02);
        let ids: Vec<u32> = (0..rows)
            .map(|_| self.rng.below(vocab as u64) as u32)
            .collect();
        let scale = (hidden as f32).sqrt();
        let (dt, di) = (g.upload(&table)?, g.upload(&ids)?);
        let mut out = poison_f32(g, rows * hidden)?;
        g.embed(&dt, &di, rows, hidden, scale, &mut out)?;
        let got = g.download(&out)?;
        let want = reference::embed(&table, &ids, hidden, scale as f64);
        Ok(CheckReport::new(
            "embed",
            format!("rows {rows} hidden {hidden} vocab {vocab}"),
            relative_error(&got[..rows * hidden], &want),
            tol::F32_OP,
        ))
    }
}
