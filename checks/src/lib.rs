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

/// Internals the fuzz targets in `fuzz/` drive directly; not an API.
#[doc(hidden)]
pub mod fuzzing {
    pub use crate::config::dns::normalise_answer;
    pub use crate::exec::dns::answer::{
        answers_text, check_answers, name_text, newest_serial, rdata_text, serial_cmp,
    };
    pub use crate::exec::dns::client::{nsid_text, rcode_label};
    pub use crate::exec::http::assets::extract as extract_assets;
    pub use crate::exec::{DecodeError, decode_body};
}
