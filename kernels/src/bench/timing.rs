//! Timing for the benchmark: CUDA event pairs around each repetition, behind a ~1 ms copy so the host runs
//! ahead, and input rotation over enough buffer sets to defeat the L2.

use crate::device::Gpu;
use crate::error::{DriverContext, Result};
use cudarc::driver::{sys::CUevent_flags, CudaEvent, CudaSlice, CudaView};
use half::bf16;

/// Median, min and max of one timing, in microseconds.
#[derive(Debug, Clone, Copy)]
pub struct Stats {
    pub median_us: f64,
    pub min_us: f64,
    pub max_us: f64,
}

impl Stats {
    fn of(mut v: Vec<f64>) -> Self {
        let median = vkae_record::stats::median(&v).expect("at least one repetition (reps > 0)");
        v.sort_by(|a, b| a.total_cmp(b));
        let n = v.len();
        Self {
            median_us: median,
            min_us: v[0],
            max_us: v[n - 1],
        }
    }
}

/// Bytes the rotation keeps between two uses of the same input set.
const ROTATE_BYTES: usize = 512 << 20;

pub(super) fn sets_for(footprint: usize) -> usize {
    ROTATE_BYTES.div_ceil(footprint.max(1)).clamp(1, 64)
}

/// Iteration `i`'s copy of a weight matrix of `len` elements among `sets` copies laid end to end in `ws`, so that
/// consecutive timed launches read weights that are no longer in L2.
pub(super) fn weight_set(
    ws: &CudaSlice<bf16>,
    len: usize,
    i: usize,
    sets: usize,
) -> CudaView<'_, bf16> {
    let j = i % sets;
    ws.slice(len * j..len * (j + 1))
}

pub(super) struct Timer<'a> {
    gpu: &'a Gpu,
    lead_src: CudaSlice<u8>,
    lead_dst: CudaSlice<u8>,
    starts: Vec<CudaEvent>,
    ends: Vec<CudaEvent>,
    warmup: usize,
}

impl<'a> Timer<'a> {
    pub(super) fn new(gpu: &'a Gpu, reps: usize, warmup: usize) -> Result<Self> {
        let mk = || {
            gpu.context()
                .new_event(Some(CUevent_flags::CU_EVENT_DEFAULT))
                .ctx(|| "creating a timing event".into())
        };
        let starts = (0..reps).map(|_| mk()).collect::<Result<Vec<_>>>()?;
        let ends = (0..reps).map(|_| mk()).collect::<Result<Vec<_>>>()?;
        Ok(Self {
            gpu,
            lead_src: gpu.alloc::<u8>(2 << 30)?,
            lead_dst: gpu.alloc::<u8>(2 << 30)?,
            starts,
            ends,
            warmup,
        })
    }

    /// Times `f(i)` (i = repetition index, for rotation) once per event pair.
    pub(super) fn time(&mut self, mut f: impl FnMut(usize) -> Result<()>) -> Result<Stats> {
        for i in 0..self.warmup {
            f(i)?;
        }
        self.gpu.synchronize()?;
        self.gpu.copy(&self.lead_src, &mut self.lead_dst)?; // keeps the device busy while we queue
        let stream = self.gpu.stream().clone();
        for i in 0..self.starts.len() {
            self.starts[i]
                .record(&stream)
                .ctx(|| "recording an event".into())?;
            f(self.warmup + i)?;
            self.ends[i]
                .record(&stream)
                .ctx(|| "recording an event".into())?;
        }
        self.gpu.synchronize()?;
        let mut us = Vec::with_capacity(self.starts.len());
        for (s, e) in self.starts.iter().zip(&self.ends) {
            us.push(s.elapsed_ms(e).ctx(|| "reading an event time".into())? as f64 * 1e3);
        }
        Ok(Stats::of(us))
    }
}
