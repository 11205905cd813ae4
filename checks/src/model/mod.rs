//! The validated check set: what probes run and the coordinator judges.
//!
//! These types are produced only by [`crate::config::validate`]; every duration is parsed,
//! every regex compiled and every default applied, so nothing re-validates at run time.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::{Name, RecordType};
use regex::Regex;
use serde::{Deserialize, Serialize};

mod serde_as;

/// A check's `ca` file as read, kept for as long as this loaded config lives: the first run
/// reads and parses it (with the system roots), every later run of the check, and every clone
/// of it, reuses the result, and a newly loaded config starts empty, so the file is read once
/// per config load, never per run. Not part of the wire form.
#[derive(Clone, Default)]
pub struct CaCache(pub(crate) Arc<OnceLock<Result<Arc<rustls::RootCertStore>, String>>>);

impl std::fmt::Debug for CaCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = match self.0.get() {
            None => "not read",
            Some(Ok(_)) => "read",
            Some(Err(_)) => "unreadable",
        };
        f.write_str(state)
    }
}

/// Every vendor and check loaded from one or more files.
#[derive(Clone, Debug)]
pub struct CheckSet {
    /// Vendors, in file order.
    pub vendors: Vec<Vendor>,
    /// Checks, in file order.
    pub checks: Vec<Check>,
}

impl CheckSet {
    /// The vendor with this id.
    pub fn vendor(&self, id: &str) -> Option<&Vendor> {
        self.vendors.iter().find(|v| v.id == id)
    }

    /// The check with this id.
    pub fn check(&self, id: &str) -> Option<&Check> {
        self.checks.iter().find(|c| c.id == id)
    }
}

/// A vendor watched by Vantage.
#[derive(Clone, Debug)]
pub struct Vendor {
    /// Stable id (`acme-dns`).
    pub id: String,
    /// Display name.
    pub name: String,
    /// The contract SLA the vendor is held to.
    pub sla: Sla,
}

/// Contract SLA figures.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Sla {
    /// Availability objective as a fraction (0.9995 for `"99.95%"`).
    pub availability: Option<f64>,
    /// p50 latency objective.
    pub latency_p50: Option<Duration>,
    /// p95 latency objective.
    pub latency_p95: Option<Duration>,
    /// p99 latency objective.
    pub latency_p99: Option<Duration>,
}

/// The kinds of check.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckKind {
    /// DNS, straight to authoritative servers.
    Dns,
    /// HTTP through a CDN edge, looking at cache status, encoding and the vendor header.
    Cdn,
    /// Plain HTTP(S) endpoint.
    Http,
    /// TLS handshake and certificate.
    Tls,
    /// TCP connect.
    Tcp,
}

impl CheckKind {
    /// Every kind.
    pub const ALL: [CheckKind; 5] = [Self::Dns, Self::Cdn, Self::Http, Self::Tls, Self::Tcp];

    /// The stable label (`dns`, `cdn`, …).
    pub fn as_label(self) -> &'static str {
        match self {
            Self::Dns => "dns",
            Self::Cdn => "cdn",
            Self::Http => "http",
            Self::Tls => "tls",
            Self::Tcp => "tcp",
        }
    }
}

/// Which plane of the vendor a check watches; it decides which vendor state a failure means.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// The service itself (DNS answers, CDN objects): failures mean `hard_down`.
    #[default]
    Data,
    /// The control plane or portal: failures mean `api_down`.
    Control,
    /// The vendor's reporting or log delivery: failures mean `limited_visibility`.
    Telemetry,
}

impl Role {
    /// The stable label.
    pub fn as_label(self) -> &'static str {
        match self {
            Self::Data => "data",
            Self::Control => "control",
            Self::Telemetry => "telemetry",
        }
    }
}

/// A share of probes or a count of them.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Threshold {
    /// A fraction in `(0, 1]` of the fresh probes.
    Share(f64),
    /// A number of probes.
    Count(u32),
}

impl Threshold {
    /// True when `votes` out of `fresh` reaches this threshold.
    pub fn reached(self, votes: u32, fresh: u32) -> bool {
        if votes == 0 {
            return false;
        }
        match self {
            // Compare in integers so 1 of 2 reaches 50% exactly.
            Self::Share(share) => f64::from(votes) >= share * f64::from(fresh) - 1e-9,
            Self::Count(n) => votes >= n,
        }
    }
}

