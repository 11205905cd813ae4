//! `kind = "tls"` executor (being written).

use std::time::Duration;

use super::{ExecError, Observation};

pub(crate) async fn run(_check: &crate::model::TlsCheck, _timeout: Duration) -> Result<Observation, ExecError> {
    Err(ExecError::Internal("not yet implemented".into()))
}
