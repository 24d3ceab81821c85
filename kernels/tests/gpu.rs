//! GPU reference checks: every kernel on fresh random inputs against the f64 CPU reference.
//! Without a CUDA device each test prints "SKIP: no CUDA device: ..." and passes; on the H200
//! (kernels/bench/run-h200.sh) they run for real.

use std::sync::{Mutex, MutexGuard, OnceLock};
use vkae_kernels::check::{CheckReport, Checker};
use vkae_kernels::module_cache::ModuleCache;
use vkae_kernels::ops::attention::AttentionCase;
use vkae_kernels::rng::Rng;
use vkae_kernels::tolerance::{passes, relative_error, F32_OP};
use vkae_kernels::{
    AttentionSpec, GemmShape, Gpu, KernelError, KvCache, KvCacheMut, KvLayout, Rope, Tokens,
};

/// One Gpu for the whole test binary (module compile happens once); tests take turns.
fn gpu() -> Option<MutexGuard<'static, Gpu>> {
    static GPU: OnceLock<Result<Mutex<Gpu>, String>> = OnceLock::new();
    match GPU.get_or_init(|| Gpu::new().map(Mutex::new).map_err(|e| e.to_string())) {
        Ok(m) => Some(m.lock().unwrap_or_else(|p| p.into_inner())),
        Err(e) => {
            // Written to the process's stderr directly so the test harness does not swallow it.
            use std::io::Write;
            let _ = std::io::stderr()
                .lock()
                .write_all(format!("SKIP: no CUDA device: {e}\n").as_bytes());
            None
        }
    }
}

fn assert_all(reports: &[CheckReport]) {
    for r in reports {
        eprintln!("{r}");
    }
    let failed: Vec<String> = reports
        .iter()
        .filter(|r| !r.passed())
        .map(|r| r.to_string())
        .collect();
    assert!(failed.is_empty(), "checks failed:\n{}", failed.join("\n"));
}

macro_rules! gpu_or_skip {
    () => {
        match gpu() {
            Some(g) => g,
            None => return,
        }
    };
}

/// Full causal attention of `heads` query heads, scale 1, on the default kernels.
fn spec(heads: usize) -> AttentionSpec {
    AttentionSpec {
        heads,
        window: None,
        scale: 1.0,
        max_keys: None,
        path: Default::default(),
    }
}

fn checker(g: &Gpu) -> Checker<'_> {
    Checker::new(g, Rng::fresh_seed())
}

#[test]
fn embed_matches_reference() {
    let g = gpu_or_skip!();
    let mut c = checker(&g);
    assert_all(&[
        c.embed(7, 2560, 1000).unwrap(),
        c.embed(5, 100, 50).unwrap(),
        c.embed(3, 10752, 64).unwrap(),
    ]);
}

#[test]
fn embed_out_of_range_id_gives_a_nan_row() {
    let g = gpu_or_skip!();
    let table = g.upload(&[vkae_kernels::half::bf16::ONE; 4 * 16]).unwrap();
    let ids = g.upload(&[1u32, 4]).unwrap();
    let mut out = g.alloc::<f32>(32).unwrap();
    g.embed(&table, &ids, 2, 16, 2.0, &mut out).unwrap();
    let h = g.download(&out).unwrap();
    assert!(h[..16].iter().all(|&v| v == 2.0));
    assert!(h[16..].iter().all(|v| v.is_nan()));
}

#[test]
fn rms_norm_matches_reference() {
    let g = gpu_or_skip!();
    let mut c = checker(&g);
    assert_all(&[
        c.rms_norm(9, 2560, true, false).unwrap(),
        c.rms_norm(9, 2560, false, false).unwrap(),
        c.rms_norm(33, 256, true, true).unwrap(),
        c.rms_norm(64, 512, false, true).unwrap(),
        c.rms_norm(4, 100, true, false).unwrap(),
    ]);
}

#[test]
fn rope_matches_reference() {
    let g = gpu_or_skip!();
    let mut c = checker(&g);
    assert_all(&[
        c.rope(
            5,
            8,
            Rope::Default {
                theta: 1e4,
                head_dim: 256,
            },
            131072,
        )
        .unwrap(),
        c.rope(
            5,
            2,
            Rope::Proportional {
                theta: 1e6,
                partial_rotary_factor: 0.25,
                head_dim: 512,
            },
            131072,
        )
        .unwrap(),
        c.rope(
            3,
            4,
            Rope::Default {
                theta: 1e4,
                head_dim: 64,
            },
            4096,
        )
        .unwrap(),
    ]);
}