/// Scheduling and consensus settings; `[defaults]` and every check may set them.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// How often each probe runs the check.
    #[serde(with = "serde_as::duration")]
    pub interval: Duration,
    /// Hard timeout of one run.
    #[serde(with = "serde_as::duration")]
    pub timeout: Duration,
    /// Consensus window: a result is fresh if it started within it.
    #[serde(with = "serde_as::duration")]
    pub window: Duration,
    /// Fewest fresh probes before any global verdict.
    pub quorum: u32,
    /// Share or count of fresh probes that must vote failing.
    pub failing: Threshold,
    /// A global verdict needs failing probes in at least this many regions.
    pub regions: u32,
    /// Fewest fresh probes in a region before a regional verdict.
    pub region_quorum: u32,
    /// A probe votes failing after this many failed runs in a row.
    pub confirm: u32,
    /// A verdict must hold this long to change the state (`for`).
    #[serde(with = "serde_as::duration")]
    pub hold_for: Duration,
    /// A failing verdict must be gone this long to clear.
    #[serde(with = "serde_as::duration")]
    pub recover_for: Duration,
    /// Pause before the one fast retry of a failed run; `None` when `retry = "off"`.
    #[serde(with = "serde_as::opt_duration")]
    pub retry: Option<Duration>,
    /// Cadence while the check is failing anywhere.
    #[serde(with = "serde_as::duration")]
    pub failing_interval: Duration,
    /// A passing run slower than this votes slow.
    #[serde(with = "serde_as::opt_duration")]
    pub slow: Option<Duration>,
    /// A vendor that fails again within this long of clearing is still in the same incident;
    /// `None` is the default, three times `recover_for` ([`Settings::flap_window`]).
    /// Left off the wire when unset, so that probes which predate it still take the config.
    #[serde(
        default,
        with = "serde_as::opt_duration",
        skip_serializing_if = "Option::is_none"
    )]
    pub flap_window: Option<Duration>,
    /// Lets a single probe's votes make a failing or slow verdict (off by default: one probe
    /// alone never declares an outage). Only for regions that have one probe, and it risks
    /// paging on that probe's own network trouble.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub lone_probe_pages: bool,
}

impl Settings {
    /// How long after clearing a new failure re-opens the same incident: `flap_window` when
    /// set, else three times `recover_for`.
    pub fn flap_window(&self) -> Duration {
        self.flap_window.unwrap_or(self.recover_for * 3)
    }

    /// The fewest distinct probes whose votes can make a failing or slow verdict: two, unless
    /// `lone_probe_pages` is set.
    pub fn min_voters(&self) -> u32 {
        if self.lone_probe_pages { 1 } else { 2 }
    }
}

impl Default for Settings {
    fn default() -> Self {
        let interval = Duration::from_secs(10);
        Self {
            interval,
            timeout: Duration::from_secs(4),
            window: Duration::from_secs(60),
            quorum: 3,
            failing: Threshold::Share(0.5),
            regions: 2,
            region_quorum: 2,
            confirm: 1,
            hold_for: Duration::from_secs(10),
            recover_for: Duration::from_secs(30),
            retry: Some(Duration::from_millis(500)),
            failing_interval: interval / 3,
            slow: None,
            flap_window: None,
            lone_probe_pages: false,
        }
    }
}

/// Which probes run a check. Empty means every probe.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProbeSelector {
    /// Only probes in one of these regions.
    pub regions: Vec<String>,
    /// Only probes carrying all of these labels.
    pub labels: BTreeMap<String, String>,
}

impl ProbeSelector {
    /// True when a probe with this region and these labels should run the check.
    pub fn selects(&self, region: &str, labels: &BTreeMap<String, String>) -> bool {
        (self.regions.is_empty() || self.regions.iter().any(|r| r == region))
            && self.labels.iter().all(|(k, v)| labels.get(k) == Some(v))
    }
}

