//! Launch of the tensor-core weight-streaming skinny GEMM (gemm_skinny.cu) for decode batches of
//! 1..=[`SKINNY_MAX_ROWS`] rows: `y[m, n] = x[m, k] · w[n, k]ᵀ`, bf16 operands, f32 accumulation.
//! Same conventions as [`Gpu::gemv_bf16`]: sizes are checked first, then one launch is queued.

use super::operands::fewest_kparts;
use crate::check::{CheckReport, Checker};
use crate::device::launch::{self, int, launched, need};
use crate::device::Gpu;
use crate::error::{shape, DriverContext, Result};
use crate::layout::GemmShape;
use crate::matmul::StreamingKernel;
use cudarc::driver::{DevicePtr, DevicePtrMut};
use half::bf16;

/// Largest batch (rows of `x`) the skinny GEMM takes.
pub const SKINNY_MAX_ROWS: usize = 32;

/// `k` must be a multiple of this (one k chunk of the kernel: two m16n8k16 mmas).
const K_CHUNK: usize = 32;

/// Warps per block (`SK_WARPS` in gemm_skinny.cu).
const WARPS: usize = 8;

/// The entry for `m` batch rows and the output rows one of its warps computes (`RT * 16` in gemm_skinny.cu).
fn entry(m: usize) -> (&'static str, usize) {
    match m {
        0..=8 => ("skinny_bf16_t1", 16),
        9..=16 => ("skinny_bf16_t2", 16),
        _ => ("skinny_bf16_t4", 32),
    }
}

/// The kernel's k map (see gemm_skinny.cu): the physical offset, inside a 32-wide k chunk, of the
/// logical k `l` (0..16) of mma `h` (0 or 1), for A (w) and B (x) alike.
#[cfg_attr(not(test), allow(dead_code))]
pub(crate) fn k_map(h: usize, l: usize) -> usize {
    8 * ((l & 7) >> 1) + 4 * h + 2 * (l >> 3) + (l & 1)
}

impl Gpu {
    /// Whether [`Gpu::skinny_gemm_bf16`] takes this shape: `1 <= m <= 32` and `k` a positive
    /// multiple of 32.
    pub fn skinny_supports(m: usize, k: usize) -> bool {
        (1..=SKINNY_MAX_ROWS).contains(&m) && k > 0 && k.is_multiple_of(K_CHUNK)
    }

    /// Tensor-core weight-streaming skinny GEMM (gemm_skinny.cu): `y[m, n] = x[m, k] · w[n, k]ᵀ`,
    /// x bf16 `[m, k]`, w bf16 `[n, k]` (HF Linear layout), y f32 `[m, n]`, f32 accumulation, for
    /// `1 <= m <= 32` and `k % 32 == 0`; x and w 16-byte aligned. Other shapes are refused with a
    /// shape error. The k split across a block's warps is [`Gpu::skinny_default_kparts`].
    pub fn skinny_gemm_bf16(
        &self,
        x: &impl DevicePtr<bf16>,
        w: &impl DevicePtr<bf16>,
        m: usize,
        n: usize,
        k: usize,
        y: &mut impl DevicePtrMut<f32>,
    ) -> Result<()> {
        let kparts = Self::skinny_kparts(self.multiprocessors() as usize, m, n);
        self.skinny_gemm_bf16_split(x, w, GemmShape { m, n, k }, kparts, y)
    }

