//! The result of one check run: the wire type probes push to the coordinator.
//!
//! Every run produces exactly one [`CheckResult`]. A failed check is data (`status = "fail"`
//! with a [`FailureKind`]); a result whose `status` is `probe_error` says the probe itself
//! could not test, and must never count against the vendor.
//!
//! The JSON shape is versioned by [`RESULT_SCHEMA_VERSION`] in the `v` field. Fields are only
//! ever added; a change to the meaning of a field bumps the version. So a field this build
//! does not know is ignored, not refused: a newer probe's results are still stored (the
//! coordinator counts such fields, see [`crate::wire::decode_batch`]).

use std::cell::Cell;
use std::net::SocketAddr;

use serde::de::{DeserializeOwned, Error as _};
use serde::{Deserialize, Deserializer, Serialize};
use time::OffsetDateTime;

use crate::model::CheckKind;

/// Version of the result JSON schema carried in [`CheckResult::v`].
pub const RESULT_SCHEMA_VERSION: u32 = 1;

/// One run of one check from one probe.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct CheckResult {
    /// Schema version of this record ([`RESULT_SCHEMA_VERSION`]).
    pub v: u32,
    /// The check's id, unique across the whole check set.
    pub check_id: String,
    /// The vendor the check belongs to.
    pub vendor: String,
    /// The kind of check (`dns`, `cdn`, `http`, `tls`, `tcp`).
    pub kind: CheckKind,
    /// The probe that ran the check (`local` for `vantage-probe once`).
    pub probe_id: String,
    /// A random id chosen each time the probe process starts; with `seq` it makes
    /// `(probe_id, boot_id, seq)` unique, which the coordinator de-duplicates on.
    pub boot_id: String,
    /// Sequence number of this result within the probe's boot, from 0.
    pub seq: u64,
    /// When the run started (RFC 3339, UTC).
    #[serde(with = "time::serde::rfc3339")]
    pub started_at: OffsetDateTime,
    /// `ok`, `fail` (the vendor failed the check) or `probe_error` (the probe could not test).
    pub status: Status,
    /// Why the run failed, as a stable snake_case label; absent when `status = "ok"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<FailureKind>,
    /// A human-readable explanation of the failure or probe error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The run passed but took longer than the check's `slow` threshold.
    #[serde(default)]
    pub slow: bool,
    /// The first attempt failed and this result is from the one fast retry (`retry`).
    #[serde(default)]
    pub retried: bool,
    /// Per-phase timings of the run.
    pub timings: Timings,
    /// What the run observed, by kind.
    pub facts: Facts,
    /// What the probe cut to keep the result within the limits ([`crate::limits`]), if
    /// anything: `"message; assets: 64 of 1000 kept"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub truncated: Option<String>,
    /// The on-demand run ([`POST /api/v1/runs`]) this result answers, if any. A run's result
    /// is stored with its run: it never votes in consensus and never counts in SLA reports,
    /// since it is not a sample of the schedule. Absent for a scheduled run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run: Option<i64>,
}

impl CheckResult {
    /// True when the vendor passed the check.
    pub fn is_ok(&self) -> bool {
        self.status == Status::Ok
    }
}

/// The outcome of a run.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// The vendor passed every assertion.
    Ok,
    /// The vendor failed an assertion: see `failure`.
    Fail,
    /// The probe itself could not run the check; not the vendor's fault.
    ProbeError,
}

impl Status {
    /// The stable label used in JSON, metrics and tables.
    pub fn as_label(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Fail => "fail",
            Self::ProbeError => "probe_error",
        }
    }
}

