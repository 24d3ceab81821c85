//! The decode scaffold every backend shares, and the iteration-level slot API a serving scheduler drives.
//!
//! [`pack`] holds what `generate` shares on every path (request/output types, prompt packing, EOS tracking,
//! history per sequence). The rest of this module is the slot API, the contract for continuous batching:
//!
//! - [`Engine::session`](crate::Engine::session) opens a [`Session`] of [`SessionSettings::max_slots`] slots,
//!   each with room for [`SessionSettings::capacity`] positions (prompt plus generated tokens). The KV memory
//!   for all slots is reserved when the session opens; nothing grows later.
//! - [`Session::admit`]`(slot, prompt, want_logits)` prefills a prompt into a free slot, in chunks of at most
//!   [`SessionSettings::prefill_chunk`] tokens, and returns the greedy next token (and, when asked, that
//!   row's soft-capped logits). Other slots keep their state. A scheduler that interleaves prefill with
//!   decode steps calls [`Session::open`] and then [`Session::prefill`] once per chunk instead, or
//!   [`Session::prefill_many`] to run chunks of several slots in one call.
//! - [`Session::step`]`(&[StepInput])` runs one decode step over any subset of active slots in any order:
//!   each input token goes to its slot at the slot's next position, and the results come back in the input's
//!   order, each with its greedy next token and, for inputs with `want_logits`, that row's soft-capped logits
//!   (`[vocab]`, for sampling).
//! - [`Session::release`]`(slot)` frees a slot for the next [`Session::admit`].
//!
//! Errors are [`EngineError::Input`] with a message naming the slot: a slot out of range, admitting into a
//! busy slot, prefilling or stepping a free slot, a slot twice in one step, an empty prompt or step, a token
//! outside the vocabulary, more positions than the capacity. A rejected call changes no slot.
//!
//! A slot's tokens do not depend on what the other slots hold: each row reads only its own sequence's KV
//! rows. On the GPU paths the projection kernels may differ with the number of rows in a step (a different
//! reduction order), so tokens can differ from a run alone only where the top two logits nearly tie.
//! How each backend runs a step: the CPU path runs the slots one after another; the generic path runs the
//! step's rows as one batch through its one-op-per-launch forward; the VKAE path replays one captured CUDA
//! graph per step size (the rows' ids, positions and sequence ids are uploaded into that graph's fixed
//! buffers first), or issues the same launches eagerly when graphs are off.

pub mod cpu;
pub mod pack;

use crate::config::TextConfig;
use crate::error::{EngineError, Result};

pub use pack::{GenerateOutput, GenerateRequest};

/// How many slots a session has and how long each may grow.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SessionSettings {
    /// Slots (the largest batch a step may run).
    pub max_slots: usize,
    /// Positions per slot: prompt plus generated tokens.
    pub capacity: usize,
    /// The most prompt tokens one prefill call of [`Session::admit`] runs at once.
    pub prefill_chunk: usize,
}

impl SessionSettings {
    /// Checks the settings against the model: at least one slot, a positive capacity and chunk, and a
    /// capacity within the model's context.
    pub fn new(
        config: &TextConfig,
        max_slots: usize,
        capacity: usize,
        prefill_chunk: usize,
    ) -> Result<Self> {
        if max_slots == 0 {
            return Err(EngineError::Input(
                "a session needs at least one slot".into(),
            ));
        }
        if capacity == 0 || prefill_chunk == 0 {
            return Err(EngineError::Input(format!(
                "slot capacity ({capacity}) and prefill chunk ({prefill_chunk}) must be positive"
            )));
        }
        if capacity > config.max_position_embeddings {
            return Err(EngineError::Input(format!(
                "slot capacity {capacity} is beyond the model's context ({})",
                config.max_position_embeddings
            )));
        }
        Ok(SessionSettings {
            max_slots,
            capacity,
            prefill_chunk,
        })
    }
}

/// One slot's input to a decode step.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StepInput {
    pub slot: usize,
    /// The token fed at the slot's next position (usually the one the last call returned).
    pub token: u32,
    /// Return this row's soft-capped logits too.
    pub want_logits: bool,
}

/// One slot's part of a [`Session::prefill_many`] call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PrefillInput<'a> {
    pub slot: usize,
    /// Appended at the slot's next positions.
    pub ids: &'a [u32],
    /// Return the soft-capped logits after the last id too.
    pub want_logits: bool,
}

