//! Shared by the integration tests: the transformers fixtures and the error measure.
#![allow(dead_code)]

use safetensors::SafeTensors;
use std::path::PathBuf;

/// A fresh directory under the system's temporary folder, removed with everything in it on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        let d = std::env::temp_dir().join(format!(
            "vkae-{tag}-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        ));
        std::fs::create_dir_all(&d).unwrap();
        TempDir(d)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// What a command that must succeed printed on stdout; its stderr in the failure otherwise.
pub fn stdout_of(out: &std::process::Output) -> String {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone()).expect("UTF-8 on stdout")
}

/// The one JSON object a command that must succeed printed on stdout.
pub fn json_of(out: &std::process::Output) -> serde_json::Value {
    serde_json::from_str(&stdout_of(out)).expect("one JSON object on stdout")
}

pub const FIXTURES: [&str; 3] = ["e_style", "moe_style", "dense_style"];

/// `engine/fixtures/<name>`: under `VKAE_ENGINE_DIR` when set (test binaries built on one machine and run
/// from another checkout, as the device scripts do), else under this crate's source folder.
pub fn fixture_dir(name: &str) -> PathBuf {
    std::env::var_os("VKAE_ENGINE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")))
        .join("fixtures")
        .join(name)
}

/// What transformers computed for a fixture (see fixtures/make_fixtures.py).
pub struct Reference {
    pub prompt: Vec<u32>,
    pub prompt_logits: Vec<f32>,
    pub greedy: Vec<u32>,
    pub step_logits: Vec<f32>,
}

pub fn reference(name: &str) -> Reference {
    let bytes = std::fs::read(fixture_dir(name).join("reference.safetensors"))
        .expect("reference.safetensors");
    let st = SafeTensors::deserialize(&bytes).expect("safetensors");
    let i64s = |n: &str| -> Vec<u32> {
        st.tensor(n)
            .unwrap()
            .data()
            .chunks_exact(8)
            .map(|c| i64::from_le_bytes(c.try_into().unwrap()) as u32)
            .collect()
    };
    let f32s = |n: &str| -> Vec<f32> {
        st.tensor(n)
            .unwrap()
            .data()
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
            .collect()
    };
    Reference {
        prompt: i64s("prompt_ids"),
        prompt_logits: f32s("prompt_logits"),
        greedy: i64s("greedy_tokens"),
        step_logits: f32s("step_logits"),
    }
}

/// Three prompts from a fixture's reference prompt, of different lengths and contents, so a mixed-up sequence
/// id or position shows.
pub fn three_prompts(name: &str) -> Vec<Vec<u32>> {
    let p = reference(name).prompt;
    vec![
        p.clone(),
        p[..20].to_vec(),
        p[5..].iter().rev().cloned().collect(),
    ]
}

/// Largest absolute difference over the largest reference magnitude, row by row (`width` per row), the
/// worst row returned. NaN anywhere gives infinity.
pub fn max_rel_err(got: &[f32], want: &[f32], width: usize) -> f64 {
    assert_eq!(got.len(), want.len(), "lengths differ");
    let mut worst = 0f64;
    for (g, w) in got.chunks(width).zip(want.chunks(width)) {
        let scale = w.iter().fold(0f64, |m, v| m.max(v.abs() as f64));
        let diff = g.iter().zip(w).fold(0f64, |m, (a, b)| {
            let d = (*a as f64 - *b as f64).abs();
            if d.is_nan() {
                f64::INFINITY
            } else {
                m.max(d)
            }
        });
        worst = worst.max(diff / scale.max(1e-30));
    }
    worst
}

