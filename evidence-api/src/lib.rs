//! # vkae-evidence: VKAE's evidence store and JSON API
//!
//! Ingests the engine's signed qualification runs ([`vkae_record::RunRecord`]), judges each run's lanes
//! (artifact, private benchmark, quality) and stores the verdicts with their reasons, lets a named operator
//! promote a run to a public claim or retract it (every decision in an append-only audit log), and serves a
//! versioned JSON API that can read only promoted claims (the `public_claims` view) and catalog data.
//!
//! - [`service`]: the functions the site calls in-process (the HTTP handlers call the same ones).
//! - [`settings::Settings`] (typed) -> [`state::AppState`] (content, database, limiter) ->
//!   [`startup::Application`] (bound, served, drained); [`routes`] per URL space; [`cli::main`] is the `vkae`
//!   binary. Imports run one way: `startup` -> `routes` -> `service` -> the store modules -> `state`/`settings`.
//! - `docs/API.md`: the HTTP contract; `migrations/`: the schema; `content/`: catalog data.
//!
//! ## Error-handling policy
//! - Every failure a route can return is an [`error::ApiError`], answered as
//!   `{"error": {"code", "message", "field"?, "details"?}}` with the status that says whose fault it is.
//! - 4xx: the request is wrong and retrying it unchanged will fail the same way: malformed or oversize input
//!   (400/413/415), missing or wrong credentials (401/403), unknown resources (404), a state conflict such as a
//!   refused promotion or a reused run id (409), input that parses but is invalid (422, naming the field), rate
//!   limit (429 with `Retry-After`). These are logged at `info` with code and field, never with secrets or bodies.
//! - 5xx: our fault (database, I/O, a task that panicked). The cause is logged at `error`; the client gets
//!   `internal` and a generic message, never internals. A 5xx leaves nothing half-written: every write is one
//!   transaction.
//! - Start-up errors (broken content, unreadable database, failed migration) stop the process with a message that
//!   names the file and field; the CLI exits 2 for usage mistakes and 1 for failures.

pub mod auth;
pub mod cli;
pub mod content;
pub mod content_evidence;
pub mod db;
pub mod error;
pub mod lanes;
pub mod preview;
pub mod public;
pub mod routes;
pub mod service;
pub mod settings;
pub mod sizing;
pub mod startup;
pub mod state;
pub mod store;

pub use error::{ApiError, ApiResult};
pub use routes::SiteRoutes;
pub use settings::{PublicOrigin, Settings};
pub use startup::Application;
pub use state::AppState;
