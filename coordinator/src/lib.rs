//! The Vantage coordinator: ingests raw results from probes into a store, serves probes their
//! checks, and (next) applies consensus windows to keep each vendor's state.
//!
//! Layout:
//! - [`config`]: `coordinator.toml`, with loopback and SQLite defaults.
//! - [`store`]: the [`store::Store`] trait and its SQLite implementation; all SQL lives there.
//! - [`ingest`]: batch limits and the single writer that group-commits batches.
//! - [`catalog`]: the check files served to probes, hot-reloaded.
//! - [`auth`]: probe tokens, stored hashed.
//! - [`api`]: the HTTP API.
//! - [`metrics`]: `/metrics`, Prometheus exposition.
//! - [`server`]: listener, TLS, background tasks, orderly shutdown.
//! - [`local_probe`]: `serve --local-probe`, a probe in the same process.

pub mod api;
pub mod auth;
pub mod catalog;
pub mod config;
pub mod consensus;
pub mod ingest;
pub mod local_probe;
pub mod metrics;
pub mod server;
pub mod store;