#[test]
fn kv_append_writes_exactly_its_slots() {
    let g = gpu_or_skip!();
    let mut c = checker(&g);
    assert_all(&[
        c.kv_append(3, 5, 2, 256).unwrap(),
        c.kv_append(2, 4, 2, 512).unwrap(),
        c.kv_append(2, 4, 1, 48).unwrap(),
    ]);
}

#[test]
fn attention_matches_reference() {
    let g = gpu_or_skip!();
    let mut c = checker(&g);
    let base = AttentionCase::DECODE;
    let cases = [
        base,
        // The bf16 output (the VKAE path's o-projection operand), with split partials and without.
        AttentionCase {
            bf16_out: true,
            ..base
        },
        AttentionCase {
            bf16_out: true,
            num_seqs: 2,
            heads: 8,
            kv_heads: 8,
            head_dim: 512,
            context: 64,
            new_tokens: 64,
            capacity: 128,
            ..base
        },
        AttentionCase {
            head_dim: 512,
            ..base
        },
        AttentionCase {
            context: 0,
            new_tokens: 17,
            ..base
        },
        AttentionCase {
            context: 20,
            new_tokens: 9,
            window: Some(8),
            ..base
        },
        AttentionCase {
            context: 700,
            window: Some(512),
            capacity: 1024,
            ..base
        },
        AttentionCase {
            context: 300,
            window: Some(16),
            capacity: 16,
            ..base
        },
        AttentionCase {
            context: 100,
            new_tokens: 4,
            window: Some(32),
            capacity: 35,
            ..base
        },
        AttentionCase {
            heads: 4,
            kv_heads: 1,
            head_dim: 40,
            context: 10,
            new_tokens: 3,
            ..base
        },
        // More splits than keys (empty splits must not count).
        AttentionCase {
            num_seqs: 1,
            context: 3,
            ..base
        },
        // A long decode: 32 splits over 5000 keys.
        AttentionCase {
            num_seqs: 1,
            context: 5000,
            head_dim: 512,
            capacity: 5001,
            ..base
        },
        AttentionCase {
            num_seqs: 2,
            heads: 8,
            kv_heads: 8,
            head_dim: 512,
            context: 64,
            new_tokens: 64,
            capacity: 128,
            ..base
        },
    ];
    let reports: Vec<_> = cases.into_iter().map(|k| c.attention(k).unwrap()).collect();
    assert_all(&reports);
}

#[test]
fn attention_paths_match_reference() {
    let g = gpu_or_skip!();
    let mut c = checker(&g);
    let reports: Vec<_> = Checker::attention_path_cases()
        .into_iter()
        .map(|k| c.attention(k).unwrap())
        .collect();
    assert_all(&reports);
}

#[test]
fn geglu_matches_reference() {
    let g = gpu_or_skip!();
    let mut c = checker(&g);
    assert_all(&[
        c.geglu(5, 10240, false).unwrap(),
        c.geglu(3, 1000, true).unwrap(),
    ]);
}

#[test]
fn residual_and_scale_match_reference() {
    let g = gpu_or_skip!();
    let mut c = checker(&g);
    assert_all(&c.residual(100_003).unwrap());
}

#[test]
fn softcap_matches_reference() {
    let g = gpu_or_skip!();
    let mut c = checker(&g);
    assert_all(&[c.softcap(100_003).unwrap()]);
}

#[test]
fn argmax_matches_reference_with_ties() {
    let g = gpu_or_skip!();
    let mut c = checker(&g);
    assert_all(&[
        c.argmax(4, 262_144).unwrap(),
        c.argmax(3, 1000).unwrap(),
        c.argmax(32, 262_144).unwrap(),
    ]);
}

#[test]
fn casts_match_reference() {
    let g = gpu_or_skip!();
    let mut c = checker(&g);
    assert_all(&c.casts(100_003).unwrap());
}

#[test]
fn linear_matches_reference() {
    let g = gpu_or_skip!();
    let mut c = checker(&g);
    assert_all(&[
        c.linear(3, 512, 2560, None).unwrap(),
        c.linear(8, 2048, 2560, None).unwrap(),
        c.linear(1, 1000, 100, None).unwrap(),
        c.linear(32, 262_144, 2560, Some(64)).unwrap(),
    ]);
}

