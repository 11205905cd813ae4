//! The Vantage coordinator: ingests raw results from probes into a store, serves probes their
//! checks, applies consensus windows to keep each vendor's state, and alerts on-call.
//!
//! Layout:
//! - [`config`]: `coordinator.toml`, with loopback and SQLite defaults.
//! - [`store`]: the [`store::Store`] trait and its SQLite implementation; all SQL lives there.
//! - [`ingest`]: batch limits and the single writer that group-commits batches.
//! - [`catalog`]: the check files served to probes, hot-reloaded.
//! - [`auth`]: probe tokens, stored hashed.
//! - [`access`]: the `[api]` tokens: who may read, change, scrape.
//! - [`consensus`]: the pure consensus core: votes, verdicts, hysteresis, quarantine, vendor state.
//! - [`engine`]: keeps recent runs and states in memory and runs consensus on every batch.
//! - [`incident`]: incidents opened, changed and resolved by state changes, and their alerts.
//! - [`alert`]: receivers, routes, silences and the persisted outbox dispatcher.
//! - [`api`]: the HTTP API.
//! - `page`: the status page (`GET /`), server-rendered, with its sign-in.
//! - [`report`]: SLA reports and latency series over the rollups and the state history.
//! - [`stream`]: the live stream hub (`GET /api/v1/stream`) and its per-consumer queues.
//! - [`metrics`]: `/metrics`, Prometheus exposition.
//! - [`server`]: listener, TLS, background tasks, orderly shutdown.
//! - [`conn`]: what bounds one client connection: per-address slots, the idle deadline.
//! - [`local_probe`]: `serve --local-probe`, a probe in the same process.
//! - [`run_cli`]: `run`, the client of on-demand regression runs: starts one, waits, diffs
//!   it against a baseline, and reports as a table, JSON or JUnit with a CI exit code.
//! - [`demo`]: `demo`, a simulated vendor world with faults, the coordinator and six probes
//!   (cargo feature `demo`, on by default).

pub mod access;
pub mod alert;
pub mod api;
pub mod auth;
pub mod catalog;
pub mod cluster;
pub mod config;
pub mod conn;
pub mod consensus;
#[cfg(feature = "demo")]
pub mod demo;
pub mod engine;
pub mod incident;
pub mod ingest;
pub mod local_probe;
pub mod metrics;
mod page;
pub mod report;
pub mod run_cli;
pub mod runs;
pub mod server;
pub mod store;
pub mod stream;

/// Internals the fuzz targets in `fuzz/` drive directly; not an API.
#[doc(hidden)]
pub mod fuzzing {
    pub use crate::api::{parse_time, query};
    pub use crate::page::session::{COOKIE, cookie, issue, verify};
    pub use crate::store::report::{decode_buckets, encode_buckets};
}
