//! What the routes share: the served model's facts, the scheduler's queue, metrics and settings.

use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::Arc;

use super::api::ModelLimits;
use super::metrics::Metrics;
use super::recipe::LoadedRecipe;
use super::scheduler::Queue;
use super::text::TextModel;

pub struct AppState {
    pub name: String,
    pub created: u64,
    pub vocab_size: usize,
    /// Positions per request.
    pub context: usize,
    pub text: TextModel,
    pub stop_ids: Arc<[u32]>,
    pub queue: Queue,
    pub max_queue: usize,
    pub metrics: Arc<Metrics>,
    pub api_key: Option<String>,
    pub max_body_bytes: usize,
    pub recipe: LoadedRecipe,
    pub engine_running: Arc<AtomicBool>,
    pub next_id: AtomicU64,
    /// Makes response ids unique across restarts.
    pub id_prefix: String,
}

impl AppState {
    pub fn limits(&self) -> ModelLimits<'_> {
        ModelLimits {
            name: &self.name,
            vocab_size: self.vocab_size,
            context: self.context,
            text: &self.text,
        }
    }
}