/// The poison works: a launch that leaves rows unwritten must fail the comparison.
#[test]
fn unwritten_output_fails_the_check() {
    let g = gpu_or_skip!();
    let (rows, cols) = (4, 256);
    let x = Rng::new(1).normal_vec(rows * cols, 1.0);
    let dx = g.upload(&x).unwrap();
    let mut out = g.upload(&vec![f32::NAN; rows * cols]).unwrap();
    g.rms_norm(&dx, None, 1e-6, rows - 1, cols, &mut out)
        .unwrap();
    let got = g.download(&out).unwrap();
    let want = vkae_kernels::ops::norm::reference::rms_norm(&x, None, 1e-6, rows, cols);
    assert!(!passes(relative_error(&got, &want), F32_OP));
    let want3 = vkae_kernels::ops::norm::reference::rms_norm(&x, None, 1e-6, rows - 1, cols);
    assert!(passes(
        relative_error(&got[..(rows - 1) * cols], &want3),
        F32_OP
    ));
}

#[test]
fn shape_errors_name_the_op_and_the_buffer() {
    let g = gpu_or_skip!();
    let x = g.alloc::<f32>(10).unwrap();
    let mut out = g.alloc::<f32>(10).unwrap();
    match g.rms_norm(&x, None, 1e-6, 2, 8, &mut out) {
        Err(KernelError::Shape { op, message }) => {
            assert_eq!(op, "rms_norm");
            assert!(message.contains("x holds 10"), "{message}");
        }
        other => panic!("expected a shape error, got {other:?}"),
    }
    let layout = KvLayout {
        num_seqs: 1,
        capacity: 4,
        kv_heads: 2,
        head_dim: 1024,
    };
    let kc = g
        .alloc::<vkae_kernels::half::bf16>(layout.elements())
        .unwrap();
    let pos = g.alloc::<i32>(1).unwrap();
    let q = g.alloc::<f32>(4 * 1024).unwrap();
    let mut o = g.alloc::<f32>(4 * 1024).unwrap();
    let cache = KvCache::new(&kc, &kc, layout);
    let tokens = Tokens::new(&pos, &pos, 1);
    let err = g.attention(&q, cache, tokens, spec(4), &mut o).unwrap_err();
    assert!(err.to_string().contains("head_dim 1024"), "{err}");
}

#[test]
fn device_reports_its_architecture() {
    let g = gpu_or_skip!();
    let (major, minor) = g.compute_capability();
    assert_eq!(g.arch(), format!("sm_{major}{minor}"));
    eprintln!(
        "device {} ({}), {} SMs, modules compiled and loaded in {:.2} s ({} of {} from the module cache), kernels sha256 {}",
        g.device_name(),
        g.arch(),
        g.multiprocessors(),
        g.compile_seconds(),
        g.modules_from_cache(),
        vkae_kernels::sources::SOURCES.len(),
        vkae_kernels::kernels_sha256()
    );
}

