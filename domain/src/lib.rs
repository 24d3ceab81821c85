//! # vkae-domain: the types the evidence store and the site share
//!
//! No I/O and no server dependencies, so the same types compile into the browser bundle
//! (`cargo check -p vkae-domain --target wasm32-unknown-unknown`).
//!
//! - [`ids`]: [`FamilyId`], [`GpuSlug`], [`RunId`], [`ServicePath`]: validated newtypes with `parse` and
//!   `Display`.
//! - [`level`]: [`ClaimLevel`], the levels an operator may promote a run to.
//! - [`preview`]: [`PreviewInput`], its field limits and its one validator (the form in the browser, the site's
//!   server function and the store all run it).
//! - [`catalog`], [`claim`], [`sizing`]: the public documents (`/api/v1/models`, `/gpus`, `/claims`,
//!   `/sizing`). The store builds them, the JSON API serialises them and the site reads them, so a renamed
//!   field fails to compile instead of rendering a blank cell.
//! - [`internal`]: the operator documents (runs with their lane verdicts, the audit log, the preview inbox).
//!
//! The JSON API writes object keys in sorted order (see `docs/API.md`), so the declaration order of the
//! fields here does not reach the wire.

pub mod catalog;
pub mod claim;
pub mod error;
pub mod ids;
pub mod internal;
pub mod level;
pub mod preview;
pub mod sizing;

pub use catalog::*;
pub use claim::*;
pub use error::ParseError;
pub use ids::{FamilyId, GpuSlug, RunId, ServicePath};
pub use internal::{
    AuditDetail, AuditEntry, BaselineContext, Blocker, ContentRefusal, InternalData, LaneVerdict,
    PreviewRequest, RunSummary,
};
pub use level::ClaimLevel;
pub use preview::{
    form_errors, FieldError, PreviewChoices, PreviewInput, PreviewProblem, ProblemKind,
    ValidPreview,
};
pub use sizing::*;