macro_rules! failure_kinds {
    ($($(#[$doc:meta])* $variant:ident => $label:literal,)*) => {
        /// Why a run failed. The labels are stable: they appear in JSON, metrics and alerts.
        #[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[serde(rename_all = "snake_case")]
        pub enum FailureKind {
            $($(#[$doc])* $variant,)*
        }

        impl FailureKind {
            /// Every failure kind, in declaration order.
            pub const ALL: &'static [FailureKind] = &[$(FailureKind::$variant,)*];

            /// The stable snake_case label.
            pub fn as_label(self) -> &'static str {
                match self {
                    $(FailureKind::$variant => $label,)*
                }
            }
        }
    };
}

failure_kinds! {
    /// The run as a whole exceeded its `timeout`.
    Timeout => "timeout",
    /// A DNS server did not answer within the timeout.
    DnsTimeout => "dns_timeout",
    /// A DNS server answered SERVFAIL.
    DnsServfail => "dns_servfail",
    /// A DNS server answered REFUSED.
    DnsRefused => "dns_refused",
    /// A DNS server answered an rcode other than the expected one.
    DnsRcode => "dns_rcode",
    /// A DNS server answered without the AA flag for a zone it should be authoritative for.
    DnsNotAuthoritative => "dns_not_authoritative",
    /// The answers differ from the expected answers.
    DnsAnswerMismatch => "dns_answer_mismatch",
    /// A DNS answer could not be parsed, or did not match the query.
    DnsBadResponse => "dns_bad_response",
    /// The zone's NS set could not be discovered, or an NS name has no address.
    DnsDiscovery => "dns_discovery",
    /// The zone's servers serve different SOA serials.
    SoaSerialMismatch => "soa_serial_mismatch",
    /// The parent's NS set differs from the zone's own apex NS set.
    DelegationMismatch => "delegation_mismatch",
    /// With `dnssec`: a server's answer carries no RRSIG over it (unsigned zone, or the DO
    /// bit ignored).
    RrsigMissing => "rrsig_missing",
    /// With `dnssec`: the answer's RRSIG has expired.
    RrsigExpired => "rrsig_expired",
    /// With `dnssec`: the answer's RRSIG expires sooner than `valid_for`.
    RrsigExpiresSoon => "rrsig_expires_soon",
    /// With `dnssec`: the answer's RRSIG has an inception in the future.
    RrsigNotYetValid => "rrsig_not_yet_valid",
    /// With `dnssec`: no RRSIG over the answer verifies against the zone's DNSKEY set, as the
    /// same server serves it.
    DnssecInvalid => "dnssec_invalid",
    /// A host name in the check (URL host, edge, target) did not resolve.
    ResolveFailed => "resolve_failed",
    /// The TCP connection was refused.
    ConnectRefused => "connect_refused",
    /// The TCP connection timed out.
    ConnectTimeout => "connect_timeout",
    /// The TCP connection failed for another reason (unreachable network, reset).
    ConnectError => "connect_error",
    /// The TLS handshake failed.
    TlsHandshake => "tls_handshake",
    /// The certificate chain does not validate against the trusted roots.
    CertUntrusted => "cert_untrusted",
    /// The certificate has expired (or is not yet valid).
    CertExpired => "cert_expired",
    /// The certificate expires sooner than `valid_for`.
    CertExpiresSoon => "cert_expires_soon",
    /// The certificate does not name the host.
    CertNameMismatch => "cert_name_mismatch",
    /// The HTTP status is not the expected one.
    HttpStatus => "http_status",
    /// The HTTP exchange broke off or was malformed.
    HttpProtocol => "http_protocol",
    /// More redirects than the check allows.
    TooManyRedirects => "too_many_redirects",
    /// The body exceeded the check's byte cap.
    BodyTooLarge => "body_too_large",
    /// A header assertion failed.
    HeaderMismatch => "header_mismatch",
    /// The body did not contain, match or hold what was expected.
    BodyMismatch => "body_mismatch",
    /// The response was not compressed with an expected content encoding.
    EncodingMismatch => "encoding_mismatch",
    /// The header naming the vendor is missing or does not match.
    VendorHeaderMismatch => "vendor_header_mismatch",
    /// One or more child assets of the page failed.
    AssetErrors => "asset_errors",
    /// A timestamp in the body is older than `max_age`.
    StaleData => "stale_data",
    /// The response's caching headers (`Cache-Control`, `Age`, `Expires`, `Vary`, `ETag`,
    /// `Last-Modified`) break the check's cache policy.
    CachePolicyMismatch => "cache_policy_mismatch",
    /// After a warm-up request, the response's cache status is not an expected one (a miss
    /// where a hit was expected).
    CacheStatusMismatch => "cache_status_mismatch",
    /// The edge's cache key treats the query string otherwise than expected (a miss with
    /// another query string where it should be ignored, or a hit where it is in the key).
    CacheKeyMismatch => "cache_key_mismatch",
    /// An error page of the origin (`negative`) has another status, another cache policy,
    /// or is cached where it should not be (or the reverse).
    NegativeCacheMismatch => "negative_cache_mismatch",
    /// The negotiated HTTP or TLS version is not an expected one.
    ProtocolMismatch => "protocol_mismatch",
    /// The server only speaks a TLS version or cipher this probe refuses: it cannot be tested
    /// from here. Reported with `status = "probe_error"`.
    TlsUnsupportedProtocol => "tls_unsupported_protocol",
    /// The probe could not run the check (bad local file, no resolver, internal error).
    /// Reported with `status = "probe_error"`.
    ProbeInternal => "probe_internal",
}

impl std::fmt::Display for FailureKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_label())
    }
}

