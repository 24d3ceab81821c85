//! The CPU reference against transformers 5.17 (f32 compute over the fixtures' BF16 weights): logits of every
//! prompt position (longer than the sliding window) and 32 greedy tokens with their logits.

mod common;
use common::*;
use vkae_engine::{Backend, Engine, Model};

const TOL: f64 = 1e-4;

fn check(name: &str) {
    let model = Model::load(&fixture_dir(name)).unwrap();
    let vocab = model.config.vocab_size;
    let r = reference(name);
    assert!(
        r.prompt.len() > model.config.sliding_window,
        "fixture prompt must pass the window"
    );
    let mut engine = Engine::new(model, Backend::Cpu).unwrap();
    let logits = engine.prefill_logits(&r.prompt).unwrap();
    let prompt_err = max_rel_err(&logits, &r.prompt_logits, vocab);
    let (tokens, steps) = engine
        .generate_with_logits(&r.prompt, r.greedy.len())
        .unwrap();
    let step_err = max_rel_err(&steps.concat(), &r.step_logits, vocab);
    eprintln!("{name}: prompt logits max rel err {prompt_err:.2e}, decode logits {step_err:.2e}");
    assert!(
        prompt_err <= TOL,
        "{name}: prompt logits rel err {prompt_err:e} > {TOL:e}"
    );
    assert!(
        step_err <= TOL,
        "{name}: decode logits rel err {step_err:e} > {TOL:e}"
    );
    assert_eq!(
        tokens, r.greedy,
        "{name}: greedy tokens differ from transformers"
    );
}

#[test]
fn e_style_matches_transformers() {
    check("e_style");
}

#[test]
fn moe_style_matches_transformers() {
    check("moe_style");
}

#[test]
fn dense_style_matches_transformers() {
    check("dense_style");
}

#[test]
fn teacher_forced_logprobs_agree_with_prefill_logits() {
    let model = Model::load(&fixture_dir("dense_style")).unwrap();
    let r = reference("dense_style");
    let mut engine = Engine::new(model, Backend::Cpu).unwrap();
    let lp = engine.logprobs(&r.prompt).unwrap();
    assert_eq!(lp.len(), r.prompt.len() - 1);
    let v = 512;
    for (i, got) in lp.iter().enumerate() {
        let row = &r.prompt_logits[i * v..(i + 1) * v];
        let mx = row.iter().cloned().fold(f32::MIN, f32::max) as f64;
        let lse = row.iter().map(|&x| (x as f64 - mx).exp()).sum::<f64>().ln() + mx;
        let want = row[r.prompt[i + 1] as usize] as f64 - lse;
        assert!((got - want).abs() < 1e-3, "position {i}: {got} vs {want}");
        assert!(*got < 0.0);
    }
}

#[test]
fn cpu_stops_at_eos() {
    eos_stops_generation(Backend::Cpu);
}
