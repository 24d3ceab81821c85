//! Text prompts: `tokenizer.json` beside the checkpoint, read with the `tokenizers` crate.

use std::path::Path;

use crate::error::{EngineError, Result};

pub struct Tokenizer(tokenizers::Tokenizer);

impl Tokenizer {
    /// Loads `dir/tokenizer.json`.
    pub fn from_dir(dir: &Path) -> Result<Self> {
        let f = dir.join("tokenizer.json");
        if !f.exists() {
            return Err(EngineError::Input(format!(
                "{} has no tokenizer.json: pass --prompt-ids instead of --prompt",
                dir.display()
            )));
        }
        tokenizers::Tokenizer::from_file(&f)
            .map(Tokenizer)
            .map_err(|e| EngineError::Input(format!("{}: {e}", f.display())))
    }

    /// Token ids of `text`, with the tokenizer's special tokens (BOS) added.
    pub fn encode(&self, text: &str) -> Result<Vec<u32>> {
        self.0
            .encode(text, true)
            .map(|e| e.get_ids().to_vec())
            .map_err(|e| EngineError::Input(format!("tokenizing the prompt: {e}")))
    }

    pub fn decode(&self, ids: &[u32]) -> Result<String> {
        self.0
            .decode(ids, false)
            .map_err(|e| EngineError::Input(format!("detokenizing: {e}")))
    }
}