/// Per-phase timings, in milliseconds. A phase that did not happen is absent.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct Timings {
    /// Resolving host names (URL host, edge, NS names).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolve_ms: Option<f64>,
    /// Establishing the TCP connection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connect_ms: Option<f64>,
    /// The TLS handshake.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_ms: Option<f64>,
    /// From sending the request to the first byte of the response (HTTP), or the slowest
    /// server's round trip (DNS).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_byte_ms: Option<f64>,
    /// The whole run.
    pub total_ms: f64,
}

/// Converts a duration into the fractional milliseconds used in [`Timings`].
pub fn millis(d: std::time::Duration) -> f64 {
    (d.as_secs_f64() * 1_000_000.0).round() / 1000.0
}

/// What a run observed, by kind.
// One value per run, built once and serialized: boxing the large variants would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, Serialize, PartialEq)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Facts {
    /// Facts of a `dns` check.
    Dns(DnsFacts),
    /// Facts of a `cdn` or `http` check.
    Http(HttpFacts),
    /// Facts of a `tls` check.
    Tls(TlsFacts),
    /// Facts of a `tcp` check.
    Tcp(TcpFacts),
    /// Nothing was observed (the probe could not start the run).
    None,
}

thread_local! {
    /// Unknown fields met inside facts since the last [`take_ignored`]. Facts are internally
    /// tagged, so they are read whole first and their fields after: this is how those fields
    /// reach the count of the batch being decoded on this thread.
    static IGNORED: Cell<u64> = const { Cell::new(0) };
}

/// Unknown fields met inside facts on this thread since the last call, and resets the count.
pub(crate) fn take_ignored() -> u64 {
    IGNORED.with(|c| c.replace(0))
}

impl<'de> Deserialize<'de> for Facts {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        fn part<T: DeserializeOwned, E: serde::de::Error>(v: serde_json::Value) -> Result<T, E> {
            serde_ignored::deserialize(v, |_| IGNORED.with(|c| c.set(c.get() + 1)))
                .map_err(E::custom)
        }
        let mut map = serde_json::Map::<String, serde_json::Value>::deserialize(d)?;
        let kind = match map.remove("kind") {
            Some(serde_json::Value::String(k)) => k,
            _ => return Err(D::Error::missing_field("kind")),
        };
        let rest = serde_json::Value::Object(map);
        match kind.as_str() {
            "dns" => part(rest).map(Facts::Dns),
            "http" => part(rest).map(Facts::Http),
            "tls" => part(rest).map(Facts::Tls),
            "tcp" => part(rest).map(Facts::Tcp),
            "none" => {
                if let serde_json::Value::Object(m) = &rest {
                    IGNORED.with(|c| c.set(c.get() + m.len() as u64));
                }
                Ok(Facts::None)
            }
            other => Err(D::Error::unknown_variant(
                other,
                &["dns", "http", "tls", "tcp", "none"],
            )),
        }
    }
}

