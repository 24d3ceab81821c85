//! The generic CUDA path (placeholder until vkae-kernels lands its API).

use crate::config::TextConfig;
use crate::error::{EngineError, Result};
use crate::weights::Model;
use crate::{GenerateOutput, GenerateRequest};

pub struct GpuModel {
    config: TextConfig,
}

impl GpuModel {
    pub fn new(_model: &Model) -> Result<Self> {
        Err(EngineError::Gpu("the CUDA path is not built yet".into()))
    }
    pub fn config(&self) -> &TextConfig {
        &self.config
    }
    pub fn generate(&mut self, _req: &GenerateRequest) -> Result<GenerateOutput> {
        Err(EngineError::Gpu("the CUDA path is not built yet".into()))
    }
    pub fn prefill_logits(&mut self, _ids: &[u32]) -> Result<Vec<f32>> {
        Err(EngineError::Gpu("the CUDA path is not built yet".into()))
    }
    pub fn generate_with_logits(
        &mut self,
        _p: &[u32],
        _n: usize,
    ) -> Result<(Vec<u32>, Vec<Vec<f32>>)> {
        Err(EngineError::Gpu("the CUDA path is not built yet".into()))
    }
}
