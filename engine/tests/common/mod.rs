//! Shared by the integration tests: the transformers fixtures and the error measure.
#![allow(dead_code)]

use safetensors::SafeTensors;
use std::path::PathBuf;

pub const FIXTURES: [&str; 3] = ["e_style", "moe_style", "dense_style"];

pub fn fixture_dir(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
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