/// What a DNS check saw.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct DnsFacts {
    /// The name asked.
    pub qname: String,
    /// The record type asked (`A`, `AAAA`, `SOA`, …).
    pub qtype: String,
    /// One entry per server address asked; each address counts as its own target.
    pub servers: Vec<DnsServerResult>,
    /// Servers whose SOA serial is behind the newest one (with `consistent_soa`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub laggards: Vec<String>,
    /// The parent's and the zone's own NS sets (with `consistent_delegation`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delegation: Option<Delegation>,
    /// Server addresses (or NS names) past the probe's cap of servers asked per run, which
    /// were not asked (see `exec::dns::MAX_SERVERS`); 0 when every server was asked.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub servers_not_asked: u32,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// The answer of one DNS server address.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct DnsServerResult {
    /// The server as named: an NS name, or the host or address from `servers`.
    pub server: String,
    /// The address asked.
    pub address: SocketAddr,
    /// Whether this server passed.
    pub status: Status,
    /// Why this server failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<FailureKind>,
    /// Details of the failure.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The response code (`NOERROR`, `SERVFAIL`, …), when the server answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rcode: Option<String>,
    /// The AA (authoritative answer) flag.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authoritative: Option<bool>,
    /// The answer came over TCP (after a truncated UDP answer, or `transport = "tcp"`).
    #[serde(default)]
    pub tcp: bool,
    /// The answer section, normalised (lowercase names without the trailing dot).
    #[serde(default)]
    pub answers: Vec<String>,
    /// The zone's SOA serial as this server serves it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub soa_serial: Option<u32>,
    /// The RRSIG judged over this server's answer (with `dnssec`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rrsig: Option<RrsigFacts>,
    /// The server's NSID (RFC 5001): which anycast instance answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nsid: Option<String>,
    /// Round-trip time of the query, in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rtt_ms: Option<f64>,
}

/// The RRSIG a `dnssec` check judged over one server's answer: the one that lasts longest
/// among those that verify (or, when none verifies, among all of them).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct RrsigFacts {
    /// The record type the signature covers.
    pub covers: String,
    /// The signer's name (the zone).
    pub signer: String,
    /// The DNSSEC algorithm number.
    pub algorithm: u8,
    /// The key tag of the DNSKEY that made it.
    pub key_tag: u16,
    /// The signature's inception (RFC 3339).
    pub inception: String,
    /// The signature's expiration (RFC 3339).
    pub expiration: String,
    /// The signature verified against a DNSKEY the same server serves for the signer.
    pub verified: bool,
}

/// A delegation comparison.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct Delegation {
    /// NS names the parent zone delegates to, sorted.
    pub parent: Vec<String>,
    /// NS names at the zone's apex, sorted.
    pub child: Vec<String>,
}

/// Cache status normalised across CDN header conventions.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "snake_case")]
pub enum CacheStatus {
    /// Served from the edge cache.
    Hit,
    /// Fetched from origin.
    Miss,
    /// A stale or expired entry was revalidated or refreshed.
    Expired,
    /// The cache was bypassed (not cacheable, or configured so).
    Bypass,
    /// No header told.
    #[default]
    Unknown,
}

impl CacheStatus {
    /// The stable label.
    pub fn as_label(self) -> &'static str {
        match self {
            Self::Hit => "hit",
            Self::Miss => "miss",
            Self::Expired => "expired",
            Self::Bypass => "bypass",
            Self::Unknown => "unknown",
        }
    }
}

