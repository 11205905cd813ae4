//! The Vantage probe: runs checks from one vantage point and reports what it saw.
//!
//! Two faces: the SRE's bench (`validate` to lint check files, `once` to run them now from
//! this machine) and the agent (`run`), which pulls its checks from the coordinator, runs them
//! on a phase-offset grid, and pushes every result through a disk spool.
//!
//! Layout:
//! - [`agent`]: the long-running agent's tasks: config poller, scheduler, spooler, shipper;
//! - [`client`]: the HTTP client for the coordinator;
//! - [`metrics`]: the probe's own counters, and its optional local `/metrics` endpoint;
//! - [`schedule`]: phase offsets and the run grid;
//! - [`settings`]: the agent's own settings (`probe.toml`, flags, environment);
//! - [`once`]: run a set of checks concurrently, once each;
//! - [`report`]: print results as a readable table or JSON lines;
//! - [`spool`]: the crash-atomic, bounded disk spool of results not yet acknowledged.

pub mod agent;
pub mod client;
pub mod metrics;
pub mod once;
pub mod report;
pub mod schedule;
pub mod settings;
pub mod spool;

/// Internals the fuzz targets in `fuzz/` drive directly; not an API.
#[doc(hidden)]
pub mod fuzzing {
    pub use crate::spool::format::{
        Found, HEADER_LEN, MAGIC, MAX_PAYLOAD, MAX_POSITION, RECORD_HEADER, Record, Scan, decode,
        encode, scan,
    };
}