/// One validated check.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Check {
    /// Unique id across the check set.
    pub id: String,
    /// The vendor's id.
    pub vendor: String,
    /// What plane of the vendor it watches.
    pub role: Role,
    /// Free text for people.
    pub description: Option<String>,
    /// Which probes run it.
    pub probes: ProbeSelector,
    /// The named regression suites it belongs to (`suite` or `suites`), sorted, without
    /// duplicates; an on-demand run of a suite runs these checks. Left off the wire when
    /// empty, so a check without suites reads the same to a probe that predates them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub suites: Vec<String>,
    /// Runs only in on-demand runs, never on a probe's schedule (negative tests, heavy
    /// checks). Left off the wire when `false`; a probe that predates the field refuses a
    /// config holding it (and keeps the one it runs) rather than run the check on its schedule.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub on_demand: bool,
    /// Effective settings: the check's own over `[defaults]` over built-in defaults.
    pub settings: Settings,
    /// What to run.
    pub spec: CheckSpec,
}

impl Check {
    /// The check's kind.
    pub fn kind(&self) -> CheckKind {
        match &self.spec {
            CheckSpec::Dns(_) => CheckKind::Dns,
            CheckSpec::Http(h) if h.cdn => CheckKind::Cdn,
            CheckSpec::Http(_) => CheckKind::Http,
            CheckSpec::Tls(_) => CheckKind::Tls,
            CheckSpec::Tcp(_) => CheckKind::Tcp,
        }
    }

    /// True when the check belongs to the suite `name`.
    pub fn in_suite(&self, name: &str) -> bool {
        self.suites.iter().any(|s| s == name)
    }
}

/// The kind-specific part of a check. The larger kinds are boxed: a probe keeps every check
/// it runs in memory, and a `Check` holding the largest kind inline was 768 bytes.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckSpec {
    /// `kind = "dns"`.
    Dns(Box<DnsCheck>),
    /// `kind = "cdn"` or `kind = "http"`.
    Http(Box<HttpCheck>),
    /// `kind = "tls"`.
    Tls(Box<TlsCheck>),
    /// `kind = "tcp"`.
    Tcp(TcpCheck),
}

/// A host (name or address) and a port.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostPort {
    /// A DNS name or an IP address literal (without brackets).
    pub host: String,
    /// The port.
    pub port: u16,
}

impl HostPort {
    /// The host as an IP address, when it is a literal.
    pub fn ip(&self) -> Option<IpAddr> {
        self.host.parse().ok()
    }

    /// The socket address, when the host is a literal.
    pub fn socket_addr(&self) -> Option<SocketAddr> {
        self.ip().map(|ip| SocketAddr::new(ip, self.port))
    }
}

impl std::fmt::Display for HostPort {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

/// Which servers a DNS check asks.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DnsServers {
    /// Discover the zone's NS set and ask every address of every NS name.
    Authoritative,
    /// Ask these servers.
    List(Vec<HostPort>),
}

/// Transport for DNS queries.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DnsTransport {
    /// UDP, retried over TCP when the answer is truncated.
    #[default]
    Udp,
    /// TCP only.
    Tcp,
}

/// How the answer section is checked.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AnswerExpect {
    /// Any answers (or none) pass.
    Any,
    /// Exactly this set (normalised, order ignored).
    Exact(Vec<String>),
    /// At least these answers.
    Contains(Vec<String>),
    /// At least one answer, and every answer matches.
    Matches(#[serde(with = "serde_as::regex")] Regex),
}

/// A `kind = "dns"` check.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DnsCheck {
    /// The zone (needed for `servers = "authoritative"`, `consistent_soa` and delegation).
    pub zone: Option<Name>,
    /// The name asked.
    pub query_name: Name,
    /// The record type asked.
    pub query_type: RecordType,
    /// Which servers to ask.
    pub servers: DnsServers,
    /// Resolver for discovering the NS set and for server host names; `None` for the
    /// system's (`/etc/resolv.conf`).
    pub resolver: Option<SocketAddr>,
    /// Parent zone servers for `consistent_delegation`; empty to discover them.
    pub parent_servers: Vec<HostPort>,
    /// UDP with TCP fallback, or TCP.
    pub transport: DnsTransport,
    /// Request NSID (RFC 5001).
    pub nsid: bool,
    /// Expected rcode.
    pub rcode: ResponseCode,
    /// Required AA flag, when set.
    pub authoritative: Option<bool>,
    /// Expected answers.
    pub answers: AnswerExpect,
    /// Every server must serve the same SOA serial.
    pub consistent_soa: bool,
    /// The parent's NS set must equal the apex NS set.
    pub consistent_delegation: bool,
    /// Ask with the DO bit and require a valid RRSIG over every server's answer. Left off
    /// the wire when unset, so that probes which predate it still take the config.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dnssec: Option<DnssecExpect>,
}

