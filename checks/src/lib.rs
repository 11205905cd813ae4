//! Vantage checks: the check definitions SREs write in TOML, their validation, the
//! executors that probes run, and the result wire type both binaries share.
//!
//! Layout:
//! - [`config`]: loading TOML files and validating them into a [`model::CheckSet`], with
//!   every error located by file, line and column.
//! - [`model`]: the validated types the program runs.
//! - [`exec`]: one executor per check kind (`dns`, `http` for `cdn` and `http`, `tls`, `tcp`).
//! - [`result`]: the [`result::CheckResult`] wire type that probes push.
//! - [`limits`]: what one result and one batch may hold, and [`limits::fit`], which keeps a
//!   result within them.
//! - [`duration`]: parsing and printing the duration strings used in TOML.
//! - [`wire`]: the probe ↔ coordinator API bodies.

pub mod config;
pub mod duration;
pub mod exec;
pub mod limits;
pub mod model;
pub mod pem;
pub mod result;
pub mod wire;
