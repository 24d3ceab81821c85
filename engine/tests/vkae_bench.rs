//! The VKAE-vs-generic decode benchmark at a family's shape (synthetic weights), as an ignored test so it
//! runs only when asked: `vkae_bench --ignored --nocapture` (engine/bench/vkae-h200.sh does this on the H200).
//! Settings from the environment: VKAE_BENCH_FAMILY (e4b), VKAE_BENCH_SEED (0), VKAE_BENCH_BATCHES (1,8,32),
//! VKAE_BENCH_REPS (3), VKAE_BENCH_MAX_NEW (65), VKAE_BENCH_PROMPT (128), VKAE_BENCH_VARIANTS (`all`: the
//! default and the steps before it; `default`: only the default path; `candidates`: the default and the options
//! not yet on by default), VKAE_BENCH_GENERIC (1: also the generic
//! path; 0: not), VKAE_BENCH_OUT (a folder for vkae-bench.json and vkae-bench.md). Without a GPU it skips
//! visibly.

use vkae_engine::vkae::bench::{markdown, run_vkae_bench, VkaeBenchSettings};
use vkae_engine::vkae::VkaeOptions;
use vkae_engine::{generic, Family, Model};

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    match std::env::var(name) {
        Ok(v) => v
            .parse()
            .unwrap_or_else(|_| panic!("{name}={v:?} is not a valid value")),
        Err(_) => default,
    }
}

#[test]
#[ignore = "benchmark: run with --ignored on a GPU machine"]
fn vkae_decode_benchmark() {
    if let Err(why) = generic::available() {
        use std::io::Write;
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED vkae_decode_benchmark: no usable CUDA GPU ({why})"
        );
        return;
    }
    let family = Family::parse(&env_or("VKAE_BENCH_FAMILY", "e4b".to_string())).unwrap();
    let seed: u64 = env_or("VKAE_BENCH_SEED", 0);
    let batches: Vec<usize> = env_or("VKAE_BENCH_BATCHES", "1,8,32".to_string())
        .split(',')
        .map(|b| {
            b.trim()
                .parse()
                .expect("VKAE_BENCH_BATCHES: comma-separated batch sizes")
        })
        .collect();
    let variants = match env_or("VKAE_BENCH_VARIANTS", "all".to_string()).as_str() {
        "all" => VkaeBenchSettings::all_variants(),
        "default" => vec![("vkae (default)".to_string(), VkaeOptions::default())],
        "candidates" => VkaeBenchSettings::candidate_variants(),
        other => panic!("VKAE_BENCH_VARIANTS={other:?}: expected all, default or candidates"),
    };
    let s = VkaeBenchSettings {
        batches,
        variants,
        generic: env_or("VKAE_BENCH_GENERIC", 1u8) != 0,
        reps: env_or("VKAE_BENCH_REPS", 3),
        max_new: env_or("VKAE_BENCH_MAX_NEW", 65),
        prompt_len: env_or("VKAE_BENCH_PROMPT", 128),
        ..VkaeBenchSettings::default()
    };
    let t = std::time::Instant::now();
    let model = Model::synthetic(
        family.config(),
        seed,
        format!("synthetic:{}:{seed}", family.name()),
    )
    .unwrap();
    eprintln!("synthetic weights in {:.1} s", t.elapsed().as_secs_f64());
    let report = run_vkae_bench(&model, &s).unwrap();
    let md = markdown(&report);
    println!("{md}");
    if let Ok(dir) = std::env::var("VKAE_BENCH_OUT") {
        let tag = std::env::var("VKAE_BENCH_TAG").unwrap_or_default();
        std::fs::write(format!("{dir}/vkae-bench{tag}.md"), &md).unwrap();
        std::fs::write(
            format!("{dir}/vkae-bench{tag}.json"),
            serde_json::to_string_pretty(&report).unwrap(),
        )
        .unwrap();
    }
    assert!(report.results.iter().all(|r| r.rate.median > 0.0));
}
