//! Gemma 4's per-layer inputs after the model projection (ple_combine.cu): launcher, f64 reference and check.

use crate::check::{poison_f32, CheckReport, Checker};
use crate::device::launch::{int, launched, need};
use crate::device::Gpu;
use crate::error::{shape, DriverContext, Result};
use crate::tolerance::{self as tol, relative_error};
use cudarc::driver::{CudaSlice, DevicePtr, DevicePtrMut, LaunchConfig};
use half::bf16;

/// The operands of [`Gpu::ple_combine`] besides the projection, its row count and the output.
pub struct PleCombine<'a> {
    /// bf16 `[vocab, layers * dim]`.
    pub table: &'a CudaSlice<bf16>,
    /// u32 `[rows]`.
    pub ids: &'a CudaSlice<u32>,
    /// bf16 `[dim]`.
    pub norm_w: &'a CudaSlice<bf16>,
    pub layers: usize,
    pub dim: usize,
    /// `[proj_scale, table_scale, combine_scale]`.
    pub scales: [f32; 3],
    pub eps: f32,
}

impl Gpu {
    /// Gemma 4's per-layer inputs after the model projection (ple_combine.cu):
    /// `out[r, l, :] = (rmsnorm(proj[r, l, :] * proj_scale) * norm_w + table[ids[r], l, :] * table_scale) *
    /// combine_scale`, with `proj`, `out`: f32 `[rows, layers * dim]` and `table`: bf16 `[vocab, layers * dim]`.
    pub fn ple_combine(
        &self,
        proj: &CudaSlice<f32>,
        c: PleCombine<'_>,
        rows: usize,
        out: &mut CudaSlice<f32>,
    ) -> Result<()> {
        let PleCombine {
            table,
            ids,
            norm_w,
            layers,
            dim,
            scales,
            eps,
        } = c;
        const OP: &str = "ple_combine";
        let width = layers * dim;
        if width == 0 || !table.len().is_multiple_of(width) {
            return Err(shape(
                OP,
                format!("table of {} elements is not [vocab, {width}]", table.len()),
            ));
        }
        let vocab = u32::try_from(table.len() / width)
            .map_err(|_| shape(OP, "vocab does not fit in u32".into()))?;
        need(OP, "proj", proj.len(), rows * width)?;
        need(OP, "ids", ids.len(), rows)?;
        need(OP, "norm_w", norm_w.len(), dim)?;
        need(OP, "out", out.len(), rows * width)?;
        if rows == 0 {
            return Ok(());
        }
        let (layers_i, dim_i) = (int(OP, "layers", layers)?, int(OP, "dim", dim)?);
        let (pp, _g1) = proj.device_ptr(&self.stream);
        let (tp, _g2) = table.device_ptr(&self.stream);
        let (ip, _g3) = ids.device_ptr(&self.stream);
        let (np, _g4) = norm_w.device_ptr(&self.stream);
        let (op, _g5) = out.device_ptr_mut(&self.stream);
        let cfg = LaunchConfig {
            grid_dim: (int(OP, "rows * layers", rows * layers)? as u32, 1, 1),
            block_dim: (dim.div_ceil(32).clamp(1, 8) as u32 * 32, 1, 1),
            shared_mem_bytes: 0,
        };
        let mut b = self.launcher("ple_combine");
        b.arg(&pp).arg(&tp).arg(&ip).arg(&np).arg(&op);
        b.arg(&layers_i).arg(&dim_i).arg(&vocab);
        b.arg(&scales[0]).arg(&scales[1]).arg(&scales[2]).arg(&eps);
        unsafe { b.launch(cfg) }.ctx(launched(OP))?;
        Ok(())
    }
}

/// The f64 CPU reference.
pub mod reference {
    use half::bf16;

    /// Per-layer inputs: `(rmsnorm(proj * proj_scale) * norm_w + table[id] * table_scale) * combine_scale` for
    /// each (row, layer) slice of `dim` (`shape = (layers, dim)`); an id out of range gives NaN.
    pub fn ple_combine(
        proj: &[f32],
        table: &[bf16],
        ids: &[u32],
        norm_w: &[bf16],
        (layers, dim): (usize, usize),
        scales: [f64; 3],
        eps: f64,
    ) -> Vec<f64> {
        let width = layers * dim;
        let vocab = table.len() / width;
        let mut out = Vec::with_capacity(ids.len() * width);
        for (r, &id) in ids.iter().enumerate() {
            for l in 0..layers {
                let p: Vec<f64> = proj[r * width + l * dim..r * width + (l + 1) * dim]
                    .iter()
                    .map(|&v| v as f64 * scales[0])
                    .collect();
                let inv = 1.0 / (p.iter().map(|v| v * v).sum::<f64>() / dim as f64 + eps).sqrt();
                for i in 0..dim {
                    out.push(if (id as usize) < vocab {
                        let t = table[id as usize * width + l * dim + i].to_f64();
                        (p[i] * inv * norm_w[i].to_f64() + t * scales[1]) * scales[2]
                    } else {
                        f64::NAN
                    });
                }
            }
        }
        out
    }
}

impl Checker<'_> {
    /// Per-layer-input combine (one id out of range must give a NaN slice).
    pub fn ple_combine(
        &mut self,
        rows: usize,
        layers: usize,
        dim: usize,
        vocab: usize,
    ) -> Result<CheckReport> {
        let g = self.gpu;
        let width = layers * dim;
        let proj = self.rng.normal_vec(rows * width, 20.0);
        let table = self.rng.normal_bf16(vocab * width, 0.5);
        let ids: Vec<u32> = (0..rows)
            .map(|_| self.rng.below(vocab as u64) as u32)
            .collect();
        let norm_w = self.rng.norm_weight_bf16(dim);
        let scales = [1.0 / 2560f32.sqrt(), (dim as f32).sqrt(), 0.5f32.sqrt()];
        let (dp, dt, di, dn) = (
            g.upload(&proj)?,
            g.upload(&table)?,
            g.upload(&ids)?,
            g.upload(&norm_w)?,
        );
        let mut out = poison_f32(g, rows * width)?;
        let c = PleCombine {
            table: &dt,
            ids: &di,
            norm_w: &dn,
            layers,
            dim,
            scales,
            eps: 1e-6,
        };
        g.ple_combine(&dp, c, rows, &mut out)?;
        let got = g.download(&out)?;
        let want = reference::ple_combine(
            &proj,
            &table,
            &ids,
            &norm_w,
            (layers, dim),
            scales.map(|s| s as f64),
            1e-6,
        );
        Ok(CheckReport::new(
            "ple_combine",
            format!("rows {rows} layers {layers} dim {dim}"),
            relative_error(&got[..rows * width], &want),
            tol::F32_OP,
        ))
    }
}
