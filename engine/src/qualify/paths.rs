//! A measured path as the interleaving loop sees it: something that runs one repetition at a batch size and
//! says its decode rate, the tokens it generated and sequence 0. The engine's paths run in this process; the
//! transformers paths are long-lived children (`child::Session`).

use std::time::Duration;

use anyhow::{anyhow, bail, Result};
use serde_json::json;

use super::child::Session;
use crate::{GenerateOutput, GenerateRequest};

/// Path names as they appear in records.
pub const HF_EAGER: &str = "hf-transformers-eager";
pub const HF_STATIC_CUDAGRAPH: &str = "hf-transformers-static-cudagraph";
pub const CPU_REFERENCE: &str = "cpu-reference";
pub const ENGINE_GENERIC: &str = "vkae-engine-generic";
pub const VKAE: &str = "vkae";

/// Tokens in the generated sequences of one repetition (prompt excluded), as returned.
pub fn count_generated(sequences: &[Vec<u32>]) -> u64 {
    sequences.iter().map(|s| s.len() as u64).sum()
}

/// One repetition's result.
#[derive(Clone, Debug, PartialEq)]
pub struct Rep {
    /// None where the measurement is void (transformers: time(N new) <= time(1 new)): measured again.
    pub tokens_per_s: Option<f64>,
    /// Counted from the sequences that came back.
    pub tokens_generated: u64,
    pub seq0: Option<Vec<u32>>,
}

/// A path the harness can time one repetition at a time.
pub trait DecodePath {
    /// The path's name in records.
    fn name(&self) -> &str;
    /// One greedy generation of `batch` copies of the prompt; `label` ("warm-up 2", "repetition 3") names it in
    /// the child's timing lines.
    fn rep(&mut self, batch: usize, label: &str) -> Result<Rep>;
}

pub type Generate<'a> = Box<dyn FnMut(&GenerateRequest) -> crate::Result<GenerateOutput> + 'a>;

/// An engine path (generic, kernel, CPU reference) in this process.
pub struct EnginePath<'a> {
    name: &'static str,
    generate: Generate<'a>,
    prompt: Vec<u32>,
    output_tokens: usize,
}

impl<'a> EnginePath<'a> {
    pub fn new(
        name: &'static str,
        generate: Generate<'a>,
        prompt: &[u32],
        output_tokens: usize,
    ) -> Self {
        EnginePath {
            name,
            generate,
            prompt: prompt.to_vec(),
            output_tokens,
        }
    }
}

impl DecodePath for EnginePath<'_> {
    fn name(&self) -> &str {
        self.name
    }

    fn rep(&mut self, batch: usize, _label: &str) -> Result<Rep> {
        let req = GenerateRequest {
            prompts: vec![self.prompt.clone(); batch],
            max_new: self.output_tokens,
            stop_at_eos: false,
        };
        let out = (self.generate)(&req)?;
        if !(out.tokens_per_s.is_finite() && out.tokens_per_s > 0.0) {
            bail!(
                "{} batch {batch}: the decode rate came back as {} (decode took {} s)",
                self.name,
                out.tokens_per_s,
                out.decode_s
            );
        }
        Ok(Rep {
            tokens_per_s: Some(out.tokens_per_s),
            tokens_generated: count_generated(&out.tokens),
            seq0: out.tokens.first().cloned(),
        })
    }
}

/// A transformers path in a long-lived child: each repetition is one `rep` command.
pub struct ChildPath {
    name: &'static str,
    pub session: Session,
    /// Time limit of one answer.
    pub limit: Duration,
    /// What the child says it runs (`impl` of its load answer).
    pub implementation: String,
}

impl ChildPath {
    pub fn new(name: &'static str, session: Session, limit: Duration) -> Self {
        let implementation = session.ready["impl"].as_str().unwrap_or(name).to_string();
        ChildPath {
            name,
            session,
            limit,
            implementation,
        }
    }

    /// One command; a refused command (`"ok": false`) or a child that is gone is an error naming why.
    pub fn ask(&mut self, command: serde_json::Value) -> Result<serde_json::Value> {
        let answer = self
            .session
            .request(&command, self.limit)
            .map_err(|e| anyhow!("{e}"))?;
        if answer["ok"] != true {
            bail!(
                "{}",
                answer["error"].as_str().unwrap_or("refused the command")
            );
        }
        Ok(answer)
    }
}

impl DecodePath for ChildPath {
    fn name(&self) -> &str {
        self.name
    }

    fn rep(&mut self, batch: usize, label: &str) -> Result<Rep> {
        let a = self.ask(json!({"op": "rep", "batch": batch, "label": label}))?;
        let seq0: Option<Vec<u32>> = serde_json::from_value(a["seq0"].clone()).ok();
        Ok(Rep {
            tokens_per_s: a["rate"].as_f64().filter(|r| r.is_finite() && *r > 0.0),
            tokens_generated: a["tokens_generated"]
                .as_u64()
                .ok_or_else(|| anyhow!("{}: the answer has no tokens_generated: {a}", self.name))?,
            seq0,
        })
    }
}
