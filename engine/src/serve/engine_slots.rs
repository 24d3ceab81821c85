//! Binds the scheduler's [`Slots`] to a backend: the model is loaded and its slots opened on the calling
//! (engine) thread, and `run` gets them for as long as it runs.

use super::scheduler::Limits;
use super::slots::{SlotOutput, SlotStep, Slots};
use crate::cpu::{argmax, CpuSession};
use crate::error::{EngineError, Result};
use crate::weights::Model;
use crate::{Backend, ModelSource};

pub fn with_slots(
    source: &ModelSource,
    device: Backend,
    limits: Limits,
    run: impl FnOnce(&mut dyn Slots),
) -> Result<()> {
    let model = source.load()?;
    match device {
        Backend::Cpu => {
            let mut slots = CpuSlots {
                model: &model,
                slots: (0..limits.max_batch).map(|_| None).collect(),
            };
            run(&mut slots);
            Ok(())
        }
        other => Err(EngineError::Input(format!(
            "serving on {other:?} needs the engine's slot sessions"
        ))),
    }
}

struct CpuSlots<'m> {
    model: &'m Model,
    slots: Vec<Option<CpuSession<'m>>>,
}

impl Slots for CpuSlots<'_> {
    fn open(&mut self, slot: usize) -> Result<()> {
        self.slots[slot] = Some(CpuSession::new(self.model));
        Ok(())
    }

    fn prefill(&mut self, slot: usize, ids: &[u32], want_logits: bool) -> Result<SlotOutput> {
        let s = self.slots[slot].as_mut().expect("open slot");
        let logits = s.forward(ids, false);
        Ok(SlotOutput {
            token: argmax(&logits),
            logits: want_logits.then_some(logits),
        })
    }

    fn step(&mut self, inputs: &[SlotStep]) -> Result<Vec<SlotOutput>> {
        inputs
            .iter()
            .map(|i| self.prefill(i.slot, &[i.token], i.want_logits))
            .collect()
    }

    fn release(&mut self, slot: usize) {
        self.slots[slot] = None;
    }
}