    /// [`Gpu::skinny_gemm_bf16`] with the split of k across a block's 8 warps given (1, 2, 4 or 8;
    /// more parts mean more, shorter blocks): for callers that time the choices on their own shapes.
    pub fn skinny_gemm_bf16_split(
        &self,
        x: &impl DevicePtr<bf16>,
        w: &impl DevicePtr<bf16>,
        dims: GemmShape,
        kparts: usize,
        y: &mut impl DevicePtrMut<f32>,
    ) -> Result<()> {
        const OP: &str = "skinny_gemm_bf16";
        let GemmShape { m, n, k } = dims;
        if !Self::skinny_supports(m, k) {
            return Err(shape(
                OP,
                format!(
                    "m = {m} must be 1..={SKINNY_MAX_ROWS} and k = {k} a positive multiple of {K_CHUNK}"
                ),
            ));
        }
        need(OP, "y", y.len(), m * n)?;
        let Some((xp, wp)) = self.weight_streaming_operands(OP, x, w, dims, kparts)? else {
            return Ok(());
        };
        let (yp, _g3) = y.device_ptr_mut(&self.stream);
        let (name, rows_per_warp) = entry(m);
        let blocks = n.div_ceil(rows_per_warp * (WARPS / kparts));
        let (m_i, n_i, k_i, kp_i) = (m as i32, int(OP, "n", n)?, int(OP, "k", k)?, kparts as i32);
        let cfg = launch::blocks(int(OP, "blocks", blocks)? as u32, (WARPS * 32) as u32);
        let prefetch = self.gemv_prefetch_bytes().min(i32::MAX as u32) as i32;
        let mut b = self.launcher(name);
        b.arg(&xp).arg(&wp).arg(&yp).arg(&m_i).arg(&n_i).arg(&k_i);
        b.arg(&kp_i).arg(&prefetch);
        unsafe { b.launch(cfg) }.ctx(launched(OP))?;
        Ok(())
    }

    /// The k split [`Gpu::skinny_gemm_bf16`] uses for `n` outputs and `m` batch rows on this device.
    pub fn skinny_default_kparts(&self, m: usize, n: usize) -> usize {
        Self::skinny_kparts(self.multiprocessors() as usize, m, n)
    }

    /// The k split for `n` outputs of `m` batch rows on `sms` multiprocessors (`fewest_kparts` at the
    /// entry's rows a warp).
    fn skinny_kparts(sms: usize, m: usize, n: usize) -> usize {
        fewest_kparts(sms, n, entry(m).1)
    }
}

