//! Continuous batching: one thread owns the engine's [`Session`] (its slots) and runs iterations. Each iteration frees the
//! slots of clients that went away, admits queued requests into free slots while the KV budget allows,
//! prefills at most one chunk's worth of prompt tokens (several waiting prompts packed into one call, a long
//! one split across iterations), then runs one decode step over every generating slot. Requests therefore
//! join and leave the running batch at step boundaries, and arriving prompts delay the running ones by at
//! most one chunk per step.
//!
//! The admission queue is the bounded channel [`Queue`] submits into: the scheduler takes a request from it
//! only when a slot is free, so a full channel means every slot is busy and the queue is long, and the server
//! answers 429.

use std::collections::VecDeque;
use std::sync::mpsc::{Receiver, SyncSender, TryRecvError, TrySendError};
use std::sync::Arc;
use std::time::Instant;

use tokio::sync::mpsc::Sender;

use super::metrics::Metrics;
use super::sampling::{Sampler, SamplingParams};
use crate::session::{PrefillInput, Session, StepInput};

/// One generation request, validated: the prompt fits the vocabulary, and prompt plus `max_tokens` fit
/// a slot.
pub struct Job {
    pub prompt: Vec<u32>,
    /// At least 1.
    pub max_tokens: usize,
    pub sampling: SamplingParams,
    /// Generation ends after any of these ids (the id itself is sent and counted).
    pub stop_ids: Arc<[u32]>,
    /// Where the tokens go; bounded at `max_tokens + 1` events, which is all a job sends. Dropping the
    /// receiver cancels the job at the next iteration.
    pub events: Sender<Event>,
    pub arrived: Instant,
}

impl Job {
    /// The events channel a job needs: room for every token and the final event.
    pub fn channel(max_tokens: usize) -> (Sender<Event>, tokio::sync::mpsc::Receiver<Event>) {
        tokio::sync::mpsc::channel(max_tokens + 1)
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    Token(u32),
    Finished(Finish),
    Failed(String),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Finish {
    /// A stop id was generated.
    Stop,
    /// `max_tokens` were generated.
    Length,
}

#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub max_batch: usize,
    /// Positions per slot.
    pub capacity: usize,
    /// KV positions all admitted requests may reserve together.
    pub kv_budget_tokens: usize,
    pub prefill_chunk: usize,
}

#[derive(Debug, PartialEq, Eq)]
pub enum SubmitError {
    /// The queue holds its maximum; try later.
    Full,
    /// The scheduler has stopped.
    Closed,
}

/// The sending side of the admission queue.
#[derive(Clone)]
pub struct Queue {
    tx: SyncSender<Job>,
    metrics: Arc<Metrics>,
}

impl Queue {
    /// A queue of at most `max_queue` waiting requests and its receiving end for [`run`].
    pub fn bounded(max_queue: usize, metrics: Arc<Metrics>) -> (Queue, Receiver<Job>) {
        let (tx, rx) = std::sync::mpsc::sync_channel(max_queue);
        (Queue { tx, metrics }, rx)
    }

    pub fn submit(&self, job: Job) -> Result<(), SubmitError> {
        self.metrics.queue_changed(1);
        self.tx.try_send(job).map_err(|e| {
            self.metrics.queue_changed(-1);
            match e {
                TrySendError::Full(_) => SubmitError::Full,
                TrySendError::Disconnected(_) => SubmitError::Closed,
            }
        })
    }
}

struct Active {
    job: Job,
    sampler: Sampler,
    /// Prompt tokens prefilled so far.
    prefilled: usize,
    generated: usize,
    last_token: u32,
    last_at: Option<Instant>,
    /// KV positions reserved for this request.
    reserved: usize,
}

struct State<'a, 'b> {
    slots: &'a mut Session<'b>,
    limits: Limits,
    metrics: &'a Metrics,
    active: Vec<Option<Active>>,
    /// Admitted slots whose prompt is not fully prefilled, first come first served.
    prefilling: VecDeque<usize>,
    reserved: usize,
}

/// Runs the scheduler until every [`Queue`] is dropped and the running requests are done.
pub fn run(slots: &mut Session<'_>, rx: Receiver<Job>, limits: Limits, metrics: &Metrics) {
    let mut st = State {
        slots,
        limits,
        metrics,
        active: (0..limits.max_batch).map(|_| None).collect(),
        prefilling: VecDeque::new(),
        reserved: 0,
    };
    // The next request in line, taken off the queue but waiting for KV budget.
    let mut held: Option<Job> = None;
    loop {
        st.reap_cancelled();
        while let Some(slot) = st.active.iter().position(|a| a.is_none()) {
            let idle = st.active.iter().all(|a| a.is_none());
            let job = match held.take() {
                Some(j) => j,
                None => {
                    let next = if idle {
                        // Nothing runs until the next request: the gauges say so while we wait.
                        metrics.iteration(0, 0, st.reserved);
                        rx.recv().map_err(|_| TryRecvError::Disconnected)
                    } else {
                        rx.try_recv()
                    };
                    match next {
                        Ok(j) => {
                            metrics.queue_changed(-1);
                            j
                        }
                        Err(TryRecvError::Empty) => break,
                        Err(TryRecvError::Disconnected) if idle => return,
                        Err(TryRecvError::Disconnected) => break,
                    }
                }
            };
            if job.events.is_closed() {
                continue;
            }
            let need = job.prompt.len() + job.max_tokens;
            if !idle && st.reserved + need > limits.kv_budget_tokens {
                held = Some(job);
                break;
            }
            st.admit(slot, job);
        }
        st.prefill_chunk();
        let rows = st.decode_step();
        let running = st.active.iter().filter(|a| a.is_some()).count();
        metrics.iteration(running, rows, st.reserved);
    }
}

impl State<'_, '_> {
    fn reap_cancelled(&mut self) {
        for slot in 0..self.active.len() {
            if self.active[slot]
                .as_ref()
                .is_some_and(|a| a.job.events.is_closed())
            {
                tracing::debug!(slot, "client went away; slot freed");
                self.free(slot);
            }
        }
    }