/// What one row produced: the greedy next token, and the soft-capped logits when asked for.
#[derive(Clone, Debug, PartialEq)]
pub struct RowOutput {
    pub slot: usize,
    pub token: u32,
    pub logits: Option<Vec<f32>>,
}

/// One row a backend runs: `token` of sequence `slot` at position `pos`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Row {
    pub slot: usize,
    pub pos: usize,
    pub token: u32,
    pub want_logits: bool,
}

/// One backend row's result: the greedy next token, and the soft-capped logits when asked for.
pub(crate) type RowResult = (u32, Option<Vec<f32>>);

/// A prefill call for a backend: `ids` as sequence `slot` from position `start` (the earlier positions are
/// in its KV rows); the greedy token after the last one is wanted, with its logits when `want_logits`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Chunk<'a> {
    pub slot: usize,
    pub start: usize,
    pub ids: &'a [u32],
    pub want_logits: bool,
}

/// What a backend implements for the slot API; [`Session`] has checked every argument first (slot in range
/// and active, positions within the capacity, ids in the vocabulary, no slot twice in a step).
pub(crate) trait SlotBackend {
    fn prefill(&mut self, chunk: Chunk<'_>) -> Result<RowResult>;

    /// Several slots' chunks (distinct slots) in one call; one result per chunk, in order. A backend that
    /// can pack them into one forward pass overrides this.
    fn prefill_packed(&mut self, chunks: &[Chunk<'_>]) -> Result<Vec<RowResult>> {
        chunks.iter().map(|c| self.prefill(*c)).collect()
    }

    /// One decode step over `rows`; one result per row, in order.
    fn step(&mut self, rows: &[Row]) -> Result<Vec<RowResult>>;

    /// Forgets the slot's state (its KV rows are overwritten by the next sequence).
    fn release(&mut self, slot: usize);
}

/// A backend's slots for continuous batching (see the module doc for the contract).
pub struct Session<'e> {
    settings: SessionSettings,
    config: TextConfig,
    /// Positions filled per slot; `None` for a free slot.
    filled: Vec<Option<usize>>,
    backend: Box<dyn SlotBackend + 'e>,
}

impl<'e> Session<'e> {
    pub(crate) fn new(
        settings: SessionSettings,
        config: TextConfig,
        backend: Box<dyn SlotBackend + 'e>,
    ) -> Self {
        Session {
            filled: vec![None; settings.max_slots],
            settings,
            config,
            backend,
        }
    }

    pub fn settings(&self) -> SessionSettings {
        self.settings
    }

    /// The lowest free slot, if any.
    pub fn free_slot(&self) -> Option<usize> {
        self.filled.iter().position(|f| f.is_none())
    }

    /// Slots in use, ascending.
    pub fn active_slots(&self) -> Vec<usize> {
        (0..self.filled.len())
            .filter(|&s| self.filled[s].is_some())
            .collect()
    }

    /// Positions a slot holds (prompt and fed tokens), or `None` when the slot is free.
    pub fn filled(&self, slot: usize) -> Option<usize> {
        self.filled.get(slot).copied().flatten()
    }

    /// Claims a free slot with an empty context (then [`Session::prefill`] it chunk by chunk).
    pub fn open(&mut self, slot: usize) -> Result<()> {
        self.check_range(slot)?;
        if self.filled[slot].is_some() {
            return Err(EngineError::Input(format!("slot {slot} is already in use")));
        }
        self.filled[slot] = Some(0);
        Ok(())
    }

    /// Appends `ids` to an open slot's context in one prefill call and returns the greedy next token (with
    /// its soft-capped logits when `want_logits`).
    pub fn prefill(&mut self, slot: usize, ids: &[u32], want_logits: bool) -> Result<RowOutput> {
        let mut out = self.prefill_many(&[PrefillInput {
            slot,
            ids,
            want_logits,
        }])?;
        Ok(out.remove(0))
    }

