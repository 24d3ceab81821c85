//! The slot API on the CPU reference: one [`CpuSession`] per slot, run one after another.

use super::{Chunk, Row, RowResult, SlotBackend};
use crate::cpu::{argmax, CpuSession};
use crate::error::Result;
use crate::weights::Model;

pub(crate) struct CpuSlots<'m> {
    model: &'m Model,
    slots: Vec<Option<CpuSession<'m>>>,
}

impl<'m> CpuSlots<'m> {
    pub(crate) fn new(model: &'m Model, max_slots: usize) -> Self {
        CpuSlots {
            model,
            slots: (0..max_slots).map(|_| None).collect(),
        }
    }

    fn run(&mut self, slot: usize, ids: &[u32], want_logits: bool) -> RowResult {
        let model = self.model;
        let s = self.slots[slot].get_or_insert_with(|| CpuSession::new(model));
        let logits = s.forward(ids, false);
        (argmax(&logits), want_logits.then_some(logits))
    }
}

impl SlotBackend for CpuSlots<'_> {
    fn prefill(&mut self, c: Chunk<'_>) -> Result<RowResult> {
        debug_assert_eq!(self.slots[c.slot].as_ref().map_or(0, |s| s.pos), c.start);
        Ok(self.run(c.slot, c.ids, c.want_logits))
    }

    fn step(&mut self, rows: &[Row]) -> Result<Vec<RowResult>> {
        Ok(rows
            .iter()
            .map(|r| self.run(r.slot, &[r.token], r.want_logits))
            .collect())
    }

    fn release(&mut self, slot: usize) {
        self.slots[slot] = None;
    }
}