/// `dnssec = { valid_for = "7d" }` on a DNS check.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DnssecExpect {
    /// `rrsig_expires_soon` when the answer's RRSIG expires within this.
    #[serde(with = "serde_as::duration")]
    pub valid_for: Duration,
}

/// Expected HTTP status.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StatusExpect {
    /// Any 2xx.
    Success,
    /// One of these.
    OneOf(Vec<u16>),
}

impl StatusExpect {
    /// True when `status` is expected.
    pub fn accepts(&self, status: u16) -> bool {
        match self {
            Self::Success => (200..300).contains(&status),
            Self::OneOf(list) => list.contains(&status),
        }
    }
}

/// Content encodings a CDN check offers and accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Encoding {
    /// Brotli.
    Br,
    /// Gzip.
    Gzip,
    /// Zstandard.
    Zstd,
    /// Deflate.
    Deflate,
    /// Not compressed.
    Identity,
}

impl Encoding {
    /// The token used in `Accept-Encoding` and `Content-Encoding`.
    pub fn as_label(self) -> &'static str {
        match self {
            Self::Br => "br",
            Self::Gzip => "gzip",
            Self::Zstd => "zstd",
            Self::Deflate => "deflate",
            Self::Identity => "identity",
        }
    }
}

/// A JSON pointer assertion.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JsonExpect {
    /// RFC 6901 pointer (`/status`).
    pub pointer: String,
    /// The value it must equal; `None` means it must merely exist.
    pub equals: Option<serde_json::Value>,
}

/// A freshness assertion: a timestamp in the body no older than `max_age`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FreshExpect {
    /// RFC 6901 pointer to an RFC 3339 string or Unix seconds.
    pub pointer: String,
    /// Oldest acceptable age.
    #[serde(with = "serde_as::duration")]
    pub max_age: Duration,
}

/// The header naming the vendor.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VendorHeader {
    /// Header name (lowercase).
    #[serde(with = "serde_as::name")]
    pub name: http::HeaderName,
    /// Pattern the value must match.
    #[serde(with = "serde_as::regex")]
    pub matches: Regex,
}

/// HTTP request method for a check.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HttpMethod {
    /// GET.
    #[default]
    Get,
    /// HEAD.
    Head,
}

/// A `kind = "cdn"` or `kind = "http"` check.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpCheck {
    /// `kind = "cdn"`: offer br and gzip, normalise cache status, check the vendor header.
    pub cdn: bool,
    /// The URL; its host is the Host header and the TLS SNI.
    pub url: url::Url,
    /// Connect here instead of the URL's host, keeping Host and SNI.
    pub edge: Option<HostPort>,
    /// Request method.
    pub method: HttpMethod,
    /// Extra request headers.
    #[serde(with = "serde_as::headers")]
    pub headers: Vec<(http::HeaderName, http::HeaderValue)>,
    /// Add a unique query parameter per run so the edge must go to origin.
    pub cache_bust: bool,
    /// Fetch the page's scripts, stylesheets and images too.
    pub assets: bool,
    /// At most this many child assets.
    pub max_assets: usize,
    /// Redirects followed at most.
    pub max_redirects: u32,
    /// Body bytes read at most.
    pub max_body_bytes: u64,
    /// The DNS server (`ip:port`) that resolves the host names of this check (the URL's, the
    /// edge's, redirects' and assets'); the system's configuration (`/etc/resolv.conf`) when
    /// absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolver: Option<SocketAddr>,
    /// PEM file of extra CA certificates to trust, besides the system roots.
    pub ca_file: Option<PathBuf>,
    /// `ca_file` as read, shared by the runs of this loaded config.
    #[serde(skip)]
    pub ca_cache: CaCache,
    /// Expected status.
    pub status: StatusExpect,
    /// Response headers that must be present and match.
    #[serde(with = "serde_as::header_patterns")]
    pub header_matches: Vec<(http::HeaderName, Regex)>,
    /// Body must contain this text.
    pub body_contains: Option<String>,
    /// Body must match this pattern.
    #[serde(with = "serde_as::opt_regex")]
    pub body_matches: Option<Regex>,
    /// JSON body assertion.
    pub json: Option<JsonExpect>,
    /// Freshness assertion.
    pub fresh: Option<FreshExpect>,
    /// Accepted content encodings; empty means any. Also what `Accept-Encoding` offers.
    pub encoding: Vec<Encoding>,
    /// The header that names the vendor.
    pub vendor_header: Option<VendorHeader>,
    /// The `[[profile]]` whose `expect` was merged under the check's own, for people reading
    /// the config. Left off the wire when unset, so that probes which predate it still take
    /// the config.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<String>,
    /// The content-profile assertions: cache policy, protocol, and the cache's behaviour over
    /// several requests. Left off the wire when unset, as `profile`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cdn_expect: Option<Box<CdnExpect>>,
}

