//! The slot API on the CPU reference: one [`CpuSession`] per slot, run one after another.

use super::{Row, SlotBackend};
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

    fn run(&mut self, slot: usize, ids: &[u32], want_logits: bool) -> (u32, Option<Vec<f32>>) {
        let model = self.model;
        let s = self.slots[slot].get_or_insert_with(|| CpuSession::new(model));
        let logits = s.forward(ids, false);
        (argmax(&logits), want_logits.then_some(logits))
    }
}

impl SlotBackend for CpuSlots<'_> {
    fn prefill(
        &mut self,
        slot: usize,
        start: usize,
        ids: &[u32],
        want_logits: bool,
    ) -> Result<(u32, Option<Vec<f32>>)> {
        debug_assert_eq!(self.slots[slot].as_ref().map_or(0, |s| s.pos), start);
        Ok(self.run(slot, ids, want_logits))
    }

    fn step(&mut self, rows: &[Row]) -> Result<Vec<(u32, Option<Vec<f32>>)>> {
        Ok(rows
            .iter()
            .map(|r| self.run(r.slot, &[r.token], r.want_logits))
            .collect())
    }

    fn release(&mut self, slot: usize) {
        self.slots[slot] = None;
    }
}
