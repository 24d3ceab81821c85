//! Benchmark section: the VKAE path's fused kernels.

use super::harness::e4b::*;
use super::harness::{Bench, Settings};
use super::timing::{sets_for, weight_set};
use crate::check::Checker;
use crate::device::Gpu;
use crate::error::Result;
use crate::layout::{GemmShape, Strided};
use crate::rope::Rope;
use crate::{PleCombine, QkvPrologue, ResidualNorm};
use half::bf16;

/// The VKAE path's fused kernels at E4B shapes (check first, then time).
pub(super) fn bench(b: &mut Bench<'_>, batch: usize, s: &Settings) -> Result<()> {
    let gpu = b.gpu;
    let seed = b.rng.next_u64();
    let layers = 42;
    let mut c = Checker::new(gpu, seed);
    let norm_checks = c.residual_rms_norm(batch, HIDDEN, true)?;
    let sliding = Rope::Default {
        theta: 1e4,
        head_dim: HEAD_DIM_SLIDING,
    };
    let global = Rope::Proportional {
        theta: 1e6,
        partial_rotary_factor: 0.25,
        head_dim: HEAD_DIM_GLOBAL,
    };
    let qkv_checks = [
        c.qk_norm_rope_kv(batch, HEADS, KV_HEADS, sliding, Some(true), 512)?,
        c.qk_norm_rope_kv(batch, HEADS, KV_HEADS, global, Some(true), 512)?,
    ];
    let ple_check = c.ple_combine(batch, layers, PLE_DIM, 64)?;
    let sa_checks = c.softcap_argmax(batch, VOCAB)?;
    let gg_check = c.geglu_to_bf16(batch, INTERMEDIATE)?;
    // The GEMV with GeGLU in its epilogue (<= 8 rows): the MLP's [gate; up] and the per-layer-input gate.
    let epilogue_checks = if Gpu::gemv_supports(batch, HIDDEN) {
        Some((
            c.gemv_geglu(
                batch,
                INTERMEDIATE,
                HIDDEN,
                gpu.gemv_default_kparts(2 * INTERMEDIATE),
                true,
            )?,
            c.gemv_geglu(
                batch,
                PLE_DIM,
                HIDDEN,
                gpu.gemv_default_kparts(PLE_DIM),
                false,
            )?,
        ))
    } else {
        None
    };
    if s.check_only {
        b.checks.extend(norm_checks);
        b.checks.extend(qkv_checks.into_iter().flatten());
        b.checks.extend([ple_check, gg_check]);
        b.checks.extend(sa_checks);
        b.checks
            .extend(epilogue_checks.into_iter().flat_map(|(h, w)| [h, w]));
        return Ok(());
    }
    for extra in norm_checks.iter().skip(1) {
        b.checks.push(extra.clone());
    }
    // residual + norm: read x, o, write x, two bf16 outputs.
    let n = batch * HIDDEN;
    let (mut x, o) = (b.f32s(n)?, b.f32s(n)?);
    let w = b.bf16s(HIDDEN)?;
    let (mut on, mut ox) = (b.bf16s(n)?, b.bf16s(n)?);
    let st = b.timer.time(|_| {
        let step = ResidualNorm {
            x: &mut x,
            w_post: Some(&w),
            s: 1.0,
            w_next: Some(&w),
            out_norm: Some(&mut on),
            out_x: Some(&mut ox),
            eps: 1e-6,
        };
        gpu.residual_step(Some(&o), step, batch, HIDDEN)
    })?;
    b.record(
        "residual_rms_norm (add + 2 norms, bf16 outs)",
        format!("[{batch}, {HIDDEN}]"),
        batch,
        Some(norm_checks[0].clone()),
        st,
        (n * (4 * 3 + 2 * 2)) as f64,
    );
    // q/k/v norms + rope + KV write, sliding (hd 256) and global (hd 512) layers.
    for (rope, checks) in [sliding, global].into_iter().zip(qkv_checks) {
        let hd = rope.head_dim();
        let stride = (HEADS + 2 * KV_HEADS) * hd;
        let layout = crate::QkvLayout {
            heads: HEADS,
            kv_heads: KV_HEADS,
            head_dim: hd,
            row_stride: stride,
            k_col: HEADS * hd,
            v_col: (HEADS + KV_HEADS) * hd,
        };
        let kv = crate::KvLayout {
            num_seqs: batch,
            capacity: 1024,
            kv_heads: KV_HEADS,
            head_dim: hd,
        };
        let qkv = b.f32s(batch * stride)?;
        let mut q = b.f32s(batch * HEADS * hd)?;
        let qn = b.bf16s(hd)?;
        let freq = gpu.upload(&rope.inv_freq())?;
        let seqs = gpu.upload(&(0..batch as i32).collect::<Vec<_>>())?;
        let pos = gpu.upload(&vec![700i32; batch])?;
        let (mut kc, mut vc) = (
            gpu.alloc::<bf16>(kv.elements())?,
            gpu.alloc::<bf16>(kv.elements())?,
        );
        let st = b.timer.time(|_| {
            let prologue = QkvPrologue {
                layout,
                q_out: &mut q,
                q_norm: &qn,
                k_norm: Some(&qn),
                inv_freq: &freq,
                seq_ids: &seqs,
                positions: &pos,
                cache: Some((kv, &mut kc, &mut vc)),
                eps: 1e-6,
            };
            gpu.qkv_prologue(&qkv, prologue, batch)
        })?;
        for extra in checks.iter().skip(1) {
            b.checks.push(extra.clone());
        }
        b.record(
            "qk_norm_rope_kv (q/k/v norm, rope, KV write)",
            format!("[{batch}, {stride}] hd {hd}"),
            batch,
            Some(checks[0].clone()),
            st,
            (batch * (stride * 4 + HEADS * hd * 4 + 2 * KV_HEADS * hd * 2)) as f64,
        );
    }
    // Per-layer inputs: projection (f32) + table row (bf16) -> f32.
    let width = layers * PLE_DIM;
    let proj = b.f32s(batch * width)?;
    let table = b.bf16s(64 * width)?;
    let ids = gpu.upload(&(0..batch as u32).map(|i| i % 64).collect::<Vec<_>>())?;
    let nw = b.bf16s(PLE_DIM)?;
    let mut out = b.f32s(batch * width)?;
    let st = b.timer.time(|_| {
        let c = PleCombine {
            table: &table,
            ids: &ids,
            norm_w: &nw,
            layers,
            dim: PLE_DIM,
            scales: [0.02, 16.0, 0.7],
            eps: 1e-6,
        };
        gpu.ple_combine(&proj, c, batch, &mut out)
    })?;
    b.record(
        "ple_combine",
        format!("[{batch}, {layers} x {PLE_DIM}]"),
        batch,
        Some(ple_check),
        st,
        (batch * width * (4 + 2 + 4)) as f64,
    );
    // Soft-cap + argmax over the logits (read-only: greedy ids only), vs the unfused pair.
    let mut logits = b.f32s(batch * VOCAB)?;
    let mut ids = gpu.alloc::<u32>(batch)?;
    gpu.reserve_scratch(crate::ScratchLimits {
        argmax_rows: batch,
        argmax_cols: VOCAB,
        ..Default::default()
    })?;
    let st = b
        .timer
        .time(|_| gpu.softcap_argmax(&mut logits, batch, VOCAB, 30.0, false, &mut ids))?;
    b.checks.push(sa_checks[1].clone());
    b.record(
        "softcap_argmax (fused, ids only)",
        format!("[{batch}, {VOCAB}]"),
        batch,
        Some(sa_checks[0].clone()),
        st,
        (batch * VOCAB * 4) as f64,
    );
    let gu = b.f32s(batch * 2 * INTERMEDIATE)?;
    let mut act = b.bf16s(batch * INTERMEDIATE)?;
    let st = b.timer.time(|_| {
        let up = gu.slice(INTERMEDIATE..);
        gpu.geglu_to_bf16(
            Strided::new(&gu, 2 * INTERMEDIATE),
            Strided::new(&up, 2 * INTERMEDIATE),
            batch,
            INTERMEDIATE,
            &mut act,
        )
    })?;
    b.record(
        "geglu_to_bf16 (fused gate|up)",
        format!("[{batch}, {INTERMEDIATE}]"),
        batch,
        Some(gg_check),
        st,
        (batch * INTERMEDIATE * (8 + 2)) as f64,
    );
    if let Some((halves_check, with_check)) = epilogue_checks {
        // Weights rotated past L2 as for the plain projections; bytes = weights + x + the bf16 output (+ z).
        let (n, k) = (2 * INTERMEDIATE, HIDDEN);
        let sets = sets_for(n * k * 2);
        let ws = b.bf16s(n * k * sets)?;
        let x = b.bf16s(batch * k)?;
        let kparts = gpu.gemv_default_kparts(n);
        let st = b.timer.time(|i| {
            let halves = GemmShape {
                m: batch,
                n: INTERMEDIATE,
                k,
            };
            gpu.gemv_bf16_geglu_halves(
                &x,
                &weight_set(&ws, n * k, i, sets),
                halves,
                kparts,
                &mut act,
            )
        })?;
        b.record(
            "gemv_bf16 + GeGLU epilogue (gate|up halves)",
            format!("[{batch}, {k}] x [{n}, {k}]^T -> [{batch}, {INTERMEDIATE}] bf16"),
            batch,
            Some(halves_check),
            st,
            (n * k * 2 + batch * k * 2 + batch * INTERMEDIATE * 2) as f64,
        );
        let (n, zw) = (PLE_DIM, layers * PLE_DIM);
        let sets = sets_for(n * k * 2);
        let ws = b.bf16s(n * k * sets)?;
        let z = b.f32s(batch * zw)?;
        let mut pact = b.bf16s(batch * n)?;
        let kparts = gpu.gemv_default_kparts(n);
        let st = b.timer.time(|i| {
            let dims = GemmShape { m: batch, n, k };
            let z = Strided::new(&z, zw);
            gpu.gemv_bf16_geglu_with(
                &x,
                &weight_set(&ws, n * k, i, sets),
                dims,
                kparts,
                z,
                &mut pact,
            )
        })?;
        b.record(
            "gemv_bf16 + GeGLU epilogue (per-layer gate x input)",
            format!("[{batch}, {k}] x [{n}, {k}]^T -> [{batch}, {n}] bf16"),
            batch,
            Some(with_check),
            st,
            (n * k * 2 + batch * k * 2 + batch * n * (4 + 2)) as f64,
        );
    }
    Ok(())
}