/// What an HTTP or CDN check saw.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct HttpFacts {
    /// The URL requested, including the cache-busting parameter if any.
    pub url: String,
    /// The address connected to (the edge, when `edge` is set).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote_addr: Option<SocketAddr>,
    /// The final response status.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// `HTTP/1.1` or `HTTP/2`, as negotiated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_version: Option<String>,
    /// The normalised cache status.
    pub cache: CacheStatus,
    /// The edge PoP, when a header names it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pop: Option<String>,
    /// The CDN that served the object, as told by its headers (`fastly`, `cloudflare`, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub served_by: Option<String>,
    /// The value of the configured vendor header.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vendor_header: Option<String>,
    /// The response's `Content-Encoding`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_encoding: Option<String>,
    /// The `Age` header, in seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub age: Option<u64>,
    /// The `Cache-Control` header (several joined with `, `).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_control: Option<String>,
    /// The `Expires` header.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires: Option<String>,
    /// The `Vary` header (several joined with `, `).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vary: Option<String>,
    /// The `ETag` header.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub etag: Option<String>,
    /// The `Last-Modified` header.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_modified: Option<String>,
    /// Body bytes received (on the wire, before decompression).
    pub bytes: u64,
    /// Redirects followed.
    #[serde(default)]
    pub redirects: u32,
    /// The TLS session, for https URLs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsFacts>,
    /// Child assets fetched (with `assets = true`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub assets: Vec<AssetResult>,
    /// The requests made besides the measured one, for the content-profile assertions
    /// (`expect.cache`, `expect.cache_key`, `expect.negative`), in the order they were made.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub extra_requests: Vec<ExtraRequest>,
}

/// Why a run made a request besides the measured one.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "snake_case")]
pub enum RequestPurpose {
    /// The same URL just before the measured request, so that it may be cached
    /// (`expect.cache`).
    WarmUp,
    /// The URL with another query string, after the measured request (`expect.cache_key`).
    CacheKey,
    /// An error page of the same origin (`expect.negative`).
    Negative,
    /// The error page again, to see whether the edge cached it (`negative.cached`).
    NegativeRepeat,
}

impl RequestPurpose {
    /// The stable label.
    pub fn as_label(self) -> &'static str {
        match self {
            Self::WarmUp => "warm_up",
            Self::CacheKey => "cache_key",
            Self::Negative => "negative",
            Self::NegativeRepeat => "negative_repeat",
        }
    }
}

/// What one extra request of a run saw.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ExtraRequest {
    /// Why it was made.
    pub purpose: RequestPurpose,
    /// The URL requested.
    pub url: String,
    /// The HTTP status, when a response came.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// The normalised cache status.
    #[serde(default)]
    pub cache: CacheStatus,
    /// The `Age` header, in seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub age: Option<u64>,
    /// The `Cache-Control` header.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_control: Option<String>,
    /// Why the request got no response.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<FailureKind>,
    /// Request time in milliseconds, redirects included.
    pub total_ms: f64,
}

/// One child asset of a page.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct AssetResult {
    /// The absolute URL of the asset.
    pub url: String,
    /// The HTTP status, when a response came.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// Why the asset failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<FailureKind>,
    /// Fetch time in milliseconds.
    pub total_ms: f64,
}

/// A TLS session and the server's leaf certificate.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct TlsFacts {
    /// The address connected to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote_addr: Option<SocketAddr>,
    /// The server name sent in SNI and checked against the certificate.
    pub server_name: String,
    /// Negotiated protocol (`TLSv1_3`, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<String>,
    /// Negotiated cipher suite.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cipher: Option<String>,
    /// Negotiated ALPN protocol.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alpn: Option<String>,
    /// The leaf certificate's subject.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// The leaf certificate's issuer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer: Option<String>,
    /// The leaf certificate's notAfter (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_after: Option<String>,
    /// Whole days until notAfter; negative once expired.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub days_left: Option<i64>,
}

/// What a TCP check saw.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct TcpFacts {
    /// The address connected to (or tried last).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote_addr: Option<SocketAddr>,
}
