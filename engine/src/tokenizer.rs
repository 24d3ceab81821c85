//! Text in and out: `tokenizer.json` beside the checkpoint, read with the `tokenizers` crate, and an
//! incremental decoder for streaming.
//!
//! Special tokens follow transformers: a plain prompt is encoded with the tokenizer's post-processor (Gemma's
//! adds `<bos>`); a prompt rendered from a chat template already starts with the template's `{{ bos_token }}`
//! and is encoded without it. Generated text skips special tokens.

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
        Self::from_file(&f)
    }

    pub fn from_file(f: &Path) -> Result<Self> {
        tokenizers::Tokenizer::from_file(f)
            .map(Tokenizer)
            .map_err(|e| EngineError::Input(format!("{}: {e}", f.display())))
    }

    /// Token ids of `text`, with the tokenizer's special tokens (BOS) added.
    pub fn encode(&self, text: &str) -> Result<Vec<u32>> {
        self.encode_with(text, true)
    }

    /// Token ids of `text`; `add_special_tokens` runs the post-processor (BOS) as transformers'
    /// `add_special_tokens` does.
    pub fn encode_with(&self, text: &str, add_special_tokens: bool) -> Result<Vec<u32>> {
        self.0
            .encode(text, add_special_tokens)
            .map(|e| e.get_ids().to_vec())
            .map_err(|e| EngineError::Input(format!("tokenizing the prompt: {e}")))
    }

    /// Text of `ids`, special tokens included.
    pub fn decode(&self, ids: &[u32]) -> Result<String> {
        self.decode_with(ids, false)
    }

    pub fn decode_with(&self, ids: &[u32], skip_special_tokens: bool) -> Result<String> {
        self.0
            .decode(ids, skip_special_tokens)
            .map_err(|e| EngineError::Input(format!("detokenizing: {e}")))
    }

    /// The id of a token written out (`<end_of_turn>`), if the vocabulary has it.
    pub fn token_id(&self, token: &str) -> Option<u32> {
        self.0.token_to_id(token)
    }

    /// Tokens in the vocabulary, added tokens included.
    pub fn vocab_size(&self) -> usize {
        self.0.get_vocab_size(true)
    }
}

/// Turns generated ids into text piece by piece, never splitting a UTF-8 character: byte-fallback tokens that
/// end inside a character are held back until the character completes. Special tokens are skipped.
///
/// Each piece is the difference between the decoding of a short window of recent ids with and without the new
/// ones, so decoders that treat a sequence's first token differently (a stripped leading space) still give
/// pieces that add up to the decoding of the whole sequence.
#[derive(Default)]
pub struct StreamDecoder {
    ids: Vec<u32>,
    /// Start of the window decoded as context.
    prefix: usize,
    /// Ids before this one have been turned into text.
    read: usize,
}

impl StreamDecoder {
    /// Adds one generated id; returns the text it completes (possibly empty).
    pub fn push(&mut self, tokenizer: &Tokenizer, id: u32) -> Result<String> {
        self.ids.push(id);
        let (before, after) = self.window(tokenizer)?;
        if after.len() > before.len() && !after.ends_with('\u{FFFD}') {
            let piece = after[before.len()..].to_string();
            self.prefix = self.read;
            self.read = self.ids.len();
            Ok(piece)
        } else {
            Ok(String::new())
        }
    }

    /// The text still held back (an incomplete character at the end becomes U+FFFD, as a full decode gives).
    pub fn finish(&mut self, tokenizer: &Tokenizer) -> Result<String> {
        let (before, after) = self.window(tokenizer)?;
        self.prefix = self.read;
        self.read = self.ids.len();
        Ok(after[before.len().min(after.len())..].to_string())
    }

    /// The window's text without and with the unread ids. Where the unread ids change the text already
    /// given out (a stray byte joining the byte-fallback group before it), they are decoded on their own.
    fn window(&mut self, tokenizer: &Tokenizer) -> Result<(String, String)> {
        let before = tokenizer.decode_with(&self.ids[self.prefix..self.read], true)?;
        let after = tokenizer.decode_with(&self.ids[self.prefix..], true)?;
        if after.starts_with(&before) {
            return Ok((before, after));
        }
        self.prefix = self.read;
        Ok((
            String::new(),
            tokenizer.decode_with(&self.ids[self.read..], true)?,
        ))
    }
}
