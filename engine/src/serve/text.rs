//! What a served model knows about text: its tokenizer, its chat template and the ids that end a generation.
//! A checkpoint without `tokenizer.json` (or a synthetic model) serves token-id prompts only.

use std::path::Path;

use serde_json::Value;

use super::chat::{ChatTemplate, TokenizerConfig};
use crate::config::TextConfig;
use crate::error::{EngineError, Result};
use crate::tokenizer::Tokenizer;

pub struct TextModel {
    pub tokenizer: Option<Tokenizer>,
    pub chat: Option<ChatTemplate>,
    /// Generation stops after any of these: the config's EOS ids, `generation_config.json`'s and the
    /// tokenizer config's `eos_token` (Gemma's `<end_of_turn>`).
    pub stop_ids: Vec<u32>,
}

impl TextModel {
    /// The text side of a checkpoint folder, or of a model without one (`None`: synthetic weights).
    pub fn load(dir: Option<&Path>, config: &TextConfig) -> Result<Self> {
        let mut stop_ids = config.eos_token_ids.clone();
        let Some(dir) = dir else {
            return Ok(TextModel {
                tokenizer: None,
                chat: None,
                stop_ids,
            });
        };
        stop_ids.extend(generation_eos_ids(&dir.join("generation_config.json"))?);
        let file = dir.join("tokenizer.json");
        let tokenizer = if file.exists() {
            Some(Tokenizer::from_file(&file)?)
        } else {
            None
        };
        let tc = TokenizerConfig::load(&dir.join("tokenizer_config.json"))?;
        let chat = match (&tokenizer, &tc.chat_template) {
            (Some(_), Some(src)) => Some(ChatTemplate::new(
                src,
                tc.bos_token.as_deref().unwrap_or(""),
                tc.eos_token.as_deref().unwrap_or(""),
            )?),
            _ => None,
        };
        if let (Some(t), Some(eos)) = (&tokenizer, &tc.eos_token) {
            stop_ids.extend(t.token_id(eos));
        }
        stop_ids.sort_unstable();
        stop_ids.dedup();
        Ok(TextModel {
            tokenizer,
            chat,
            stop_ids,
        })
    }

    /// Token ids of a text prompt, BOS added as transformers does; the error says why text cannot be served.
    pub fn encode_prompt(&self, text: &str) -> std::result::Result<Vec<u32>, String> {
        let t = self.tokenizer.as_ref().ok_or(NO_TOKENIZER)?;
        t.encode_with(text, true).map_err(|e| e.to_string())
    }

    /// Token ids of a chat: the template's text (which carries its own BOS) encoded without special tokens.
    pub fn chat_prompt(&self, messages: &[Value]) -> std::result::Result<Vec<u32>, String> {
        let t = self.tokenizer.as_ref().ok_or(NO_TOKENIZER)?;
        let chat = self.chat.as_ref().ok_or(
            "this model has no chat template (no chat_template in tokenizer_config.json): use /v1/completions",
        )?;
        let text = chat
            .render(messages)
            .map_err(|e| format!("chat template: {e}"))?;
        t.encode_with(&text, false).map_err(|e| e.to_string())
    }
}

const NO_TOKENIZER: &str =
    "this model has no tokenizer (no tokenizer.json beside the checkpoint): send the prompt as an array of token ids";

fn generation_eos_ids(path: &Path) -> Result<Vec<u32>> {
    if !path.exists() {
        return Ok(vec![]);
    }
    let v: Value = serde_json::from_str(&std::fs::read_to_string(path)?)
        .map_err(|e| EngineError::Input(format!("{}: {e}", path.display())))?;
    Ok(match &v["eos_token_id"] {
        Value::Number(n) => n.as_u64().map(|n| n as u32).into_iter().collect(),
        Value::Array(a) => a
            .iter()
            .filter_map(|n| n.as_u64())
            .map(|n| n as u32)
            .collect(),
        _ => vec![],
    })
}
