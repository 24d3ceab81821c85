mod auth;
mod bad_inputs;
mod runs;
mod session;
