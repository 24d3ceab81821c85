//! Starting the server: the engine thread (which loads the model, opens its slots and runs the scheduler),
//! the shared state the routes read ([`AppState`]) and the listener.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use tokio::net::TcpListener;

use super::metrics::Metrics;
use super::recipe::LoadedRecipe;
use super::routes::router;
use super::scheduler::{self, Limits, Queue};
pub use super::state::AppState;
use super::text::TextModel;
use crate::error::{EngineError, Result};
use crate::{Backend, ModelSource};

/// Everything `serve` needs, checked.
#[derive(Clone, Debug)]
pub struct ServeSettings {
    pub source: ModelSource,
    pub recipe: LoadedRecipe,
    pub device: Backend,
    pub bind: SocketAddr,
    pub served_model_name: String,
    pub api_key: Option<String>,
    /// Largest request body, bytes (413 beyond).
    pub max_body_bytes: usize,
}

/// The default `--bind`: loopback only.
pub const DEFAULT_BIND: &str = "127.0.0.1:8000";
pub const DEFAULT_MAX_BODY_BYTES: usize = 4 << 20;

/// A server accepting connections; dropping the handle does not stop it, [`RunningServer::shutdown`] does.
pub struct RunningServer {
    pub addr: SocketAddr,
    shutdown: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl RunningServer {
    /// Stops accepting, lets open responses finish, and returns when the listener is closed.
    pub async fn shutdown(self) -> std::io::Result<()> {
        let _ = self.shutdown.send(());
        self.task.await.unwrap_or(Ok(()))
    }

    /// Waits until the server stops (it does not stop on its own unless the listener fails).
    pub async fn wait(self) -> std::io::Result<()> {
        let _keep = self.shutdown;
        self.task.await.unwrap_or(Ok(()))
    }
}

/// Loads the model on its engine thread, then binds and serves. Returns once requests are being accepted.
pub async fn start(settings: ServeSettings) -> Result<RunningServer> {
    let recipe = &settings.recipe.recipe;
    let config = settings.source.config()?;
    if let ModelSource::Synthetic { family, .. } = &settings.source {
        if *family != recipe.family() {
            return Err(EngineError::Input(format!(
                "recipe {} is for {}, the model is synthetic {}",
                recipe.name,
                recipe.model.family,
                family.name()
            )));
        }
    }
    let b = &recipe.batching;
    if b.max_context > config.max_position_embeddings {
        return Err(EngineError::Input(format!(
            "recipe {}: max_context {} is beyond the model's context ({})",
            recipe.name, b.max_context, config.max_position_embeddings
        )));
    }
    let kv_per_token = crate::stats::model_stats(&config).kv_bytes_per_token.max(1);
    let kv_budget_tokens = (settings.recipe.recipe.kv_budget_bytes() / kv_per_token) as usize;
    if kv_budget_tokens < b.max_context {
        return Err(EngineError::Input(format!(
            "recipe {}: kv_budget_gib {} holds {kv_budget_tokens} positions of this model ({kv_per_token} bytes \
             each), fewer than one request of max_context {}",
            recipe.name, b.kv_budget_gib, b.max_context
        )));
    }
    let dir = match &settings.source {
        ModelSource::Dir(d) => Some(d.as_path()),
        ModelSource::Synthetic { .. } => None,
    };
    let text = TextModel::load(dir, &config)?;
    if let Some(t) = &text.tokenizer {
        if t.vocab_size() > config.vocab_size {
            tracing::warn!(
                tokenizer = t.vocab_size(),
                model = config.vocab_size,
                "the tokenizer has more tokens than the model's vocabulary"
            );
        }
    }
    let limits = Limits {
        max_batch: b.max_batch,
        capacity: b.max_context,
        kv_budget_tokens,
        prefill_chunk: b.prefill_chunk,
    };
    let metrics = Arc::new(Metrics::new(b.max_batch, kv_budget_tokens));
    let (queue, rx) = Queue::bounded(b.max_queue, metrics.clone());
    let engine_running = Arc::new(AtomicBool::new(false));
    let ready = spawn_engine(
        settings.source.clone(),
        settings.device,
        recipe.kernels.clone(),
        limits,
        rx,
        metrics.clone(),
        engine_running.clone(),
    );
    tokio::task::spawn_blocking(move || ready.recv())
        .await
        .map_err(|e| EngineError::Input(format!("engine thread: {e}")))?
        .map_err(|_| EngineError::Input("the engine thread exited while loading".into()))??;
    let state = Arc::new(AppState {
        name: settings.served_model_name.clone(),
        created: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0),
        vocab_size: config.vocab_size,
        context: b.max_context,
        stop_ids: Arc::from(text.stop_ids.clone()),
        text,
        queue,
        max_queue: b.max_queue,
        metrics,
        api_key: settings.api_key.clone(),
        max_body_bytes: settings.max_body_bytes,
        recipe: settings.recipe.clone(),
        engine_running,
        next_id: AtomicU64::new(0),
        id_prefix: format!("{:x}", std::process::id() as u64 ^ state_nonce()),
    });
    let listener = TcpListener::bind(settings.bind).await?;
    let addr = listener.local_addr()?;
    let (shutdown, stop) = tokio::sync::oneshot::channel::<()>();
    let app = router(state);
    let task = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = stop.await;
            })
            .await
    });
    tracing::info!(%addr, model = %settings.served_model_name, recipe = %settings.recipe.recipe.name,
        recipe_sha256 = %settings.recipe.sha256, device = ?settings.device, "serving");
    Ok(RunningServer {
        addr,
        shutdown,
        task,
    })
}

fn state_nonce() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish()
        & 0xffff_ffff
}

/// The engine thread: loads the model on the chosen backend, opens its slot session, reports readiness (or the
/// load error) on the returned channel, then runs the scheduler until the queue closes.
fn spawn_engine(
    source: ModelSource,
    device: Backend,
    kernels: super::recipe::KernelSection,
    limits: Limits,
    rx: std::sync::mpsc::Receiver<scheduler::Job>,
    metrics: Arc<Metrics>,
    running: Arc<AtomicBool>,
) -> std::sync::mpsc::Receiver<Result<()>> {
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name("vkae-engine".into())
        .spawn(move || {
            let t0 = std::time::Instant::now();
            let run = |session: &mut crate::session::Session<'_>| {
                tracing::info!(load_s = t0.elapsed().as_secs_f64(), "engine ready");
                running.store(true, Ordering::Relaxed);
                let _ = ready_tx.send(Ok(()));
                scheduler::run(session, rx, limits, &metrics);
            };
            let loaded = super::engine_slots::with_session(&source, device, &kernels, limits, run);
            running.store(false, Ordering::Relaxed);
            if let Err(e) = loaded {
                tracing::error!(error = %e, "engine failed");
                let _ = ready_tx.send(Err(e));
            }
        })
        .expect("spawning the engine thread");
    ready_rx
}

/// `vkae-engine serve`: runs until Ctrl-C.
pub fn serve_blocking(settings: ServeSettings) -> Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let server = start(settings).await?;
        println!("vkae-engine serve: listening on http://{}", server.addr);
        tokio::select! {
            r = tokio::signal::ctrl_c() => {
                r?;
                tracing::info!("shutting down");
                server.shutdown().await?;
            }
        }
        Ok(())
    })
}
