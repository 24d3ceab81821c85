//! What every backend's `generate` shares: the request and output types, packing prompts into one batch of
//! rows, EOS tracking during the decode loop, reading the token history back per sequence, EOS truncation.

use crate::config::TextConfig;
use crate::error::{EngineError, Result};

/// A greedy-generation request: one prompt per sequence of the batch.
#[derive(Clone, Debug)]
pub struct GenerateRequest {
    pub prompts: Vec<Vec<u32>>,
    pub max_new: usize,
    /// Stop a sequence at an EOS token (benchmarks keep this off so every sequence runs `max_new` steps).
    pub stop_at_eos: bool,
}

/// What generation produced and how fast.
#[derive(Clone, Debug, serde::Serialize)]
pub struct GenerateOutput {
    /// Generated ids per sequence (prompt excluded).
    pub tokens: Vec<Vec<u32>>,
    /// Prefill wall time (prompt -> first token), seconds.
    pub prefill_s: f64,
    /// Wall time of the decode steps after the first token, seconds.
    pub decode_s: f64,
    /// Decode steps timed (each yields one token per sequence).
    pub decode_steps: usize,
    /// Generated tokens per second over the timed decode steps, all sequences together.
    pub tokens_per_s: f64,
}

impl GenerateOutput {
    /// `timed_tokens` generated over `decode_s` seconds of decode steps.
    pub fn new(
        tokens: Vec<Vec<u32>>,
        prefill_s: f64,
        decode_s: f64,
        decode_steps: usize,
        timed_tokens: usize,
    ) -> Self {
        GenerateOutput {
            tokens,
            prefill_s,
            decode_s,
            decode_steps,
            tokens_per_s: if decode_s > 0.0 {
                timed_tokens as f64 / decode_s
            } else {
                0.0
            },
        }
    }
}

/// Prompts as one batch of rows: row `r` is token `ids[r]` of sequence `seq[r]` at position `pos[r]`;
/// `last[s]` is the row of sequence `s`'s last prompt token (whose logits give its first generated token).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PackedRows {
    pub ids: Vec<u32>,
    pub pos: Vec<i32>,
    pub seq: Vec<i32>,
    pub last: Vec<usize>,
}

impl PackedRows {
    /// Prompt `s` becomes sequence `s`, from position 0.
    pub fn prompts(prompts: &[Vec<u32>]) -> Self {
        let mut rows = PackedRows::default();
        for (s, p) in prompts.iter().enumerate() {
            rows.push(s, 0, p);
        }
        rows
    }

    /// Appends `ids` as sequence `seq` from position `start`.
    pub fn push(&mut self, seq: usize, start: usize, ids: &[u32]) {
        for (i, &t) in ids.iter().enumerate() {
            self.ids.push(t);
            self.pos.push((start + i) as i32);
            self.seq.push(seq as i32);
        }
        self.last.push(self.ids.len() - 1);
    }

    pub fn len(&self) -> usize {
        self.ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }
}

/// Which sequences of a batch have produced an EOS token so far.
pub struct EosTracker {
    eos: Vec<u32>,
    done: Vec<bool>,
}

impl EosTracker {
    pub fn new(config: &TextConfig, batch: usize) -> Self {
        EosTracker {
            eos: config.eos_token_ids.clone(),
            done: vec![false; batch],
        }
    }

    /// Takes one generated token per sequence; true once every sequence has produced an EOS.
    pub fn observe(&mut self, row: &[u32]) -> bool {
        for (d, t) in self.done.iter_mut().zip(row) {
            *d |= self.eos.contains(t);
        }
        self.done.iter().all(|&d| d)
    }

    /// [`EosTracker::observe`] on row `step - 1` of a step-major token history kept on the GPU (`batch` tokens
    /// a row): true once every sequence has produced an EOS.
    pub fn observe_on_device(
        &mut self,
        gpu: &vkae_kernels::Gpu,
        history: &vkae_kernels::CudaSlice<u32>,
        step: usize,
        batch: usize,
    ) -> Result<bool> {
        let row = gpu.download(&history.slice((step - 1) * batch..step * batch))?;
        Ok(self.observe(&row))
    }
}