/// The module cache: a fresh one fills on the first open, serves every module on the second (and the kernels
/// loaded from it pass their checks), and an entry the driver refuses is compiled again and replaced.
#[test]
fn modules_come_back_from_the_cache_and_a_bad_entry_is_recompiled() {
    // Held for the whole test: the other tests wait, and the device is known to work.
    let _shared = gpu_or_skip!();
    let dir = std::env::temp_dir().join(format!("vkae-gpu-module-cache-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let modules = vkae_kernels::sources::SOURCES.len();
    let cache = ModuleCache::at(&dir);

    let first = Gpu::with_device_and_cache(0, cache.clone()).unwrap();
    assert_eq!(first.modules_from_cache(), 0);
    let cold = first.compile_seconds();
    drop(first);
    let entries = || {
        let mut v: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        v.sort();
        v
    };
    assert_eq!(entries().len(), modules, "one cubin a module");

    let second = Gpu::with_device_and_cache(0, cache.clone()).unwrap();
    assert_eq!(second.modules_from_cache(), modules);
    let warm = second.compile_seconds();
    assert_all(&[
        checker(&second).rms_norm(9, 2560, true, false).unwrap(),
        checker(&second)
            .attention(Checker::attention_path_cases()[0])
            .unwrap(),
    ]);
    drop(second);

    // Garbage in rms_norm's entry: the cache refuses it, the module is compiled again, the entry rewritten,
    // and the recompiled kernel passes its check.
    let victim = entries()
        .into_iter()
        .find(|p| {
            p.file_name()
                .unwrap()
                .to_str()
                .unwrap()
                .starts_with("rms_norm-")
        })
        .unwrap();
    std::fs::write(&victim, b"not a cubin").unwrap();
    let third = Gpu::with_device_and_cache(0, cache).unwrap();
    assert_eq!(third.modules_from_cache(), modules - 1);
    assert_ne!(std::fs::read(&victim).unwrap(), b"not a cubin");
    assert_all(&[checker(&third).rms_norm(9, 2560, true, false).unwrap()]);
    eprintln!("module cache: cold open {cold:.2} s, warm open {warm:.2} s ({modules} modules)");
    let _ = std::fs::remove_dir_all(&dir);
}

/// With the scratch reserved, a chain of ops (GEMM, softcap, argmax, KV write, attention) can be
/// captured into a CUDA graph, and its replay gives what the eager run gave.
#[test]
fn ops_replay_inside_a_cuda_graph() {
    use vkae_kernels::cudarc::driver::sys::{CUgraphInstantiate_flags, CUstreamCaptureMode};
    let g = gpu_or_skip!();
    let mut rng = Rng::new(Rng::fresh_seed());
    let (m, n, k) = (4usize, 4096usize, 2560usize);
    let layout = KvLayout {
        num_seqs: m,
        capacity: 64,
        kv_heads: 2,
        head_dim: 256,
    };
    let heads = 8;
    g.reserve_scratch(vkae_kernels::ScratchLimits {
        linear_elements: m * k,
        argmax_rows: m,
        argmax_cols: n,
        attention_tokens: m,
        attention_heads: heads,
        attention_head_dim: 256,
    })
    .unwrap();
    let x = g.upload(&rng.normal_vec(m * k, 1.0)).unwrap();
    let w = g.upload(&rng.normal_bf16(n * k, 0.02)).unwrap();
    let kv_new = g.upload(&rng.normal_vec(m * 2 * 256, 1.0)).unwrap();
    let q = g.upload(&rng.normal_vec(m * heads * 256, 0.1)).unwrap();
    let seqs = g.upload(&(0..m as i32).collect::<Vec<_>>()).unwrap();
    let pos = g.upload(&[5i32, 0, 63, 17]).unwrap();
    let mut kc = g.upload(&rng.normal_bf16(layout.elements(), 1.0)).unwrap();
    let mut vc = g.upload(&rng.normal_bf16(layout.elements(), 1.0)).unwrap();
    let mut y = g.alloc::<f32>(m * n).unwrap();
    let mut ids = g.alloc::<u32>(m).unwrap();
    let mut att = g.alloc::<f32>(m * heads * 256).unwrap();

    let mut step = |y: &mut vkae_kernels::CudaSlice<f32>,
                    ids: &mut vkae_kernels::CudaSlice<u32>,
                    att: &mut vkae_kernels::CudaSlice<f32>| {
        g.linear(&x, &w, m, n, k, y).unwrap();
        g.softcap_inplace(y, 30.0, m * n).unwrap();
        g.argmax_rows(y, m, n, ids).unwrap();
        let tokens = || Tokens::new(&seqs, &pos, m);
        let cache = KvCacheMut::new(&mut kc, &mut vc, layout);
        g.kv_append(&kv_new, &kv_new, tokens(), cache).unwrap();
        let cache = KvCache::new(&kc, &vc, layout);
        g.attention(&q, cache, tokens(), spec(heads), att).unwrap();
    };
    step(&mut y, &mut ids, &mut att);
    let (y0, ids0, att0) = (
        g.download(&y).unwrap(),
        g.download(&ids).unwrap(),
        g.download(&att).unwrap(),
    );

    g.upload_into(&vec![f32::NAN; m * n], &mut y).unwrap();
    g.upload_into(&vec![u32::MAX; m], &mut ids).unwrap();
    g.upload_into(&vec![f32::NAN; m * heads * 256], &mut att)
        .unwrap();
    g.synchronize().unwrap();
    g.stream()
        .begin_capture(CUstreamCaptureMode::CU_STREAM_CAPTURE_MODE_THREAD_LOCAL)
        .unwrap();
    step(&mut y, &mut ids, &mut att);
    let graph = g
        .stream()
        .end_capture(CUgraphInstantiate_flags(0))
        .unwrap()
        .expect("a graph");
    graph.launch().unwrap();
    let (y1, ids1, att1) = (
        g.download(&y).unwrap(),
        g.download(&ids).unwrap(),
        g.download(&att).unwrap(),
    );

    let as_f64 = |v: &[f32]| v.iter().map(|&x| x as f64).collect::<Vec<_>>();
    let e_y = relative_error(&y1, &as_f64(&y0));
    let e_att = relative_error(&att1, &as_f64(&att0));
    eprintln!("graph replay vs eager: logits rel_err {e_y:.1e}, attention rel_err {e_att:.1e}, ids {ids1:?}");
    assert!(passes(e_y, F32_OP) && passes(e_att, F32_OP));
    assert_eq!(ids1, ids0);
}

/// The VKAE path's fused and weight-streaming kernels against their references (residual + norm,
/// q/k/v norm + rope + KV write in every layer flavour, per-layer inputs, soft-cap + argmax, bf16
/// GeGLU, the GEMV at decode shapes, the decode-step bookkeeping).
#[test]
fn fused_kernels_match_references() {
    let g = gpu_or_skip!();
    assert_all(&checker(&g).fused_suite().unwrap());
}

/// `project(m, k)` (a `[m, k] x [16, k]ᵀ` projection) refuses every one of `shapes` with a shape error.
fn assert_refused(
    shapes: &[(usize, usize)],
    mut project: impl FnMut(usize, usize) -> Result<(), KernelError>,
) {
    for &(m, k) in shapes {
        let e = project(m, k).unwrap_err();
        assert!(matches!(e, KernelError::Shape { .. }), "m {m} k {k}: {e}");
    }
}

/// Shapes the GEMV does not take are refused with a shape error, never run.
#[test]
fn gemv_refuses_unsupported_shapes() {
    let g = gpu_or_skip!();
    let x = g.alloc::<vkae_kernels::half::bf16>(9 * 16).unwrap();
    let w = g.alloc::<vkae_kernels::half::bf16>(16 * 16).unwrap();
    let mut y = g.alloc::<f32>(9 * 16).unwrap();
    assert_refused(&[(9, 16), (0, 16), (2, 12)], |m, k| {
        g.gemv_bf16(&x, &w, m, 16, k, &mut y)
    });
}

/// The tensor-core skinny GEMM against the f64 product of the same bf16 operands: every batch-tile
/// edge of 1..=32 rows, ragged widths, k from one chunk to 10240, every k split.
#[test]
fn skinny_gemm_matches_reference() {
    let g = gpu_or_skip!();
    assert_all(&checker(&g).skinny_suite().unwrap());
}

/// The projection GEMM through cuBLASLt, every algorithm its heuristic lists for E4B's decode shapes at 1, 8
/// and 32 rows, against the f64 product of the same bf16 operands (the engine times these algorithms beside
/// its own kernels when `VkaeOptions::cublaslt_candidates` is on).
#[cfg(feature = "ablations")]
#[test]
fn cublaslt_algorithms_match_reference() {
    let g = gpu_or_skip!();
    assert_all(&checker(&g).gemm_lt_suite().unwrap());
}

/// Shapes the skinny GEMM does not take (rows outside 1..=32, k not a multiple of 32, a bad k split,
/// a misaligned operand) are refused with a shape error, never run.
#[test]
fn skinny_gemm_refuses_unsupported_shapes() {
    let g = gpu_or_skip!();
    let x = g.alloc::<vkae_kernels::half::bf16>(33 * 64).unwrap();
    let w = g.alloc::<vkae_kernels::half::bf16>(16 * 64).unwrap();
    let mut y = g.alloc::<f32>(33 * 16).unwrap();
    assert_refused(&[(33, 32), (0, 32), (2, 48), (2, 0)], |m, k| {
        g.skinny_gemm_bf16(&x, &w, m, 16, k, &mut y)
    });
    let e = g
        .skinny_gemm_bf16_split(&x, &w, GemmShape { m: 2, n: 16, k: 32 }, 3, &mut y)
        .unwrap_err();
    assert!(matches!(e, KernelError::Shape { .. }), "kparts 3: {e}");
    let e = g
        .skinny_gemm_bf16(&x.slice(1..), &w, 2, 16, 32, &mut y)
        .unwrap_err();
    assert!(
        matches!(e, KernelError::Shape { .. }) && e.to_string().contains("aligned"),
        "misaligned x: {e}"
    );
}
