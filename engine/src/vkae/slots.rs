//! The slot API on the VKAE path. One KV cache of `max_slots x capacity` holds every slot's rows (the
//! kernels address a row's cache by its sequence id, here its slot). A prefill chunk runs the fused ops
//! eagerly; a decode step over `n` slots replays the CUDA graph captured for `n` rows (captured on the first
//! step of that size, after the projection kernels for `n` rows were measured), with the rows' ids,
//! positions and sequence ids uploaded into that graph's fixed buffers first. With graphs off the same
//! launches are issued eagerly.

use std::collections::HashMap;

use vkae_kernels::cudarc::driver::sys::{CUgraphInstantiate_flags, CUstreamCaptureMode};
use vkae_kernels::cudarc::driver::CudaGraph;

use super::{LayerKv, VkaeModel, Work};
use crate::device::download_rows;
use crate::error::{EngineError, Result};
use crate::session::pack::PackedRows;
use crate::session::{Chunk, Row, RowResult, SessionSettings, SlotBackend};

/// The buffers and captured step of one step size.
struct StepGraph {
    /// Dropped before `work`, whose buffers it points into.
    graph: Option<CudaGraph>,
    work: Work,
}

pub(crate) struct VkaeSlots<'v> {
    /// Dropped before `kv`, which their graphs point into.
    steps: HashMap<usize, StepGraph>,
    kv: Vec<Option<LayerKv>>,
    model: &'v mut VkaeModel,
}

impl<'v> VkaeSlots<'v> {
    /// Reserves the kernels' scratch for a step of every slot (growing it later would invalidate the
    /// captured steps) and the slots' KV cache, and measures the projections for every row count a step or
    /// a packed prefill's LM head can have (1..=max_slots): measured on first use instead, a step size first
    /// seen under load would stall every running request while its kernels are timed.
    pub(crate) fn new(model: &'v mut VkaeModel, settings: SessionSettings) -> Result<Self> {
        model.ensure_scratch(settings.max_slots)?;
        for rows in 1..=settings.max_slots {
            if !model.tuner.measured(rows) {
                model.measure_projections(rows)?;
            }
        }
        // Rounded up as `generate` rounds its cache, so a slot's attention splits its keys as a run alone does.
        let kv = model.new_kv(settings.max_slots, settings.capacity.next_multiple_of(1024))?;
        Ok(VkaeSlots {
            steps: HashMap::new(),
            kv,
            model,
        })
    }

    /// The step buffers for `n` rows, measuring the projection kernels for `n` rows on first use.
    fn step_graph(&mut self, n: usize) -> Result<&mut StepGraph> {
        if !self.steps.contains_key(&n) {
            if !self.model.tuner.measured(n) {
                self.model.measure_projections(n)?;
            }
            let work = self.model.new_work(n, n)?;
            self.steps.insert(n, StepGraph { graph: None, work });
        }
        Ok(self.steps.get_mut(&n).expect("inserted above"))
    }
}

/// Captures one decode step of `n` rows (forward only: the caller reads the ids and feeds the next tokens).
fn capture(
    model: &VkaeModel,
    sg: &mut StepGraph,
    kv: &mut [Option<LayerKv>],
    n: usize,
) -> Result<()> {
    let g = &model.gpu;
    g.synchronize()?;
    g.stream()
        .begin_capture(CUstreamCaptureMode::CU_STREAM_CAPTURE_MODE_THREAD_LOCAL)
        .map_err(|e| EngineError::Gpu(format!("beginning the slot-step capture: {e}")))?;
    let queued = model.forward(&mut sg.work, kv, n, None);
    let ended = g.stream().end_capture(CUgraphInstantiate_flags(0));
    queued?;
    let graph = ended
        .map_err(|e| EngineError::Gpu(format!("ending the slot-step capture: {e}")))?
        .ok_or_else(|| EngineError::Gpu("the slot-step capture is empty".into()))?;
    sg.graph = Some(graph);
    Ok(())
}

/// The greedy ids of the first `want.len()` rows of `w`, with the logits of the rows `want` marks.
fn read_rows(model: &VkaeModel, w: &Work, want: &[bool]) -> Result<Vec<RowResult>> {
    download_rows(&model.gpu, &w.ids, &w.logits, model.config.vocab_size, want)
}

impl SlotBackend for VkaeSlots<'_> {
    fn prefill(&mut self, c: Chunk<'_>) -> Result<RowResult> {
        Ok(self.prefill_packed(&[c])?.remove(0))
    }

    /// The chunks as one packed batch of rows (sequence id = slot), as `generate` prefills its prompts.
    fn prefill_packed(&mut self, chunks: &[Chunk<'_>]) -> Result<Vec<RowResult>> {
        let mut rows = PackedRows::default();
        for c in chunks {
            rows.push(c.slot, c.start, c.ids);
        }
        let want: Vec<bool> = chunks.iter().map(|c| c.want_logits).collect();
        let m = &mut *self.model;
        // The LM head runs over one row per chunk: its projection kernels for that row count.
        if !m.tuner.measured(chunks.len()) {
            m.measure_projections(chunks.len())?;
        }
        let mut pw = m.prefill_work(rows.len(), chunks.len())?;
        let r = (|| {
            let g = &m.gpu;
            g.upload_into(&rows.ids, &mut pw.ids)?;
            g.upload_into(&rows.pos, &mut pw.pos)?;
            g.upload_into(&rows.seq, &mut pw.seq)?;
            m.forward(&mut pw, &mut self.kv, rows.len(), Some(&rows.last))?;
            read_rows(m, &pw, &want)
        })();
        m.prefill = Some(pw);
        r
    }

    fn step(&mut self, rows: &[Row]) -> Result<Vec<RowResult>> {
        let n = rows.len();
        let mut packed = PackedRows::default();
        for r in rows {
            packed.push(r.slot, r.pos, &[r.token]);
        }
        let want: Vec<bool> = rows.iter().map(|r| r.want_logits).collect();
        self.step_graph(n)?;
        let (model, kv) = (&*self.model, &mut self.kv);
        let sg = self.steps.get_mut(&n).expect("made above");
        let g = &model.gpu;
        g.upload_into(&packed.ids, &mut sg.work.ids)?;
        g.upload_into(&packed.pos, &mut sg.work.pos)?;
        g.upload_into(&packed.seq, &mut sg.work.seq)?;
        if model.options.graphs {
            if sg.graph.is_none() {
                capture(model, sg, kv, n)?;
            }
            sg.graph
                .as_ref()
                .expect("captured above")
                .launch()
                .map_err(|e| EngineError::Gpu(format!("replaying the slot step: {e}")))?;
        } else {
            model.forward(&mut sg.work, kv, n, None)?;
        }
        read_rows(model, &sg.work, &want)
    }

    fn release(&mut self, _slot: usize) {}
}
