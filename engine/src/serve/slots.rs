//! The engine side the scheduler drives: a fixed set of slots, each one sequence with its own KV rows.

use crate::error::Result;

/// One slot's input to a decode step.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SlotStep {
    pub slot: usize,
    pub token: u32,
    pub want_logits: bool,
}

/// The greedy next token of a row, and its soft-capped logits when asked for.
#[derive(Clone, Debug, PartialEq)]
pub struct SlotOutput {
    pub token: u32,
    pub logits: Option<Vec<f32>>,
}

pub trait Slots {
    /// Claims a free slot with an empty context.
    fn open(&mut self, slot: usize) -> Result<()>;
    /// Appends prompt ids to an open slot; returns the greedy token after the last one.
    fn prefill(&mut self, slot: usize, ids: &[u32], want_logits: bool) -> Result<SlotOutput>;
    /// One decode step over the given slots; one output per input, in order.
    fn step(&mut self, inputs: &[SlotStep]) -> Result<Vec<SlotOutput>>;
    fn release(&mut self, slot: usize);
}
