//! The Vantage probe: runs checks from one vantage point and reports what it saw.
//!
//! This first cut is the SRE's bench: `validate` to lint check files, `once` to run them now
//! from this machine. The long-running agent (`run`) that pushes to the coordinator builds on it.
//!
//! Layout:
//! - [`once`]: run a set of checks concurrently, once each;
//! - [`report`]: print results as a readable table or JSON lines.

pub mod once;
pub mod report;
