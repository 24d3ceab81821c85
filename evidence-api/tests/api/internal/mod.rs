mod auth;
mod bad_inputs;
mod runs;
mod session;
mod strict_input;
mod throttle;
