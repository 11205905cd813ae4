//! `vantage-coordinator run`: the client of on-demand regression runs. It starts a run of a
//! vendor's checks on the coordinator (`POST /api/v1/runs`), waits for the probes' results,
//! compares them with a baseline run when asked, prints a table, JSON or JUnit report, and
//! exits with a code a CI job can act on.
//!
//! Layout:
//! - [`view`]: the API's wire types as read here (`RunView`, the request body).
//! - [`facts`]: the facts of a result that are shown and compared, by name.
//! - [`diff`]: the before/after diff, and its rule for regressions and noise.
//! - [`report`]: the counts, the verdict and the exit codes, with their precedence.
//! - [`table`], [`junit`]: the text and JUnit outputs (JSON is the report's serialization).

pub mod diff;
pub mod facts;
pub mod junit;
pub mod report;
pub mod table;
pub mod view;

#[cfg(test)]
mod fixtures;

pub use self::report::{Exit, Report};
