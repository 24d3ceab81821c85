//! The weight-streaming GEMV for 1..=8 rows, plain or with GeGLU in its epilogue (gemv.cu): launchers and
//! checks (against the cuBLAS reference product).

use super::operands::fewest_kparts;
use crate::check::{bf16_round, bf16_to_f32, CheckReport, Checker};
use crate::device::launch::{self, int, launched, need};
use crate::device::sources::GEMV_ENTRIES;
use crate::device::Gpu;
use crate::error::{shape, DriverContext, Result};
use crate::layout::{GemmShape, Strided};
use crate::tolerance::{self as tol, relative_error};
use cudarc::driver::{DevicePtr, DevicePtrMut};
use half::bf16;

/// Largest batch (rows of `x`) the weight-streaming GEMV takes; larger batches go to cuBLAS.
pub const GEMV_MAX_ROWS: usize = 8;
const _: () = assert!(
    GEMV_ENTRIES.len() == GEMV_MAX_ROWS,
    "one gemv.cu entry per row count"
);

/// Where a GEMV's results go (gemv.cu's epilogues); device pointers, already checked for size.
#[derive(Clone, Copy)]
enum GemvEpilogue {
    Plain { y: u64 },
    GegluWith { z: u64, z_stride: i64, out: u64 },
    GegluHalves { out: u64 },
}

/// Output rows one GEMV warp computes (`GEMV_R` in gemv.cu).
const GEMV_ROWS_PER_WARP: usize = 4;

impl Gpu {
    /// Whether [`Gpu::gemv_bf16`] takes this shape: `1 <= m <= 8` and `k` a multiple of 8.
    pub fn gemv_supports(m: usize, k: usize) -> bool {
        (1..=GEMV_MAX_ROWS).contains(&m) && k.is_multiple_of(8) && k > 0
    }

    /// Weight-streaming skinny GEMM (gemv.cu): `y[m, n] = x[m, k] · w[n, k]ᵀ`, bf16 operands, f32
    /// accumulation and output, for `m <= 8`. `x` and `w` must start 16-byte aligned.
    pub fn gemv_bf16(
        &self,
        x: &impl DevicePtr<bf16>,
        w: &impl DevicePtr<bf16>,
        m: usize,
        n: usize,
        k: usize,
        y: &mut impl DevicePtrMut<f32>,
    ) -> Result<()> {
        let kparts = Self::gemv_kparts(self.multiprocessors() as usize, n);
        self.gemv_bf16_split(x, w, GemmShape { m, n, k }, kparts, y)
    }

    /// [`Gpu::gemv_bf16`] with the split of k across a block's 8 warps given (1, 2, 4 or 8; more parts mean
    /// more, shorter blocks): for callers that time the choices on their own shapes.
    pub fn gemv_bf16_split(
        &self,
        x: &impl DevicePtr<bf16>,
        w: &impl DevicePtr<bf16>,
        dims: GemmShape,
        kparts: usize,
        y: &mut impl DevicePtrMut<f32>,
    ) -> Result<()> {
        need("gemv_bf16", "y", y.len(), dims.m * dims.n)?;
        let (yp, _g) = y.device_ptr_mut(&self.stream);
        self.gemv_launch(x, w, dims, kparts, GemvEpilogue::Plain { y: yp })
    }