/// `||got - want|| / ||want||` over all elements (the project's relative error, performance-anchors.md);
/// NaN anywhere gives infinity.
pub fn l2_rel_err(got: &[f32], want: &[f32]) -> f64 {
    assert_eq!(got.len(), want.len(), "lengths differ");
    let (mut num, mut den) = (0f64, 0f64);
    for (g, w) in got.iter().zip(want) {
        let d = *g as f64 - *w as f64;
        num += d * d;
        den += (*w as f64) * (*w as f64);
    }
    let r = (num / den.max(1e-300)).sqrt();
    if r.is_nan() {
        f64::INFINITY
    } else {
        r
    }
}

/// Greedy agreement with a reference run: tokens must be equal until the first step where they differ, and
/// there the reference must have had a near-tie (the reference logit of the other side's token within
/// `rel_tol x max|logit|` of the reference maximum). After a tie-flip the two runs see different inputs, so
/// the count returned is the number of steps whose logits are comparable (all of them when no token differs).
pub fn greedy_agreement(
    got: &[u32],
    want: &[u32],
    want_logits: &[Vec<f32>],
    rel_tol: f32,
) -> Result<usize, String> {
    assert_eq!(got.len(), want.len());
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        if g == w {
            continue;
        }
        let row = &want_logits[i];
        let max = row.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
        let scale = row.iter().fold(0f32, |m, v| m.max(v.abs()));
        let gap = max - row[*g as usize];
        if gap > rel_tol * scale {
            return Err(format!(
                "step {i}: token {g} vs {w}, and the reference gap {gap:.4} is no near-tie (tolerance {:.4})",
                rel_tol * scale
            ));
        }
        return Ok(i + 1);
    }
    Ok(got.len())
}

/// GPU paths vs the CPU reference: BF16 projection inputs and KV cache against f32 throughout. The one place
/// the engine's GPU tests take their tolerances from.
pub const BF16_BAND: f64 = 1e-2;
/// A greedy token may differ only where the reference's top logits are this close (fraction of max|logit|).
pub const NEAR_TIE: f32 = 2e-2;

/// Deep models (E4B: 42 layers): BF16 rounding alone moves the CPU reference by about the band's top
/// (docs/benchmarks/engine-accuracy.md), and a GPU's rounding noise is independent of the emulation's, so the
/// bound is calibrated on the spot: no further from the reference than 1.5x what rounding alone moves it.
pub fn deep_model_bound(rounding_alone: f64) -> f64 {
    BF16_BAND.max(1.5 * rounding_alone)
}

/// True where a CUDA GPU is usable; otherwise prints a visible skip line and returns false.
pub fn gpu_or_skip(test: &str) -> bool {
    match vkae_engine::generic::available() {
        Ok(()) => true,
        Err(why) => {
            // Written to the stderr handle directly, which the test harness does not capture: the skip shows.
            use std::io::Write;
            let _ = writeln!(
                std::io::stderr(),
                "SKIPPED {test}: no usable CUDA GPU ({why})"
            );
            false
        }
    }
}

/// `stop_at_eos` on `backend`: a token the backend's own greedy stream produces (its sixth) is made the model's
/// EOS, and generating again stops right after that token's first appearance, in every sequence of the batch.
pub fn eos_stops_generation(backend: vkae_engine::Backend) {
    use vkae_engine::{Engine, GenerateRequest, Model};
    let mut model = Model::load(&fixture_dir("e_style")).unwrap();
    let prompt = reference("e_style").prompt;
    let request = |stop_at_eos| GenerateRequest {
        prompts: vec![prompt.clone(); 2],
        max_new: 16,
        stop_at_eos,
    };
    let free = Engine::new(model.clone(), backend)
        .unwrap()
        .generate(&request(false))
        .unwrap()
        .tokens[0]
        .clone();
    let eos = free[5];
    let first = free.iter().position(|&t| t == eos).unwrap();
    model.config.eos_token_ids = vec![eos];
    let stopped = Engine::new(model, backend)
        .unwrap()
        .generate(&request(true))
        .unwrap();
    for tokens in &stopped.tokens {
        assert_eq!(tokens[..], free[..=first], "EOS {eos} at step {first}");
    }
}
