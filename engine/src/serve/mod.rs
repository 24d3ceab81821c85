//! `vkae-engine serve`: an OpenAI-compatible HTTP server over the engine, bound by a serving recipe.
//!
//! - [`recipe`]: `recipes/*.toml`, the deployment's model, kernel, batching, speculative and quality settings.
//! - [`server`]: start-up (engine thread, listener) and [`server::ServeSettings`]; [`state`]: the state the
//!   routes share.
//! - [`routes`]: the HTTP routes, JSON and SSE replies; [`api`]: request bodies and their checks;
//!   [`error`]: OpenAI-shaped errors.
//! - [`scheduler`]: continuous batching over the engine's slot [`Session`](crate::session::Session), opened on
//!   the recipe's backend by [`engine_slots`].
//! - [`sampling`]: greedy, temperature and top-p with per-request seeds.
//! - [`text`], [`chat`], [`output`]: tokenizer, chat template, streamed text with stop sequences.
//! - [`metrics`]: Prometheus text for `/metrics`.
//! - [`args`]: the `serve` and `bench-serve` command-line flags; [`bench`]: the serving benchmark.

pub mod api;
pub mod args;
pub mod bench;
pub mod chat;
pub mod engine_slots;
pub mod error;
pub mod metrics;
pub mod output;
pub mod recipe;
pub mod routes;
pub mod sampling;
pub mod scheduler;
pub mod server;
pub mod state;
pub mod text;

/// Structured logs to stderr; `RUST_LOG` filters (default `info`).
pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}