    /// The GEMV with GeGLU fused into its epilogue (gemv.cu `GEMV_GEGLU_WITH`): `out[m, j] =
    /// bf16(gelu_tanh((x · wᵀ)[m, j]) * z[m * z.stride + j])` for `j < n`; `z` f32 (the per-layer input), `out`
    /// bf16 `[m, n]`. Saves the GeGLU launch after the per-layer-input gate.
    pub fn gemv_bf16_geglu_with<Z: DevicePtr<f32>>(
        &self,
        x: &impl DevicePtr<bf16>,
        w: &impl DevicePtr<bf16>,
        dims: GemmShape,
        kparts: usize,
        z: Strided<'_, Z>,
        out: &mut impl DevicePtrMut<bf16>,
    ) -> Result<()> {
        const OP: &str = "gemv_bf16_geglu_with";
        let GemmShape { m, n, .. } = dims;
        let Strided {
            buf: z,
            stride: z_stride,
        } = z;
        if z_stride < n {
            return Err(shape(OP, format!("z_stride {z_stride} must be >= n = {n}")));
        }
        if m > 0 && n > 0 {
            need(OP, "z", z.len(), (m - 1) * z_stride + n)?;
        }
        need(OP, "out", out.len(), m * n)?;
        let (zp, _g1) = z.device_ptr(&self.stream);
        let (op, _g2) = out.device_ptr_mut(&self.stream);
        self.gemv_launch(
            x,
            w,
            dims,
            kparts,
            GemvEpilogue::GegluWith {
                z: zp,
                z_stride: z_stride as i64,
                out: op,
            },
        )
    }

    /// The GEMV over a fused `[gate; up]` weight of `2 * h` rows with GeGLU in its epilogue (gemv.cu
    /// `GEMV_GEGLU_HALVES`): `out[m, j] = bf16(gelu_tanh(gate_j) * up_j)` for `j < h`, where gate_j and up_j are
    /// rows `j` and `h + j` of `x · wᵀ`; `out` bf16 `[m, h]`. The MLP's gate|up projection and its GeGLU in one
    /// launch. `halves.n` is `h`, the output width (`w` has `2 * h` rows).
    pub fn gemv_bf16_geglu_halves(
        &self,
        x: &impl DevicePtr<bf16>,
        w: &impl DevicePtr<bf16>,
        halves: GemmShape,
        kparts: usize,
        out: &mut impl DevicePtrMut<bf16>,
    ) -> Result<()> {
        let GemmShape { m, n: h, k } = halves;
        need("gemv_bf16_geglu_halves", "out", out.len(), m * h)?;
        let (op, _g) = out.device_ptr_mut(&self.stream);
        let rows = GemmShape { m, n: 2 * h, k };
        self.gemv_launch(x, w, rows, kparts, GemvEpilogue::GegluHalves { out: op })
    }

    /// Checks and launches one GEMV (`dims.n` = rows of `w`).
    fn gemv_launch(
        &self,
        x: &impl DevicePtr<bf16>,
        w: &impl DevicePtr<bf16>,
        dims: GemmShape,
        kparts: usize,
        epilogue: GemvEpilogue,
    ) -> Result<()> {
        const OP: &str = "gemv_bf16";
        let GemmShape { m, n, k } = dims;
        if !Self::gemv_supports(m, k) {
            return Err(shape(
                OP,
                format!("m = {m} must be 1..={GEMV_MAX_ROWS} and k = {k} a positive multiple of 8"),
            ));
        }
        let Some((xp, wp)) = self.weight_streaming_operands(OP, x, w, dims, kparts)? else {
            return Ok(());
        };
        let groups = 8 / kparts;
        let (mode, yp, zp, z_stride, op, blocks) = match epilogue {
            GemvEpilogue::Plain { y } => (
                0i32,
                y,
                0u64,
                0i64,
                0u64,
                n.div_ceil(GEMV_ROWS_PER_WARP * groups),
            ),
            GemvEpilogue::GegluWith { z, z_stride, out } => (
                1,
                0,
                z,
                z_stride,
                out,
                n.div_ceil(GEMV_ROWS_PER_WARP * groups),
            ),
            GemvEpilogue::GegluHalves { out } => {
                if !n.is_multiple_of(2) {
                    return Err(shape(
                        OP,
                        format!("a [gate; up] matrix has an even row count, not {n}"),
                    ));
                }
                (2, 0, 0, 0, out, (n / 2).div_ceil(2 * groups))
            }
        };
        let (n_i, k_i, kp_i) = (int(OP, "n", n)?, int(OP, "k", k)?, kparts as i32);
        let cfg = launch::blocks(int(OP, "blocks", blocks)? as u32, 256);
        let prefetch = self.gemv_prefetch_bytes().min(i32::MAX as u32) as i32;
        let mut b = self.launcher(GEMV_ENTRIES[m - 1]);
        b.arg(&xp).arg(&wp).arg(&yp).arg(&n_i).arg(&k_i).arg(&kp_i);
        b.arg(&prefetch).arg(&mode).arg(&zp).arg(&z_stride).arg(&op);
        unsafe { b.launch(cfg) }.ctx(launched(OP))?;
        Ok(())
    }