/// Bounds on a duration that must be present (a `Cache-Control` max-age, `Age`, how far
/// `Expires` is ahead): `{ min = "1h", max = "30d" }`, either bound optional.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Bounds {
    /// The least value accepted.
    #[serde(
        default,
        with = "serde_as::opt_duration",
        skip_serializing_if = "Option::is_none"
    )]
    pub min: Option<Duration>,
    /// The greatest value accepted.
    #[serde(
        default,
        with = "serde_as::opt_duration",
        skip_serializing_if = "Option::is_none"
    )]
    pub max: Option<Duration>,
}

impl Bounds {
    /// True when `d` is within both bounds.
    pub fn contains(&self, d: Duration) -> bool {
        self.min.is_none_or(|min| d >= min) && self.max.is_none_or(|max| d <= max)
    }
}

/// `cache_control = { … }`: directives of the response's `Cache-Control`. A range requires
/// the directive with a value within it; `true` requires a directive, `false` forbids it;
/// an absent key asserts nothing.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CacheControlExpect {
    /// `max-age`, present and within these bounds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_age: Option<Bounds>,
    /// `s-maxage`, present and within these bounds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub s_maxage: Option<Bounds>,
    /// `no-store` present (`true`) or absent (`false`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub no_store: Option<bool>,
    /// `no-cache` present or absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub no_cache: Option<bool>,
    /// `private` present or absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub private: Option<bool>,
    /// `public` present or absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public: Option<bool>,
    /// `immutable` present or absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub immutable: Option<bool>,
    /// `must-revalidate` present or absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub must_revalidate: Option<bool>,
}

impl CacheControlExpect {
    /// True when it asserts nothing.
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }

    /// These directives over `base`'s, directive by directive.
    pub fn over(self, base: &Self) -> Self {
        Self {
            max_age: self.max_age.or_else(|| base.max_age.clone()),
            s_maxage: self.s_maxage.or_else(|| base.s_maxage.clone()),
            no_store: self.no_store.or(base.no_store),
            no_cache: self.no_cache.or(base.no_cache),
            private: self.private.or(base.private),
            public: self.public.or(base.public),
            immutable: self.immutable.or(base.immutable),
            must_revalidate: self.must_revalidate.or(base.must_revalidate),
        }
    }

    /// The flag directives as (Cache-Control token, expectation).
    pub fn flags(&self) -> [(&'static str, Option<bool>); 6] {
        [
            ("no-store", self.no_store),
            ("no-cache", self.no_cache),
            ("private", self.private),
            ("public", self.public),
            ("immutable", self.immutable),
            ("must-revalidate", self.must_revalidate),
        ]
    }
}

/// A negotiated HTTP version.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum HttpVersion {
    /// HTTP/1.0.
    #[serde(rename = "1.0")]
    Http10,
    /// HTTP/1.1.
    #[serde(rename = "1.1")]
    Http11,
    /// HTTP/2.
    #[serde(rename = "2")]
    Http2,
}

impl HttpVersion {
    /// Every version, as written in a check file.
    pub const ALL: [HttpVersion; 3] = [Self::Http10, Self::Http11, Self::Http2];

    /// As written in a check file: `1.0`, `1.1`, `2`.
    pub fn as_label(self) -> &'static str {
        match self {
            Self::Http10 => "1.0",
            Self::Http11 => "1.1",
            Self::Http2 => "2",
        }
    }

    /// As the result's `http_version` fact reads: `HTTP/1.0`, `HTTP/1.1`, `HTTP/2`.
    pub fn as_fact(self) -> &'static str {
        match self {
            Self::Http10 => "HTTP/1.0",
            Self::Http11 => "HTTP/1.1",
            Self::Http2 => "HTTP/2",
        }
    }
}