impl Checker<'_> {
    /// The skinny GEMM at every batch-tile edge (1..=32 rows), ragged and E4B widths, k from one
    /// chunk to 10240, and every k split.
    pub fn skinny_suite(&mut self) -> Result<Vec<CheckReport>> {
        let mut r = vec![];
        for m in [1, 2, 3, 7, 8, 9, 16, 17, 31, 32] {
            for (n, k, sample) in [
                (100, 256, None),
                (2560 + 8, 32, None),
                (256, 2560, None),
                (2048, 10240, Some(64)),
            ] {
                r.push(self.weight_streaming(
                    StreamingKernel::Skinny,
                    GemmShape { m, n, k },
                    None,
                    sample,
                )?);
            }
            for kparts in [1, 2, 4, 8] {
                let dims = GemmShape {
                    m,
                    n: 2560 + 8,
                    k: 2560,
                };
                r.push(self.weight_streaming(
                    StreamingKernel::Skinny,
                    dims,
                    Some(kparts),
                    Some(96),
                )?);
                // 25 chunks: uneven splits, parts shorter than the ring of chunks in flight.
                r.push(self.weight_streaming(
                    StreamingKernel::Skinny,
                    GemmShape {
                        m,
                        n: 100,
                        k: 32 * 25,
                    },
                    Some(kparts),
                    None,
                )?);
            }
        }
        for m in [1, 8, 32] {
            r.push(self.weight_streaming(
                StreamingKernel::Skinny,
                GemmShape {
                    m,
                    n: 262_144,
                    k: 2560,
                },
                None,
                Some(64),
            )?);
        }
        Ok(r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;

    /// One lane's registers for one mma: A as (w row, offset of the low half, of the high half), B as
    /// (offset of the low half, of the high half) in the lane's x row.
    type Regs = ([(usize, usize, usize); 4], [(usize, usize); 2]);
    type WTile = [[f64; 32]; 16];
    type XTile = [[f64; 32]; 8];
    type CTile = [[f64; 8]; 16];

    /// Which physical k offsets (inside a 32-wide chunk) the kernel packs into each register of mma
    /// `h` for lane (g, t): as gemm_skinny.cu builds them from its three 16-byte loads.
    fn kernel_regs(g: usize, t: usize, h: usize) -> Regs {
        // uint4 word j of the piece at 8t holds offsets 8t + 2j (low half) and 8t + 2j + 1.
        let word = |j: usize| (8 * t + 2 * j, 8 * t + 2 * j + 1);
        let (w0, w1) = (word(2 * h), word(2 * h + 1));
        (
            [
                (g, w0.0, w0.1),     // a0 = w_g.word[2h]
                (g + 8, w0.0, w0.1), // a1 = w_g8.word[2h]
                (g, w1.0, w1.1),     // a2 = w_g.word[2h+1]
                (g + 8, w1.0, w1.1), // a3 = w_g8.word[2h+1]
            ],
            [w0, w1], // b0 = x_g.word[2h], b1 = x_g.word[2h+1]; x row g
        )
    }

    /// PTX ISA, mma.m16n8k16 .bf16: the (row, col) of A element i (0..8, two per register, low half
    /// first) held by lane (g, t).
    fn ptx_a(g: usize, t: usize, i: usize) -> (usize, usize) {
        let row = if i < 2 || (4..6).contains(&i) {
            g
        } else {
            g + 8
        };
        let col = 2 * t + (i & 1) + if i >= 4 { 8 } else { 0 };
        (row, col)
    }

    /// PTX ISA: the (k row, col) of B element i (0..4).
    fn ptx_b(g: usize, t: usize, i: usize) -> (usize, usize) {
        (2 * t + (i & 1) + if i >= 2 { 8 } else { 0 }, g)
    }

    /// PTX ISA: the (row, col) of C element i (0..4).
    fn ptx_c(g: usize, t: usize, i: usize) -> (usize, usize) {
        (g + if i >= 2 { 8 } else { 0 }, 2 * t + (i & 1))
    }

    /// Emulates one 32-wide k chunk the way the warp computes it (the kernel's register packing, the
    /// PTX fragment layout, two mmas) and returns C [16 rows][8 batch cols], or an error if a
    /// fragment slot is filled twice or left empty. `regs` is the packing under test.
    fn emulate(
        w: &WTile,
        x: &XTile,
        regs: impl Fn(usize, usize, usize) -> Regs,
    ) -> std::result::Result<CTile, String> {
        let mut c = [[0.0f64; 8]; 16];
        for h in 0..2 {
            let mut a: [[Option<f64>; 16]; 16] = [[None; 16]; 16];
            let mut b: [[Option<f64>; 8]; 16] = [[None; 8]; 16];
            for lane in 0..32 {
                let (g, t) = (lane >> 2, lane & 3);
                let (ar, br) = regs(g, t, h);
                for (r, &(wrow, lo, hi)) in ar.iter().enumerate() {
                    for (q, off) in [lo, hi].into_iter().enumerate() {
                        let (row, col) = ptx_a(g, t, 2 * r + q);
                        if a[row][col].replace(w[wrow][off]).is_some() {
                            return Err(format!("A[{row}][{col}] of mma {h} filled twice"));
                        }
                    }
                }
                for (r, &(lo, hi)) in br.iter().enumerate() {
                    for (q, off) in [lo, hi].into_iter().enumerate() {
                        let (kr, col) = ptx_b(g, t, 2 * r + q);
                        if b[kr][col].replace(x[g][off]).is_some() {
                            return Err(format!("B[{kr}][{col}] of mma {h} filled twice"));
                        }
                    }
                }
            }
            for lane in 0..32 {
                let (g, t) = (lane >> 2, lane & 3);
                for i in 0..4 {
                    let (row, col) = ptx_c(g, t, i);
                    let mut s = 0.0;
                    for l in 0..16 {
                        let av = a[row][l].ok_or(format!("A[{row}][{l}] empty"))?;
                        let bv = b[l][col].ok_or(format!("B[{l}][{col}] empty"))?;
                        s += av * bv;
                    }
                    c[row][col] += s;
                }
            }
        }
        Ok(c)
    }

    fn random_tiles(rng: &mut Rng) -> (WTile, CTile, XTile) {
        let mut w = [[0.0; 32]; 16];
        let mut x = [[0.0; 32]; 8];
        // Small integers: every product and sum is exact in f64, so equality is exact.
        for row in w.iter_mut() {
            for v in row.iter_mut() {
                *v = rng.below(17) as f64 - 8.0;
            }
        }
        for row in x.iter_mut() {
            for v in row.iter_mut() {
                *v = rng.below(17) as f64 - 8.0;
            }
        }
        let mut want = [[0.0; 8]; 16];
        for (r, wrow) in w.iter().enumerate() {
            for (b, xrow) in x.iter().enumerate() {
                want[r][b] = wrow.iter().zip(xrow).map(|(p, q)| p * q).sum();
            }
        }
        (w, want, x)
    }

    #[test]
    fn emulated_fragments_sum_to_the_plain_product() {
        let mut rng = Rng::new(0x5eed);
        for _ in 0..50 {
            let (w, want, x) = random_tiles(&mut rng);
            let got = emulate(&w, &x, kernel_regs).unwrap();
            assert_eq!(got, want);
        }
    }

    #[test]
    fn a_packing_that_pairs_different_k_for_a_and_b_is_caught() {
        // B taking its words in the other order (a plausible slip): every slot is filled, but the
        // products pair different k, so the sum is wrong.
        let swapped = |g, t, h| {
            let (a, b) = kernel_regs(g, t, h);
            (a, [b[1], b[0]])
        };
        let mut rng = Rng::new(7);
        let (w, want, x) = random_tiles(&mut rng);
        assert_ne!(emulate(&w, &x, swapped).unwrap(), want);
        // Feeding both mmas the same words leaves half the chunk out and fills nothing twice; the
        // sum is wrong too.
        let same = |g, t, _h| kernel_regs(g, t, 0);
        assert_ne!(emulate(&w, &x, same).unwrap(), want);
    }

    #[test]
    fn k_map_is_what_the_fragments_see_and_a_bijection() {
        // For each lane and mma, the logical k (PTX column of A / row of B) of each packed element
        // must sit at the physical offset k_map gives, for A and B alike.
        for h in 0..2 {
            for lane in 0..32 {
                let (g, t) = (lane >> 2, lane & 3);
                let (ar, br) = kernel_regs(g, t, h);
                for (r, &(_, lo, hi)) in ar.iter().enumerate() {
                    for (q, off) in [lo, hi].into_iter().enumerate() {
                        assert_eq!(k_map(h, ptx_a(g, t, 2 * r + q).1), off);
                    }
                }
                for (r, &(lo, hi)) in br.iter().enumerate() {
                    for (q, off) in [lo, hi].into_iter().enumerate() {
                        assert_eq!(k_map(h, ptx_b(g, t, 2 * r + q).0), off);
                    }
                }
            }
        }
        let mut seen = [false; 32];
        for h in 0..2 {
            for l in 0..16 {
                let p = k_map(h, l);
                assert!(!seen[p], "offset {p} mapped twice");
                seen[p] = true;
            }
        }
        assert!(seen.iter().all(|&s| s));
    }

    #[test]
    fn supported_shapes_and_entries() {
        assert!(Gpu::skinny_supports(1, 32));
        assert!(Gpu::skinny_supports(32, 10240));
        assert!(!Gpu::skinny_supports(0, 32));
        assert!(!Gpu::skinny_supports(33, 32));
        assert!(!Gpu::skinny_supports(4, 16));
        assert!(!Gpu::skinny_supports(4, 0));
        assert_eq!(entry(1), ("skinny_bf16_t1", 16));
        assert_eq!(entry(8), ("skinny_bf16_t1", 16));
        assert_eq!(entry(9), ("skinny_bf16_t2", 16));
        assert_eq!(entry(16), ("skinny_bf16_t2", 16));
        assert_eq!(entry(17), ("skinny_bf16_t4", 32));
        assert_eq!(entry(32), ("skinny_bf16_t4", 32));
        for (name, _) in [entry(1), entry(9), entry(17)] {
            let declared = crate::sources::SOURCES
                .iter()
                .any(|s| s.name == "gemm_skinny" && s.functions.contains(&name));
            assert!(declared, "{name} is not declared in SOURCES");
        }
    }

    #[test]
    fn narrow_outputs_split_k_wide_ones_do_not() {
        // 132 SMs (H200): the LM head (262144 rows) needs no split; 2560 rows split 8 ways.
        assert_eq!(Gpu::skinny_kparts(132, 1, 262_144), 1);
        assert_eq!(Gpu::skinny_kparts(132, 32, 262_144), 1);
        assert_eq!(Gpu::skinny_kparts(132, 1, 2560), 8);
        assert_eq!(Gpu::skinny_kparts(132, 1, 256), 8);
        // 20480 rows, 16 a warp: 160 blocks unsplit, 320 at 2 parts, 640 at 4 (>= 528).
        assert_eq!(Gpu::skinny_kparts(132, 1, 20_480), 4);
    }
}