    /// Appends each input's `ids` to its open slot's context, all in one prefill call (the VKAE path packs
    /// them into one forward pass), and returns each slot's greedy next token in the inputs' order. The slots
    /// must be distinct; a rejected call changes no slot.
    pub fn prefill_many(&mut self, inputs: &[PrefillInput<'_>]) -> Result<Vec<RowOutput>> {
        if inputs.is_empty() {
            return Err(EngineError::Input(
                "a prefill needs at least one slot".into(),
            ));
        }
        let mut seen = vec![false; self.settings.max_slots];
        let mut chunks = Vec::with_capacity(inputs.len());
        for i in inputs {
            let (slot, ids) = (i.slot, i.ids);
            let start = self.active(slot)?;
            if std::mem::replace(&mut seen[slot], true) {
                return Err(EngineError::Input(format!(
                    "slot {slot} appears twice in one prefill"
                )));
            }
            if ids.is_empty() {
                return Err(EngineError::Input(format!(
                    "slot {slot}: nothing to prefill"
                )));
            }
            pack::check_vocab(&self.config, ids)
                .map_err(|e| EngineError::Input(format!("slot {slot}: {e}")))?;
            self.check_room(slot, start, ids.len())?;
            chunks.push(Chunk {
                slot,
                start,
                ids,
                want_logits: i.want_logits,
            });
        }
        let results = self.backend.prefill_packed(&chunks)?;
        Ok(chunks
            .iter()
            .zip(results)
            .map(|(c, (token, logits))| {
                self.filled[c.slot] = Some(c.start + c.ids.len());
                RowOutput {
                    slot: c.slot,
                    token,
                    logits,
                }
            })
            .collect())
    }

    /// Opens a free slot and prefills `prompt` into it in chunks of at most `prefill_chunk` tokens; returns
    /// the greedy first generated token. On an error the slot is free again.
    pub fn admit(&mut self, slot: usize, prompt: &[u32], want_logits: bool) -> Result<RowOutput> {
        if prompt.is_empty() {
            return Err(EngineError::Input(format!(
                "slot {slot}: the prompt is empty"
            )));
        }
        self.check_range(slot)?;
        pack::check_vocab(&self.config, prompt)
            .map_err(|e| EngineError::Input(format!("slot {slot}: {e}")))?;
        self.check_room(slot, 0, prompt.len())?;
        self.open(slot)?;
        let mut out = None;
        for chunk in prompt.chunks(self.settings.prefill_chunk) {
            match self.prefill(slot, chunk, want_logits) {
                Ok(o) => out = Some(o),
                Err(e) => {
                    self.release(slot);
                    return Err(e);
                }
            }
        }
        Ok(out.expect("a non-empty prompt has a chunk"))
    }

    /// One decode step over the given slots (any subset of the active ones, any order); outputs in the
    /// inputs' order.
    pub fn step(&mut self, inputs: &[StepInput]) -> Result<Vec<RowOutput>> {
        if inputs.is_empty() {
            return Err(EngineError::Input("a step needs at least one slot".into()));
        }
        let mut seen = vec![false; self.settings.max_slots];
        let mut rows = Vec::with_capacity(inputs.len());
        for i in inputs {
            let pos = self.active(i.slot)?;
            if std::mem::replace(&mut seen[i.slot], true) {
                return Err(EngineError::Input(format!(
                    "slot {} appears twice in one step",
                    i.slot
                )));
            }
            pack::check_vocab(&self.config, &[i.token])
                .map_err(|e| EngineError::Input(format!("slot {}: {e}", i.slot)))?;
            self.check_room(i.slot, pos, 1)?;
            rows.push(Row {
                slot: i.slot,
                pos,
                token: i.token,
                want_logits: i.want_logits,
            });
        }
        let out = self.backend.step(&rows)?;
        Ok(rows
            .iter()
            .zip(out)
            .map(|(r, (token, logits))| {
                self.filled[r.slot] = Some(r.pos + 1);
                RowOutput {
                    slot: r.slot,
                    token,
                    logits,
                }
            })
            .collect())
    }

    /// Frees a slot (a free slot stays free).
    pub fn release(&mut self, slot: usize) {
        if let Some(f) = self.filled.get_mut(slot) {
            if f.take().is_some() {
                self.backend.release(slot);
            }
        }
    }

    fn check_range(&self, slot: usize) -> Result<()> {
        if slot >= self.settings.max_slots {
            return Err(EngineError::Input(format!(
                "slot {slot} is out of range (the session has {} slots)",
                self.settings.max_slots
            )));
        }
        Ok(())
    }

    fn active(&self, slot: usize) -> Result<usize> {
        self.check_range(slot)?;
        self.filled[slot].ok_or_else(|| {
            EngineError::Input(format!("slot {slot} is not in use (admit it first)"))
        })
    }

    fn check_room(&self, slot: usize, filled: usize, more: usize) -> Result<()> {
        if filled + more > self.settings.capacity {
            return Err(EngineError::Input(format!(
                "slot {slot}: {filled} + {more} positions exceed the slot capacity {}",
                self.settings.capacity
            )));
        }
        Ok(())
    }
}