/// A negotiated TLS version (the probe speaks no older one).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum TlsVersion {
    /// TLS 1.2.
    #[serde(rename = "1.2")]
    Tls12,
    /// TLS 1.3.
    #[serde(rename = "1.3")]
    Tls13,
}

impl TlsVersion {
    /// Every version, as written in a check file.
    pub const ALL: [TlsVersion; 2] = [Self::Tls12, Self::Tls13];

    /// As written in a check file: `1.2`, `1.3`.
    pub fn as_label(self) -> &'static str {
        match self {
            Self::Tls12 => "1.2",
            Self::Tls13 => "1.3",
        }
    }

    /// As the TLS facts' `protocol` reads (rustls' names): `TLSv1_2`, `TLSv1_3`.
    pub fn as_fact(self) -> &'static str {
        match self {
            Self::Tls12 => "TLSv1_2",
            Self::Tls13 => "TLSv1_3",
        }
    }
}

/// Whether the edge's cache key holds the query string.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum QueryKey {
    /// The query string is ignored: the URL with another query string is a hit.
    Ignored,
    /// The query string is part of the key: the URL with another query string is a miss.
    Included,
}

impl QueryKey {
    /// As written in a check file.
    pub fn as_label(self) -> &'static str {
        match self {
            Self::Ignored => "ignored",
            Self::Included => "included",
        }
    }
}

/// `negative = { … }`: what an error page of the same origin looks like, and whether the
/// edge caches it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NegativeExpect {
    /// The path (and query) requested, on the check URL's origin; `None`: a new random name
    /// every run, beside the check URL's last segment and with its extension
    /// (`/img/vantage-negative-<random>.png` for `/img/logo.png`).
    pub path: Option<String>,
    /// Statuses the error page may have.
    pub status: Vec<u16>,
    /// The error page's `Cache-Control`.
    #[serde(default, skip_serializing_if = "CacheControlExpect::is_empty")]
    pub cache_control: CacheControlExpect,
    /// A second request for it must be a hit (`true`) or must not (`false`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cached: Option<bool>,
}

/// The content-profile assertions of an HTTP or CDN check: its response's caching headers
/// and protocol, and what further requests see (after a warm-up, with another query string,
/// for an error page).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CdnExpect {
    /// `Cache-Control` directives.
    #[serde(default, skip_serializing_if = "CacheControlExpect::is_empty")]
    pub cache_control: CacheControlExpect,
    /// `Age` present, within these bounds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub age: Option<Bounds>,
    /// Header names (lowercase) that `Vary` must list.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub vary: Vec<String>,
    /// `Expires` present and in the future of the response's `Date`, by these bounds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires: Option<Bounds>,
    /// `ETag` present (`true`) or absent (`false`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub etag: Option<bool>,
    /// `Last-Modified` present or absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_modified: Option<bool>,
    /// Accepted HTTP versions; empty: any.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub http_version: Vec<HttpVersion>,
    /// Accepted TLS versions; empty: any.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tls_version: Vec<TlsVersion>,
    /// Accepted cache statuses of the response to a request made right after a warm-up
    /// request of the same URL; empty: no warm-up, any status.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cache: Vec<crate::result::CacheStatus>,
    /// The cache key's treatment of the query string.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_key: Option<QueryKey>,
    /// An error page of the same origin.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub negative: Option<NegativeExpect>,
}

impl CdnExpect {
    /// True when it asserts nothing.
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

/// A `kind = "tls"` check.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsCheck {
    /// Where to connect.
    pub target: HostPort,
    /// The DNS server (`ip:port`) that resolves the host names of this check's target; the system's configuration (`/etc/resolv.conf`) when
    /// absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolver: Option<SocketAddr>,
    /// Name sent in SNI and matched against the certificate.
    pub server_name: String,
    /// PEM file of extra CA certificates to trust, besides the system roots.
    pub ca_file: Option<PathBuf>,
    /// `ca_file` as read, shared by the runs of this loaded config.
    #[serde(skip)]
    pub ca_cache: CaCache,
    /// `cert_expires_soon` when the certificate expires within this.
    #[serde(with = "serde_as::duration")]
    pub valid_for: Duration,
}

/// A `kind = "tcp"` check.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TcpCheck {
    /// Where to connect.
    pub target: HostPort,
    /// The DNS server (`ip:port`) that resolves the host names of this check's target; the system's configuration (`/etc/resolv.conf`) when
    /// absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolver: Option<SocketAddr>,
}