/// Splits a step-major history (`[steps, batch]`: row `i` holds every sequence's `i`-th token) into one
/// token list per sequence, keeping the first `produced` rows.
pub fn tokens_per_sequence(history: &[u32], batch: usize, produced: usize) -> Vec<Vec<u32>> {
    (0..batch)
        .map(|s| (0..produced).map(|i| history[i * batch + s]).collect())
        .collect()
}

/// Cuts each sequence after its first EOS token (kept).
pub fn truncate_at_eos(tokens: &mut [Vec<u32>], eos: &[u32]) {
    for t in tokens.iter_mut() {
        if let Some(p) = t.iter().position(|x| eos.contains(x)) {
            t.truncate(p + 1);
        }
    }
}

/// What a batched decode loop produced: `history` step-major (`[steps + 1, batch]`: the prefill's token,
/// then one row per timed decode step), cut after each sequence's first EOS when the request asks.
pub fn batched_output(
    req: &GenerateRequest,
    config: &TextConfig,
    history: &[u32],
    steps: usize,
    prefill_s: f64,
    decode_s: f64,
) -> GenerateOutput {
    let b = req.prompts.len();
    let mut tokens = tokens_per_sequence(history, b, steps + 1);
    if req.stop_at_eos {
        truncate_at_eos(&mut tokens, &config.eos_token_ids);
    }
    GenerateOutput::new(tokens, prefill_s, decode_s, steps, steps * b)
}

/// Every prompt non-empty and inside the vocabulary.
pub fn validate_prompts(cfg: &TextConfig, prompts: &[Vec<u32>]) -> Result<()> {
    if prompts.is_empty() {
        return Err(EngineError::Input("no prompt given".into()));
    }
    for (i, p) in prompts.iter().enumerate() {
        if p.is_empty() {
            return Err(EngineError::Input(format!("prompt {i} is empty")));
        }
        check_vocab(cfg, p).map_err(|e| EngineError::Input(format!("prompt {i}: {e}")))?;
    }
    Ok(())
}

/// The first id outside the vocabulary, as a message.
pub(crate) fn check_vocab(cfg: &TextConfig, ids: &[u32]) -> std::result::Result<(), String> {
    match ids.iter().find(|&&t| t as usize >= cfg.vocab_size) {
        Some(bad) => Err(format!(
            "token id {bad} is outside the vocabulary (size {})",
            cfg.vocab_size
        )),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packing_numbers_rows_by_sequence_and_position() {
        let rows = PackedRows::prompts(&[vec![5, 6, 7], vec![9]]);
        assert_eq!(rows.ids, vec![5, 6, 7, 9]);
        assert_eq!(rows.pos, vec![0, 1, 2, 0]);
        assert_eq!(rows.seq, vec![0, 0, 0, 1]);
        assert_eq!(rows.last, vec![2, 3]);
        let mut chunk = PackedRows::default();
        chunk.push(4, 10, &[1, 2]);
        assert_eq!(
            (chunk.pos, chunk.seq, chunk.last),
            (vec![10, 11], vec![4, 4], vec![1])
        );
    }

    #[test]
    fn history_splits_per_sequence_and_truncates_after_eos() {
        // Two sequences, three steps.
        let mut t = tokens_per_sequence(&[1, 2, 3, 4, 5, 6], 2, 3);
        assert_eq!(t, vec![vec![1, 3, 5], vec![2, 4, 6]]);
        assert_eq!(
            tokens_per_sequence(&[1, 2, 3, 4, 5, 6], 2, 2)[1],
            vec![2, 4]
        );
        truncate_at_eos(&mut t, &[3]);
        assert_eq!(t, vec![vec![1, 3], vec![2, 4, 6]]);
    }

    #[test]
    fn tokens_per_second_counts_timed_tokens_only() {
        let o = GenerateOutput::new(vec![vec![1, 2]], 0.5, 2.0, 1, 4);
        assert_eq!(o.tokens_per_s, 2.0);
        assert_eq!(
            GenerateOutput::new(vec![], 0.0, 0.0, 0, 0).tokens_per_s,
            0.0
        );
    }
}
