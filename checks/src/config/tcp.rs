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
    /// The DNS server that resolves host names (`"ip"` or `"ip:port"`); default the system's.
    resolver: Option<Spanned<String>>,
}

pub(crate) fn validate(ctx: &mut Ctx<'_>, raw: &TcpCheckConfig) -> Option<TcpCheck> {
    let target = ctx.host_port(&raw.target, "target", None, "\"db.example.com:5432\"");
    let resolver = super::resolver(ctx, raw.resolver.as_ref());
    Some(TcpCheck {
        target: target?,
        resolver: resolver?,
    })
}