    /// The k split [`Gpu::gemv_bf16`] uses for `n` outputs on this device.
    pub fn gemv_default_kparts(&self, n: usize) -> usize {
        Self::gemv_kparts(self.multiprocessors() as usize, n)
    }

    /// The k split for `n` outputs on `sms` multiprocessors (`fewest_kparts` at 4 rows a warp).
    fn gemv_kparts(sms: usize, n: usize) -> usize {
        fewest_kparts(sms, n, GEMV_ROWS_PER_WARP)
    }
}

impl Checker<'_> {
    /// The GEMV with GeGLU in its epilogue, against the f64 product of the same bf16 operands followed by an
    /// f64 GeGLU: `halves` = the fused [gate; up] form (`n` outputs from `2n` rows), otherwise the gate times a
    /// strided f32 `z`. The bf16 output carries its own rounding, hence the bf16 tolerance.
    pub fn gemv_geglu(
        &mut self,
        m: usize,
        n: usize,
        k: usize,
        kparts: usize,
        halves: bool,
    ) -> Result<CheckReport> {
        let g = self.gpu;
        let rows = if halves { 2 * n } else { n };
        let x = bf16_round(&self.rng.normal_vec(m * k, 1.0));
        let xb: Vec<bf16> = x.iter().map(|&v| bf16::from_f32(v)).collect();
        // Weights scaled so the projections are O(1), where GeGLU is far from linear.
        let w = self.rng.normal_bf16(rows * k, 1.5 / (k as f64).sqrt());
        let z_stride = n + 7;
        let z = self.rng.normal_vec(m * z_stride, 1.0);
        let (dx, dw, dz) = (g.upload(&xb)?, g.upload(&w)?, g.upload(&z)?);
        let mut out = g.upload(&vec![bf16::NAN; m * n])?;
        if halves {
            g.gemv_bf16_geglu_halves(&dx, &dw, GemmShape { m, n, k }, kparts, &mut out)?;
        } else {
            let z = Strided {
                buf: &dz,
                stride: z_stride,
            };
            g.gemv_bf16_geglu_with(&dx, &dw, GemmShape { m, n, k }, kparts, z, &mut out)?;
        }
        let got = bf16_to_f32(&g.download(&out)?);
        let y = crate::matmul::cublas::reference::gemm(&x, &w, m, rows, k);
        let want: Vec<f64> = (0..m)
            .flat_map(|i| (0..n).map(move |j| (i, j)))
            .map(|(i, j)| {
                let other = if halves {
                    y[i * rows + n + j]
                } else {
                    z[i * z_stride + j] as f64
                };
                crate::ops::geglu::reference::gelu_tanh(y[i * rows + j]) * other
            })
            .collect();
        Ok(CheckReport::new(
            if halves {
                "gemv_bf16 + GeGLU epilogue ([gate; up] halves)"
            } else {
                "gemv_bf16 + GeGLU epilogue (gate x z)"
            },
            format!("m {m} n {n} k {k} kparts {kparts}"),
            if got.iter().all(|v| v.is_finite()) {
                relative_error(&got, &want)
            } else {
                f64::NAN
            },
            tol::BF16_ROUNDING,
        ))
    }
}
