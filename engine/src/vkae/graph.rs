//! `generate` and the checks on the VKAE path: prompts prefilled eagerly, then each decode step (forward,
//! then `decode_advance`, which records the ids and advances the positions on the device) captured once per
//! batch size as a CUDA graph and replayed per token with no host work in between.

use std::time::Instant;

use vkae_kernels::cudarc::driver::sys::{CUgraphInstantiate_flags, CUstreamCaptureMode};

use super::buffers::{Bucket, Work};
use super::VkaeModel;
use crate::error::{EngineError, Result};
use crate::session::pack::{
    batched_output, EosTracker, GenerateOutput, GenerateRequest, PackedRows,
};

impl VkaeModel {
    pub(super) fn prefill_work(&mut self, rows: usize, sel: usize) -> Result<Work> {
        match self.prefill.take() {
            Some(w) if w.rows >= rows && w.hsel.len() >= sel * self.config.hidden_size => Ok(w),
            _ => self.new_work(rows, sel.max(1)),
        }
    }

    /// The bucket for `b` sequences with room for `capacity` positions each (taken out of the map; put it
    /// back with `self.buckets.insert`).
    fn take_bucket(&mut self, b: usize, capacity: usize) -> Result<Bucket> {
        self.ensure_scratch(b)?;
        if !self.tuner.measured(b) {
            self.measure_projections(b)?;
        }
        match self.buckets.remove(&b) {
            Some(mut bk) if bk.capacity >= capacity => {
                if bk.work.hsel.len() < b * self.config.hidden_size {
                    bk.graph = None;
                }
                Ok(bk)
            }
            old => {
                drop(old);
                // Rounded up generously so requests of similar length reuse the cache and its graph.
                let capacity = capacity.next_multiple_of(1024);
                Ok(Bucket {
                    work: self.new_work(b, b)?,
                    kv: self.new_kv(b, capacity)?,
                    capacity,
                    history: self.gpu.alloc::<u32>(b * capacity)?,
                    step: self.gpu.alloc::<i32>(1)?,
                    graph: None,
                })
            }
        }
    }

    /// Prefills every prompt into the bucket's cache and leaves the first generated ids in
    /// `bucket.work.ids`, each sequence's next position in `bucket.work.pos`, history row 0 written and the
    /// device step counter at 1.
    fn prefill_into(&mut self, bk: &mut Bucket, prompts: &[Vec<u32>]) -> Result<()> {
        let b = prompts.len();
        let rows = PackedRows::prompts(prompts);
        self.ensure_scratch(b)?;
        let mut pw = self.prefill_work(rows.len(), b)?;
        let g = &self.gpu;
        g.upload_into(&rows.ids, &mut pw.ids)?;
        g.upload_into(&rows.pos, &mut pw.pos)?;
        g.upload_into(&rows.seq, &mut pw.seq)?;
        let r = self.forward(&mut pw, &mut bk.kv, rows.len(), Some(&rows.last));
        let g = &self.gpu;
        let r = r.and_then(|_| {
            g.copy(&pw.ids.slice(..b), &mut bk.work.ids)?;
            g.copy(&pw.ids.slice(..b), &mut bk.history.slice_mut(..b))?;
            let next: Vec<i32> = prompts.iter().map(|p| p.len() as i32).collect();
            g.upload_into(&next, &mut bk.work.pos)?;
            g.upload_into(&(0..b as i32).collect::<Vec<_>>(), &mut bk.work.seq)?;
            g.upload_into(&[1i32], &mut bk.step)?;
            // The first token's capped logits, for callers that want them.
            g.copy(
                &pw.logits.slice(..b * self.config.vocab_size),
                &mut bk.work.logits,
            )?;
            Ok(())
        });
        self.prefill = Some(pw);
        r
    }

    /// Queues one decode step of the bucket: its graph's replay (captured on first use) or the same
    /// launches issued eagerly.
    fn decode_step(&self, bk: &mut Bucket, b: usize) -> Result<()> {
        let g = &self.gpu;
        if !self.options.graphs {
            self.forward(&mut bk.work, &mut bk.kv, b, None)?;
            return Ok(g.decode_advance(
                &bk.work.ids,
                &mut bk.history,
                &mut bk.step,
                &mut bk.work.pos,
                b,
            )?);
        }
        self.ensure_graph(bk, b)?;
        bk.graph
            .as_ref()
            .expect("captured above")
            .launch()
            .map_err(|e| EngineError::Gpu(format!("replaying the decode step: {e}")))
    }

    /// Captures the bucket's decode step if it has no graph yet (graphs on). Capturing runs nothing, so it can
    /// happen before the timed decode loop.
    fn ensure_graph(&self, bk: &mut Bucket, b: usize) -> Result<()> {
        let g = &self.gpu;
        if self.options.graphs && bk.graph.is_none() {
            g.synchronize()?;
            g.stream()
                .begin_capture(CUstreamCaptureMode::CU_STREAM_CAPTURE_MODE_THREAD_LOCAL)
                .map_err(|e| EngineError::Gpu(format!("beginning the decode-step capture: {e}")))?;
            let queued = self
                .forward(&mut bk.work, &mut bk.kv, b, None)
                .and_then(|_| {
                    Ok(g.decode_advance(
                        &bk.work.ids,
                        &mut bk.history,
                        &mut bk.step,
                        &mut bk.work.pos,
                        b,
                    )?)
                });
            let ended = g.stream().end_capture(CUgraphInstantiate_flags(0));
            queued?;
            let graph = ended
                .map_err(|e| EngineError::Gpu(format!("ending the decode-step capture: {e}")))?
                .ok_or_else(|| EngineError::Gpu("the decode-step capture is empty".into()))?;
            bk.graph = Some(graph);
        }
        Ok(())
    }