    fn admit(&mut self, slot: usize, job: Job) {
        if let Err(e) = self.slots.open(slot) {
            let _ = job.events.try_send(Event::Failed(e.to_string()));
            return;
        }
        let need = job.prompt.len() + job.max_tokens;
        self.reserved += need;
        self.active[slot] = Some(Active {
            sampler: Sampler::new(job.sampling),
            job,
            prefilled: 0,
            generated: 0,
            last_token: 0,
            last_at: None,
            reserved: need,
        });
        self.prefilling.push_back(slot);
    }

    fn free(&mut self, slot: usize) {
        if let Some(a) = self.active[slot].take() {
            self.reserved -= a.reserved;
            self.slots.release(slot);
            self.prefilling.retain(|&s| s != slot);
        }
    }

    fn fail(&mut self, slot: usize, message: &str) {
        tracing::error!(slot, message, "generation failed");
        if let Some(a) = &self.active[slot] {
            let _ = a.job.events.try_send(Event::Failed(message.to_string()));
        }
        self.free(slot);
    }

    /// Prefills at most `prefill_chunk` prompt tokens in one call, taken first come first served from the
    /// prompts still prefilling (several short prompts share a call; a long one is split across iterations).
    fn prefill_chunk(&mut self) {
        let mut budget = self.limits.prefill_chunk;
        let mut parts: Vec<(usize, usize, usize, bool)> = vec![]; // slot, from, to, want_logits
        for &slot in &self.prefilling {
            if budget == 0 {
                break;
            }
            let a = self.active[slot]
                .as_ref()
                .expect("prefilling slots are active");
            let end = (a.prefilled + budget).min(a.job.prompt.len());
            let last = end == a.job.prompt.len();
            parts.push((slot, a.prefilled, end, last && !a.sampler.is_greedy()));
            budget -= end - a.prefilled;
        }
        if parts.is_empty() {
            return;
        }
        let inputs: Vec<PrefillInput<'_>> = parts
            .iter()
            .map(|&(slot, from, to, want_logits)| PrefillInput {
                slot,
                ids: &self.active[slot].as_ref().expect("active").job.prompt[from..to],
                want_logits,
            })
            .collect();
        match self.slots.prefill_many(&inputs) {
            Ok(outs) => {
                for (&(slot, _, end, _), out) in parts.iter().zip(outs) {
                    let a = self.active[slot].as_mut().expect("active");
                    a.prefilled = end;
                    if end == a.job.prompt.len() {
                        self.prefilling.retain(|&s| s != slot);
                        self.metrics.prompt(a.job.prompt.len());
                        self.emit(slot, out.token, out.logits);
                    }
                }
            }
            Err(e) => {
                let msg = e.to_string();
                for &(slot, ..) in &parts {
                    self.fail(slot, &msg);
                }
            }
        }
    }

    /// One decode step over every slot that has generated and is not done; returns its row count.
    fn decode_step(&mut self) -> usize {
        let inputs: Vec<StepInput> = self
            .active
            .iter()
            .enumerate()
            .filter_map(|(slot, a)| {
                let a = a.as_ref()?;
                (a.generated > 0).then(|| StepInput {
                    slot,
                    token: a.last_token,
                    want_logits: !a.sampler.is_greedy(),
                })
            })
            .collect();
        if inputs.is_empty() {
            return 0;
        }
        match self.slots.step(&inputs) {
            Ok(outs) => {
                for (i, out) in inputs.iter().zip(outs) {
                    self.emit(i.slot, out.token, out.logits);
                }
            }
            Err(e) => {
                let msg = e.to_string();
                for i in &inputs {
                    self.fail(i.slot, &msg);
                }
            }
        }
        inputs.len()
    }

    /// Chooses the slot's next token (the greedy one, or a draw from its logits), sends it, and frees the
    /// slot when the request is done.
    fn emit(&mut self, slot: usize, greedy: u32, logits: Option<Vec<f32>>) {
        let a = self.active[slot]
            .as_mut()
            .expect("emitting slots are active");
        let token = match (&logits, a.sampler.is_greedy()) {
            (Some(l), false) => a.sampler.sample(l),
            _ => greedy,
        };
        let now = Instant::now();
        match a.last_at {
            None => self
                .metrics
                .time_to_first_token((now - a.job.arrived).as_secs_f64()),
            Some(t) => self.metrics.time_per_output_token((now - t).as_secs_f64()),
        }
        a.last_at = Some(now);
        a.generated += 1;
        a.last_token = token;
        self.metrics.generated(1);
        let finish = if a.job.stop_ids.contains(&token) {
            Some(Finish::Stop)
        } else if a.generated >= a.job.max_tokens {
            Some(Finish::Length)
        } else {
            None
        };
        // The channel holds max_tokens + 1 events, all a job sends; a closed one is reaped next iteration.
        let _ = a.job.events.try_send(Event::Token(token));
        if let Some(f) = finish {
            let _ = a.job.events.try_send(Event::Finished(f));
            self.free(slot);
        }
    }
}
