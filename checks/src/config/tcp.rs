//! `kind = "tcp"`: the keys of a TCP check and their validation.

use serde::Deserialize;
use toml::Spanned;

use super::Ctx;
use crate::model::TcpCheck;

/// The keys of a `kind = "tcp"` check.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct TcpCheckConfig {
    /// Where to connect: `host:port`, `ip:port` or `[v6]:port`.
    target: Spanned<String>,
}

pub(crate) fn validate(ctx: &mut Ctx<'_>, raw: &TcpCheckConfig) -> Option<TcpCheck> {
    ctx.host_port(&raw.target, "target", None, "\"db.example.com:5432\"")
        .map(|target| TcpCheck { target })
}
