//! The slot API on the generic path: one KV cache of `max_slots x capacity`, each row addressed by its slot
//! as sequence id; a prefill chunk or a decode step is one eager forward over its rows.

use super::GenericModel;
use crate::device::download_rows;
use crate::device::LayerKv;
use crate::error::Result;
use crate::session::pack::PackedRows;
use crate::session::{Chunk, Row, RowResult, SessionSettings, SlotBackend};

pub(crate) struct GenericSlots<'g> {
    model: &'g mut GenericModel,
    kv: Vec<Option<LayerKv>>,
}

impl<'g> GenericSlots<'g> {
    pub(crate) fn new(model: &'g mut GenericModel, settings: SessionSettings) -> Result<Self> {
        let kv = model.new_kv(settings.max_slots, settings.capacity)?;
        Ok(GenericSlots { model, kv })
    }

    /// Runs the packed rows, greedy ids of the rows `select` (every row when `None`) on the device, then
    /// downloads those ids and the logits of the selected rows that `want` marks.
    fn run(
        &mut self,
        rows: &PackedRows,
        select: Option<&[usize]>,
        want: &[bool],
    ) -> Result<Vec<RowResult>> {
        let m = &mut *self.model;
        let vsz = m.config.vocab_size;
        m.ensure_work(rows.len(), select.map_or(rows.len(), |s| s.len()))?;
        m.set_rows(Some(&rows.ids), &rows.pos, &rows.seq)?;
        let nsel = m.forward(&mut self.kv, rows.len(), select)?;
        let w = m.work.as_mut().expect("ensure_work above");
        m.gpu.argmax_rows(&w.logits, nsel, vsz, &mut w.ids)?;
        download_rows(&m.gpu, &w.ids, &w.logits, vsz, &want[..nsel])
    }
}

impl SlotBackend for GenericSlots<'_> {
    fn prefill(&mut self, c: Chunk<'_>) -> Result<RowResult> {
        let mut rows = PackedRows::default();
        rows.push(c.slot, c.start, c.ids);
        let last = rows.last.clone();
        Ok(self.run(&rows, Some(&last), &[c.want_logits])?.remove(0))
    }

    fn step(&mut self, rows: &[Row]) -> Result<Vec<RowResult>> {
        let mut packed = PackedRows::default();
        for r in rows {
            packed.push(r.slot, r.pos, &[r.token]);
        }
        let want: Vec<bool> = rows.iter().map(|r| r.want_logits).collect();
        self.run(&packed, None, &want)
    }

    fn release(&mut self, _slot: usize) {}
}
