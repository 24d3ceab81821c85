//! Benchmark section: projections: cuBLAS bf16 GEMM at the E4B shapes (weights rotated), and `linear` (cast + GEMM).

use super::harness::e4b::*;
use super::harness::{Bench, Settings};
use super::timing::{sets_for, weight_set};
use crate::check::Checker;
use crate::device::Gpu;
use crate::error::Result;
use crate::layout::GemmShape;
use crate::matmul::StreamingKernel;

/// Checks, then (unless `s.check_only`) times, at batch `batch`.
pub(super) fn bench(b: &mut Bench<'_>, batch: usize, seed: u64, s: &Settings) -> Result<()> {
    let gpu = b.gpu;
    let check_only = s.check_only;
    // ---- projections: cuBLAS bf16 GEMM at the E4B shapes (weights rotated), and `linear` (cast + GEMM)
    let q_out = HEADS * HEAD_DIM_SLIDING;
    let qkv_sliding = q_out + 2 * KV_HEADS * HEAD_DIM_SLIDING;
    let qkv_global = (HEADS + 2 * KV_HEADS) * HEAD_DIM_GLOBAL;
    let projections: [(&str, usize, usize); 11] = [
        ("q (sliding)", q_out, HIDDEN),
        ("q|k|v fused (sliding)", qkv_sliding, HIDDEN),
        ("q|k|v fused (global)", qkv_global, HIDDEN),
        ("PLE model projection", LAYERS * PLE_DIM, HIDDEN),
        ("PLE per-layer up", HIDDEN, PLE_DIM),
        ("k or v (sliding)", KV_HEADS * HEAD_DIM_SLIDING, HIDDEN),
        ("o (sliding)", HIDDEN, q_out),
        ("gate+up fused", 2 * INTERMEDIATE, HIDDEN),
        ("down", HIDDEN, INTERMEDIATE),
        ("LM head", VOCAB, HIDDEN),
        ("PLE gate", PLE_DIM, HIDDEN),
    ];
    for (label, n, k) in projections {
        let dims = GemmShape { m: batch, n, k };
        let sample = if n > 4096 { Some(256) } else { None };
        let check =
            Checker::new(gpu, seed ^ n as u64 ^ (k as u64) << 20).linear(batch, n, k, sample)?;
        let skinny_check = if Gpu::skinny_supports(batch, k) {
            Some(
                Checker::new(gpu, seed ^ 0x5c1d ^ n as u64).weight_streaming(
                    StreamingKernel::Skinny,
                    dims,
                    None,
                    sample,
                )?,
            )
        } else {
            None
        };
        // cuBLASLt's listed algorithms for the shape, each checked (a shape with none listed fails its check).
        #[cfg(feature = "ablations")]
        let lt_checks = Checker::new(gpu, seed ^ 0x17a1 ^ n as u64 ^ (batch as u64) << 40)
            .gemm_lt(batch, n, k, sample)?;
        if check_only {
            b.checks.push(check);
            b.checks.extend(skinny_check);
            #[cfg(feature = "ablations")]
            b.checks.extend(lt_checks);
            continue;
        }
        let wbytes = n * k * 2;
        let sets = sets_for(wbytes);
        let ws = b.bf16s(n * k * sets)?;
        let x = b.bf16s(batch * k)?;
        let xf = b.f32s(batch * k)?;
        let mut y = gpu.alloc::<f32>(batch * n)?;
        let st = b
            .timer
            .time(|i| gpu.gemm_bf16(&x, &weight_set(&ws, n * k, i, sets), batch, n, k, &mut y))?;
        let bytes = (wbytes + batch * k * 2 + batch * n * 4) as f64;
        b.record(
            &format!("gemm_bf16 {label}"),
            format!("[{batch}, {k}] x [{n}, {k}]^T"),
            batch,
            Some(check.clone()),
            st,
            bytes,
        );
        #[cfg(feature = "ablations")]
        {
            // Every listed algorithm is timed; the fastest is reported with its own check, the others' checks are
            // kept in the summary.
            let algos = gpu.gemm_lt_algorithms(batch, n, k)?;
            let mut fastest: Option<(usize, super::timing::Stats)> = None;
            for algo in 0..algos {
                let st = b.timer.time(|i| {
                    let dims = GemmShape { m: batch, n, k };
                    gpu.gemm_bf16_lt(&x, &weight_set(&ws, n * k, i, sets), dims, algo, &mut y)
                })?;
                if fastest.is_none_or(|(_, f)| st.median_us < f.median_us) {
                    fastest = Some((algo, st));
                }
            }
            if let Some((algo, st)) = fastest {
                for (a, c) in lt_checks.iter().enumerate() {
                    if a != algo {
                        b.checks.push(c.clone());
                    }
                }
                b.record(
                    &format!(
                        "gemm_bf16_lt {label} (cuBLASLt, fastest of {algos} listed: algorithm {algo})"
                    ),
                    format!("[{batch}, {k}] x [{n}, {k}]^T"),
                    batch,
                    lt_checks.get(algo).cloned(),
                    st,
                    (wbytes + batch * k * 2 + batch * n * 4) as f64,
                );
            } else {
                b.checks.extend(lt_checks);
            }
        }
        let st = b
            .timer
            .time(|i| gpu.linear(&xf, &weight_set(&ws, n * k, i, sets), batch, n, k, &mut y))?;
        let bytes = (wbytes + batch * k * 4 + batch * n * 4) as f64;
        b.record(
            &format!("linear {label} (cast+gemm)"),
            format!("[{batch}, {k}] x [{n}, {k}]^T"),
            batch,
            None,
            st,
            bytes,
        );
        if Gpu::gemv_supports(batch, k) {
            let check = Checker::new(gpu, seed ^ 0x9e37 ^ n as u64).weight_streaming(
                StreamingKernel::Gemv,
                dims,
                None,
                sample,
            )?;
            let st = b.timer.time(|i| {
                gpu.gemv_bf16(&x, &weight_set(&ws, n * k, i, sets), batch, n, k, &mut y)
            })?;
            let bytes = (wbytes + batch * k * 2 + batch * n * 4) as f64;
            b.record(
                &format!("gemv_bf16 {label} (weight streaming)"),
                format!("[{batch}, {k}] x [{n}, {k}]^T"),
                batch,
                Some(check),
                st,
                bytes,
            );
        }
        if let Some(check) = skinny_check {
            let default = gpu.skinny_default_kparts(batch, n);
            let splits = if s.skinny_splits {
                vec![1, 2, 4, 8]
            } else {
                vec![default]
            };
            for kparts in splits {
                let st = b.timer.time(|i| {
                    let dims = GemmShape { m: batch, n, k };
                    gpu.skinny_gemm_bf16_split(
                        &x,
                        &weight_set(&ws, n * k, i, sets),
                        dims,
                        kparts,
                        &mut y,
                    )
                })?;
                let bytes = (wbytes + batch * k * 2 + batch * n * 4) as f64;
                // The check ran at the default split; the others are covered by the GPU tests.
                let (mark, row_check) = if kparts == default {
                    (", default", Some(check.clone()))
                } else {
                    ("", None)
                };
                b.record(
                    &format!("skinny_gemm_bf16 {label} (tensor cores, kparts {kparts}{mark})"),
                    format!("[{batch}, {k}] x [{n}, {k}]^T"),
                    batch,
                    row_check,
                    st,
                    bytes,
                );
            }
        }
    }
    Ok(())
}
