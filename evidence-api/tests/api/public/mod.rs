mod bad_inputs;
mod claims;
mod documents;
mod health;
mod preview;
mod slow_clients;
