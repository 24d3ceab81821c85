mod bad_inputs;
mod caching;
mod claims;
mod documents;
mod health;
mod preview;
mod slow_clients;