    /// Batched greedy generation: all prompts prefilled together, then one graph replay per token for the
    /// whole batch. Tokens/s counts the timed decode steps (everything after the first token).
    pub fn generate(&mut self, req: &GenerateRequest) -> Result<GenerateOutput> {
        let b = req.prompts.len();
        let longest = req.prompts.iter().map(|p| p.len()).max().unwrap_or(0);
        let mut bk = self.take_bucket(b, longest + req.max_new)?;
        let r = self.generate_in(&mut bk, req);
        self.buckets.insert(b, bk);
        r
    }

    fn generate_in(&mut self, bk: &mut Bucket, req: &GenerateRequest) -> Result<GenerateOutput> {
        let b = req.prompts.len();
        self.gpu.synchronize()?;
        let t0 = Instant::now();
        self.prefill_into(bk, &req.prompts)?;
        self.gpu.synchronize()?;
        let prefill_s = t0.elapsed().as_secs_f64();
        // A first use of this bucket captures its step here, outside the timed decode.
        self.ensure_graph(bk, b)?;
        self.gpu.synchronize()?;
        let t1 = Instant::now();
        let mut steps = 0;
        let mut eos = EosTracker::new(&self.config, b);
        for step in 1..req.max_new {
            if req.stop_at_eos && eos.observe_on_device(&self.gpu, &bk.history, step, b)? {
                break;
            }
            self.decode_step(bk, b)?;
            steps += 1;
        }
        let produced = steps + 1;
        let flat = self.gpu.download(&bk.history.slice(..produced * b))?; // synchronizes
        let decode_s = t1.elapsed().as_secs_f64();
        let c = &self.config;
        Ok(batched_output(req, c, &flat, steps, prefill_s, decode_s))
    }

    /// Greedy generation of one sequence through the same captured decode step, returning each step's
    /// soft-capped logits (for checks against the generic path and the CPU reference).
    pub fn generate_with_logits(
        &mut self,
        prompt: &[u32],
        max_new: usize,
    ) -> Result<(Vec<u32>, Vec<Vec<f32>>)> {
        let vsz = self.config.vocab_size;
        let mut bk = self.take_bucket(1, prompt.len() + max_new)?;
        let r = (|| {
            self.prefill_into(&mut bk, &[prompt.to_vec()])?;
            let mut all = vec![self.gpu.download(&bk.work.logits.slice(..vsz))?];
            for _ in 1..max_new {
                self.decode_step(&mut bk, 1)?;
                all.push(self.gpu.download(&bk.work.logits.slice(..vsz))?);
            }
            let toks = self.gpu.download(&bk.history.slice(..max_new))?;
            Ok((toks, all))
        })();
        self.buckets.insert(1, bk);
        r
    }

    /// Teacher-forced decode through the same decode step (graph or eager, as the options say), for checks:
    /// prefills `prompt`, then feeds each of `forced` as the next input token (written into the step's id
    /// buffer before the step runs) and returns the soft-capped logits of the prefill and of every step, so a
    /// decode step can be compared with a prefill over the same tokens without greedy ties steering it.
    pub fn decode_forced(&mut self, prompt: &[u32], forced: &[u32]) -> Result<Vec<Vec<f32>>> {
        let vsz = self.config.vocab_size;
        if let Some(&bad) = forced.iter().find(|&&t| t as usize >= vsz) {
            return Err(EngineError::Input(format!(
                "forced token {bad} is outside the vocabulary (size {vsz})"
            )));
        }
        let mut bk = self.take_bucket(1, prompt.len() + forced.len() + 1)?;
        let r = (|| {
            self.prefill_into(&mut bk, &[prompt.to_vec()])?;
            let mut all = vec![self.gpu.download(&bk.work.logits.slice(..vsz))?];
            for &t in forced {
                self.gpu.upload_into(&[t], &mut bk.work.ids)?;
                self.decode_step(&mut bk, 1)?;
                all.push(self.gpu.download(&bk.work.logits.slice(..vsz))?);
            }
            Ok(all)
        })();
        self.buckets.insert(1, bk);
        r
    }

    /// Soft-capped logits of every position of one sequence (`[len, vocab]`), from one eager prefill.
    pub fn prefill_logits(&mut self, ids: &[u32]) -> Result<Vec<f32>> {
        let n = ids.len();
        self.ensure_scratch(n)?;
        let mut pw = self.prefill_work(n, n)?;
        let mut kv = self.new_kv(1, n)?;
        let g = &self.gpu;
        g.upload_into(ids, &mut pw.ids)?;
        g.upload_into(&(0..n as i32).collect::<Vec<_>>(), &mut pw.pos)?;
        g.upload_into(&vec![0i32; n], &mut pw.seq)?;
        let all: Vec<usize> = (0..n).collect();
        let r = self
            .forward(&mut pw, &mut kv, n, Some(&all))
            .and_then(|nsel| {
                Ok(self
                    .gpu
                    .download(&pw.logits.slice(..nsel * self.config.vocab_size))?)
            });
        self.prefill = Some(pw);
        r
    }
}
