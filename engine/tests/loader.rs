//! Loading: checkpoints written by the engine load back (and equal the source), multimodal prefixes and
//! nested configs, and clear errors for a missing tensor, a wrong shape, an unsupported dtype or config.

mod common;
use common::*;
use safetensors::tensor::{Dtype, TensorView};
use std::path::Path;
use vkae_engine::{Backend, Engine, EngineError, Model};

fn tmpdir(tag: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("vkae-engine-test-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn logits(m: Model, ids: &[u32]) -> Vec<f32> {
    Engine::new(m, Backend::Cpu)
        .unwrap()
        .prefill_logits(ids)
        .unwrap()
}

/// Writes `tensors` (name, dtype, shape, bytes) as one model.safetensors plus `config` into `dir`.
fn write_raw(
    dir: &Path,
    config: &serde_json::Value,
    tensors: &[(String, Dtype, Vec<usize>, Vec<u8>)],
) {
    let views: Vec<(String, TensorView)> = tensors
        .iter()
        .map(|(n, d, s, b)| (n.clone(), TensorView::new(*d, s.clone(), b).unwrap()))
        .collect();
    safetensors::serialize_to_file(views, None, &dir.join("model.safetensors")).unwrap();
    std::fs::write(dir.join("config.json"), config.to_string()).unwrap();
}

/// A tensor as written to safetensors: name, dtype, shape, raw bytes.
type RawTensor = (String, Dtype, Vec<usize>, Vec<u8>);

fn fixture_tensors(name: &str, prefix: &str) -> (Model, Vec<RawTensor>) {
    let m = Model::load(&fixture_dir(name)).unwrap();
    let t = m
        .named_tensors()
        .into_iter()
        .map(|(n, t)| {
            (
                format!("{prefix}{n}"),
                Dtype::BF16,
                t.shape.clone(),
                t.bytes().to_vec(),
            )
        })
        .collect();
    (m, t)
}

#[test]
fn written_checkpoint_loads_back_identically() {
    let m = Model::load(&fixture_dir("e_style")).unwrap();
    let r = reference("e_style");
    let d = tmpdir("roundtrip");
    m.write_checkpoint(&d, 50_000).unwrap(); // several shards + index
    assert!(d.join("model.safetensors.index.json").exists());
    assert!(
        std::fs::read_dir(&d)
            .unwrap()
            .filter(|e| e
                .as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .ends_with(".safetensors"))
            .count()
            > 1
    );
    let back = Model::load(&d).unwrap();
    assert_eq!(back.config, m.config);
    assert_eq!(logits(back, &r.prompt), logits(m, &r.prompt));
}

#[test]
fn multimodal_checkpoint_loads_the_text_decoder() {
    let (m, mut t) = fixture_tensors("moe_style", "model.language_model.");
    t.push((
        "model.vision_tower.encoder.layers.0.mlp.up_proj.weight".into(),
        Dtype::F32,
        vec![2, 2],
        vec![0u8; 16],
    ));
    let cfg = serde_json::json!({"model_type": "gemma4", "text_config": m.config.to_json(), "vision_config": {"hidden_size": 8}});
    let d = tmpdir("multimodal");
    write_raw(&d, &cfg, &t);
    let back = Model::load(&d).unwrap();
    let r = reference("moe_style");
    assert_eq!(logits(back, &r.prompt[..20]), logits(m, &r.prompt[..20]));
}

#[test]
fn missing_tensor_is_named() {
    let (m, mut t) = fixture_tensors("dense_style", "model.");
    t.retain(|(n, ..)| n != "model.layers.3.self_attn.k_norm.weight");
    let d = tmpdir("missing");
    write_raw(&d, &m.config.to_json(), &t);
    let err = Model::load(&d).err().expect("load must fail");
    assert!(matches!(err, EngineError::MissingTensor { .. }), "{err}");
    assert!(
        err.to_string()
            .contains("model.layers.3.self_attn.k_norm.weight"),
        "{err}"
    );
}

#[test]
fn wrong_shape_is_named() {
    let (m, mut t) = fixture_tensors("dense_style", "model.");
    let e = t
        .iter_mut()
        .find(|(n, ..)| n == "model.layers.0.mlp.up_proj.weight")
        .unwrap();
    e.2 = vec![e.2[1], e.2[0]];
    let d = tmpdir("shape");
    write_raw(&d, &m.config.to_json(), &t);
    let err = Model::load(&d).err().expect("load must fail").to_string();
    assert!(
        err.contains("model.layers.0.mlp.up_proj.weight") && err.contains("expected"),
        "{err}"
    );
}

#[test]
fn unsupported_dtype_is_named() {
    let (m, mut t) = fixture_tensors("dense_style", "model.");
    let e = t
        .iter_mut()
        .find(|(n, ..)| n == "model.norm.weight")
        .unwrap();
    e.1 = Dtype::I16; // same byte count as BF16
    let d = tmpdir("dtype");
    write_raw(&d, &m.config.to_json(), &t);
    let err = Model::load(&d).err().expect("load must fail");
    assert!(matches!(err, EngineError::UnsupportedDtype { .. }), "{err}");
    assert!(err.to_string().contains("model.norm.weight"), "{err}");
}

#[test]
fn f32_checkpoints_load_too() {
    let m = Model::load(&fixture_dir("e_style")).unwrap();
    let t: Vec<_> = m
        .named_tensors()
        .into_iter()
        .map(|(n, t)| {
            let f: Vec<u8> = t.to_f32().iter().flat_map(|v| v.to_le_bytes()).collect();
            (format!("model.{n}"), Dtype::F32, t.shape.clone(), f)
        })
        .collect();
    let d = tmpdir("f32");
    write_raw(&d, &m.config.to_json(), &t);
    let r = reference("e_style");
    assert_eq!(
        logits(Model::load(&d).unwrap(), &r.prompt),
        logits(m, &r.prompt)
    );
}

#[test]
fn bad_configs_are_rejected_with_the_field_named() {
    let d = tmpdir("config");
    for (cfg, needle) in [
        (serde_json::json!({"model_type": "llama"}), "llama"),
        (
            serde_json::json!({"model_type": "gemma4_text", "hidden_activation": "silu"}),
            "silu",
        ),
        (
            serde_json::json!({"model_type": "gemma4_text", "num_hidden_layers": 2, "layer_types": ["sliding_attention"]}),
            "layer_types",
        ),
        (
            serde_json::json!({"model_type": "gemma4_text", "num_attention_heads": 6, "num_key_value_heads": 4}),
            "num_key_value_heads",
        ),
    ] {
        std::fs::write(d.join("config.json"), cfg.to_string()).unwrap();
        let err = Model::load(&d).err().expect("load must fail").to_string();
        assert!(err.contains(needle), "{cfg}: {err}");
    }
    let empty = tmpdir("nofiles");
    std::fs::write(
        empty.join("config.json"),
        vkae_engine::Family::E2B.config().to_json().to_string(),
    )
    .unwrap();
    let err = Model::load(&empty)
        .err()
        .expect("load must fail")
        .to_string();
    assert!(err.contains("model.safetensors"), "{err}");
}

#[test]
fn synthetic_weights_are_a_function_of_the_seed_and_finite() {
    let cfg = Model::load(&fixture_dir("moe_style")).unwrap().config;
    let a = Model::synthetic(cfg.clone(), 5, "a".into()).unwrap();
    let b = Model::synthetic(cfg.clone(), 5, "b".into()).unwrap();
    let c = Model::synthetic(cfg, 6, "c".into()).unwrap();
    let ids: Vec<u32> = (2..40).collect();
    let (la, lb, lc) = (logits(a, &ids), logits(b, &ids), logits(c, &ids));
    assert_eq!(la, lb);
    assert_ne!(la, lc);
    assert!(la.iter().all(|v| v.is_finite()));
    let spread = la.iter().fold(0f32, |m, v| m.max(v.abs()));
    assert!(spread > 0.01 && spread < 30.0, "logit scale {spread}");
}
