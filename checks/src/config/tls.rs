//! `kind = "tls"`: the keys of a TLS check and their validation.

use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use super::Ctx;
use crate::model::TlsCheck;

/// The keys of a `kind = "tls"` check.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct TlsCheckConfig {
    /// Where to connect, `host:port` (port 443 when absent).
    target: Spanned<String>,
    /// Name for SNI and the certificate match; the target's host when absent.
    server_name: Option<Spanned<String>>,
    /// PEM file of CA certificates to trust besides the system roots; relative to the check file.
    ca: Option<Spanned<String>>,
    /// The DNS server that resolves host names (`"ip"` or `"ip:port"`); default the system's.
    resolver: Option<Spanned<String>>,
    /// What the certificate must satisfy.
    expect: Option<super::Table<TlsExpectConfig>>,
}

/// `expect = { valid_for = "21d" }`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TlsExpectConfig {
    /// `cert_expires_soon` when the certificate expires within this (default `"14d"`).
    valid_for: Option<Spanned<String>>,
}

/// Default `valid_for`: two weeks, time enough to renew.
const DEFAULT_VALID_FOR: Duration = Duration::from_secs(14 * 86_400);

pub(crate) fn validate(ctx: &mut Ctx<'_>, raw: &TlsCheckConfig) -> Option<TlsCheck> {
    let target = ctx.host_port(&raw.target, "target", Some(443), "\"api.example.com:443\"");
    let resolver = super::resolver(ctx, raw.resolver.as_ref());
    let server_name = match &raw.server_name {
        Some(n)
            if super::is_hostname(n.get_ref())
                || n.get_ref().parse::<std::net::IpAddr>().is_ok() =>
        {
            Some(n.get_ref().trim_end_matches('.').to_ascii_lowercase())
        }
        Some(n) => {
            ctx.error(n.span(), format!("server_name must be a host name, e.g. `server_name = \"api.example.com\"`; got `{:?}`", n.get_ref()));
            return None;
        }
        None => target.as_ref().map(|t| t.host.clone()),
    };
    let valid_for = match raw.expect.as_ref().and_then(|e| e.valid_for.as_ref()) {
        Some(v) => ctx.duration(v, "valid_for", Duration::ZERO, "\"21d\"")?,
        None => DEFAULT_VALID_FOR,
    };
    Some(TlsCheck {
        target: target?,
        resolver: resolver?,
        server_name: server_name?,
        ca_file: raw.ca.as_ref().map(|c| ctx.path(c.get_ref())),
        ca_cache: crate::model::CaCache::default(),
        valid_for,
    })
}
