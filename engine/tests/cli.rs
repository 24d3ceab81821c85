//! The `vkae-engine` binary: inspect and generate on a fixture, JSON output, clear failures.

mod common;
use common::*;
use std::process::{Command, Output};

/// The binary under test: `VKAE_ENGINE_BIN` when set (a test binary run on another machine, e.g. the device
/// scripts), else the one cargo built beside this test.
fn engine() -> Command {
    Command::new(
        std::env::var_os("VKAE_ENGINE_BIN")
            .unwrap_or_else(|| env!("CARGO_BIN_EXE_vkae-engine").into()),
    )
}

/// `generate --json` on a fixture's transformers prompt for 32 new tokens on `device`, with `extra` arguments;
/// the reference too.
fn generate_reference(fixture: &str, device: &str, extra: &[&str]) -> (Reference, Output) {
    let r = reference(fixture);
    let ids: Vec<String> = r.prompt.iter().map(|t| t.to_string()).collect();
    let dir = fixture_dir(fixture);
    let out = engine()
        .args(["generate", dir.to_str().unwrap(), "--prompt-ids"])
        .arg(ids.join(","))
        .args(["--max-new", "32", "--device", device, "--json"])
        .args(extra)
        .output()
        .unwrap();
    (r, out)
}

#[test]
fn generate_json_gives_transformers_tokens() {
    let (r, out) = generate_reference("dense_style", "cpu", &["--batch", "2"]);
    let v = json_of(&out);
    let toks: Vec<Vec<u32>> = serde_json::from_value(v["tokens"].clone()).unwrap();
    assert_eq!(toks.len(), 2);
    assert_eq!(toks[0], r.greedy);
    assert_eq!(toks[1], r.greedy);
    assert!(v["tokens_per_s"].as_f64().unwrap() > 0.0);
}

#[test]
fn inspect_reports_counts() {
    let out = engine()
        .args(["inspect", "--synthetic", "e4b", "--json"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["stats"]["parameters"], 7_463_013_418u64);
    assert_eq!(v["kv_shared_layers"], 18);
    let out = engine()
        .args(["inspect", fixture_dir("e_style").to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("4 KV-shared"));
}

#[test]
fn bad_input_fails_with_a_message() {
    let dir = fixture_dir("e_style");
    let dense = fixture_dir("dense_style"); // has no tokenizer.json
    for (args, needle) in [
        (
            vec!["generate", dir.to_str().unwrap(), "--prompt-ids", "2,99999"],
            "outside the vocabulary",
        ),
        (
            vec!["generate", dir.to_str().unwrap(), "--prompt-ids", "2,x"],
            "not a token id",
        ),
        (
            vec!["generate", dense.to_str().unwrap(), "--prompt", "hello"],
            "tokenizer.json",
        ),
        (
            vec!["generate", "/nonexistent/model", "--prompt-ids", "2"],
            "/nonexistent/model",
        ),
        (vec!["inspect", "--synthetic", "e9b"], "unknown family"),
        (
            vec![
                "generate",
                dir.to_str().unwrap(),
                "--prompt-ids",
                "2",
                "--device",
                "tpu",
            ],
            "expected cpu, cuda or vkae",
        ),
        (
            vec![
                "qualify",
                "--model",
                dir.to_str().unwrap(),
                "--device",
                "vkae",
                "--baseline",
                "cpu-reference",
                "--lane-key",
                "/nonexistent/key",
                "--out",
                "/nonexistent/run.json",
            ],
            "qualify measures the generic and the VKAE path itself",
        ),
    ] {
        let out = engine().args(&args).output().unwrap();
        assert!(!out.status.success(), "{args:?} should fail");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(needle), "{args:?}: {err}");
    }
}

#[test]
fn text_prompts_use_the_checkpoints_tokenizer() {
    // e_style carries a small BPE tokenizer.json made with the Python tokenizers library, which encodes
    // "the quick GPU tests" as [2, 79, 120, 89, 104, 27] (BOS first).
    let dir = fixture_dir("e_style");
    let tok = vkae_engine::tokenizer::Tokenizer::from_dir(&dir).unwrap();
    assert_eq!(
        tok.encode("the quick GPU tests").unwrap(),
        vec![2, 79, 120, 89, 104, 27]
    );
    let out = engine()
        .args([
            "generate",
            dir.to_str().unwrap(),
            "--prompt",
            "the quick GPU tests",
            "--max-new",
            "5",
            "--json",
        ])
        .output()
        .unwrap();
    let v = json_of(&out);
    assert_eq!(v["prompt_len"], 6);
    assert_eq!(v["tokens"][0].as_array().unwrap().len(), 5);
}

/// `--device vkae` runs the VKAE kernel path: transformers' greedy tokens where a GPU is present, a message that
/// names what is missing where none is.
#[test]
fn generate_on_the_vkae_path_gives_transformers_tokens_or_says_why_not() {
    let (r, out) = generate_reference("e_style", "vkae", &[]);
    match vkae_engine::generic::available() {
        Err(why) => {
            eprintln!(
                "SKIPPED the GPU half of generate_on_the_vkae_path: no usable CUDA GPU ({why})"
            );
            assert!(
                !out.status.success(),
                "--device vkae without a GPU must fail"
            );
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(err.contains("CUDA") || err.contains("libcuda"), "{err}");
        }
        Ok(()) => {
            let v = json_of(&out);
            let toks: Vec<Vec<u32>> = serde_json::from_value(v["tokens"].clone()).unwrap();
            assert_eq!(toks[0], r.greedy);
        }
    }
}
