//! Integration tests on the real server (port 0, fresh SQLite file), one module per URL space of
//! `src/routes/`: flows, bad inputs per endpoint, the auth matrix of every internal route, headers, OpenAPI
//! coverage, and the public documents byte for byte.

#[path = "../common/mod.rs"]
mod common;
mod content;
mod internal;
mod public;
mod store;
