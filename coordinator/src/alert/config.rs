//! `[[receiver]]`, `[[route]]` and `[[silence]]` in coordinator.toml: loose types as written,
//! validated into [`Alerting`].

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use serde::Deserialize;

use crate::store::state::SilenceRow;

pub use vantage_probe::settings::Secret;

/// A receiver as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ReceiverFile {
    name: String,
    kind: ReceiverKind,
    url: Option<String>,
    url_file: Option<String>,
    url_env: Option<String>,
    routing_key_file: Option<String>,
    routing_key_env: Option<String>,
    timeout: Option<String>,
    resend: Option<String>,
    max_attempts: Option<u32>,
}

/// A route as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RouteFile {
    receivers: Vec<String>,
    #[serde(default)]
    vendors: Vec<String>,
    #[serde(default)]
    states: Vec<String>,
    #[serde(default)]
    regions: Vec<String>,
    #[serde(default)]
    labels: BTreeMap<String, String>,
    repeat: Option<String>,
}

/// A silence as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SilenceFile {
    vendor: Option<String>,
    check: Option<String>,
    region: Option<String>,
    starts: String,
    ends: String,
    comment: String,
}

/// The kinds of receiver.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReceiverKind {
    /// Generic JSON webhook: the alert as JSON.
    Webhook,
    /// Slack incoming webhook.
    Slack,
    /// PagerDuty Events API v2.
    Pagerduty,
    /// Prometheus Alertmanager (`POST /api/v2/alerts`).
    Alertmanager,
}

impl ReceiverKind {
    /// The stable label.
    pub fn as_label(self) -> &'static str {
        match self {
            Self::Webhook => "webhook",
            Self::Slack => "slack",
            Self::Pagerduty => "pagerduty",
            Self::Alertmanager => "alertmanager",
        }
    }
}

/// A validated receiver.
#[derive(Clone, Debug, PartialEq)]
pub struct Receiver {
    /// Its name, used in routes, logs and metrics.
    pub name: String,
    /// Its kind.
    pub kind: ReceiverKind,
    /// Where to send (a secret: Slack and webhook URLs carry credentials).
    pub url: Secret,
    /// PagerDuty routing key.
    pub routing_key: Option<Secret>,
    /// Per-attempt timeout.
    pub timeout: Duration,
    /// Alertmanager: re-send firing alerts this often.
    pub resend: Duration,
    /// Attempts at one alert before it is given up (dead-lettered): with the backoff capped
    /// at 5 minutes, the default 50 keeps trying for about 3.5 hours.
    pub max_attempts: u32,
}

/// Attempts at one alert before it is dead-lettered, unless a receiver says otherwise.
pub const DEFAULT_MAX_ATTEMPTS: u32 = 50;

/// A validated route: which incidents go to which receivers.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Route {
    /// Receiver names.
    pub receivers: Vec<String>,
    /// Only these vendors (any when empty).
    pub vendors: Vec<String>,
    /// Only these states (any when empty); probe alerts have state `probe_quarantined`.
    pub states: Vec<super::IncidentState>,
    /// Only incidents touching these regions (a global incident touches every region).
    pub regions: Vec<String>,
    /// Only alerts carrying these labels.
    pub labels: BTreeMap<String, String>,
    /// Remind this often while the incident stays open.
    pub repeat: Option<Duration>,
}

/// Receivers, routes and configured silences.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Alerting {
    /// Receivers by name.
    pub receivers: Vec<Receiver>,
    /// Routes in file order; every matching route applies.
    pub routes: Vec<Route>,
    /// Silences from the file.
    pub silences: Vec<SilenceRow>,
}

impl Alerting {
    /// The silences from the file, all or only those in force at `at_ms`.
    pub fn silences_at(&self, at_ms: Option<i64>) -> impl Iterator<Item = &SilenceRow> {
        self.silences
            .iter()
            .filter(move |s| at_ms.is_none_or(|t| s.starts_ms <= t && t < s.ends_ms))
    }

    /// The receiver with this name.
    pub fn receiver(&self, name: &str) -> Option<&Receiver> {
        self.receivers.iter().find(|r| r.name == name)
    }
}

pub(crate) fn secret(
    inline: Option<String>,
    file: Option<String>,
    env: Option<String>,
    key: &str,
    base: &Path,
) -> Result<Option<Secret>, String> {
    match (inline, file, env) {
        (None, None, None) => Ok(None),
        (Some(v), None, None) => Ok(Some(Secret::new(v))),
        (None, Some(f), None) => {
            let path = base.join(f);
            let text = std::fs::read_to_string(&path)
                .map_err(|e| format!("cannot read {key}_file `{}`: {e}", path.display()))?;
            Ok(Some(Secret::new(text.trim())))
        }
        (None, None, Some(var)) => std::env::var(&var)
            .map(|v| Some(Secret::new(v.trim())))
            .map_err(|_| format!("{key}_env names `{var}`, which is not set")),
        _ => Err(format!("set only one of {key}, {key}_file and {key}_env")),
    }
}

fn duration(v: Option<String>, key: &str, default: Duration) -> Result<Duration, String> {
    match v {
        None => Ok(default),
        Some(s) => vantage_checks::duration::parse(&s).map_err(|why| {
            format!("{key} must be a duration like \"30s\"; got {s:?}, which {why}")
        }),
    }
}

fn instant(s: &str, key: &str) -> Result<i64, String> {
    time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
        .map(|t| (t.unix_timestamp_nanos() / 1_000_000) as i64)
        .map_err(|e| {
            format!("{key} must be an RFC 3339 time like \"2026-11-23T22:00:00Z\"; got {s:?} ({e})")
        })
}

/// Validates receivers, routes and silences; every problem is reported.
pub(crate) fn validate(
    receivers: Vec<ReceiverFile>,
    routes: Vec<RouteFile>,
    silences: Vec<SilenceFile>,
    base: &Path,
) -> Result<Alerting, Vec<String>> {
    let mut errors = Vec::new();
    let mut out = Alerting::default();
    for (i, r) in receivers.into_iter().enumerate() {
        let at = format!("receiver[{i}] `{}`", r.name);
        if r.name.is_empty() || out.receiver(&r.name).is_some() {
            errors.push(format!("{at}: receiver names must be unique and not empty"));
            continue;
        }
        let url = match secret(r.url, r.url_file, r.url_env, "url", base) {
            Ok(Some(u)) => u,
            Ok(None) => {
                let example = match r.kind {
                    ReceiverKind::Pagerduty => "url = \"https://events.pagerduty.com/v2/enqueue\"",
                    ReceiverKind::Alertmanager => "url = \"http://127.0.0.1:9093\"",
                    _ => "url_file = \"/etc/vantage/hook-url\"",
                };
                if r.kind == ReceiverKind::Pagerduty {
                    Secret::new("https://events.pagerduty.com/v2/enqueue")
                } else {
                    errors.push(format!("{at}: needs a URL, e.g. {example}"));
                    continue;
                }
            }
            Err(e) => {
                errors.push(format!("{at}: {e}"));
                continue;
            }
        };
        if let Err(e) = url
            .expose()
            .parse::<http::Uri>()
            .map_err(|e| e.to_string())
            .and_then(|u| match u.scheme_str() {
                Some("http" | "https") => Ok(()),
                _ => Err("the URL must start with http:// or https://".to_owned()),
            })
        {
            // Never echo the URL: it may carry a token.
            errors.push(format!("{at}: the URL is not valid: {e}"));
            continue;
        }
        let routing_key = match secret(
            None,
            r.routing_key_file,
            r.routing_key_env,
            "routing_key",
            base,
        ) {
            Ok(k) => k,
            Err(e) => {
                errors.push(format!("{at}: {e}"));
                continue;
            }
        };
        if r.kind == ReceiverKind::Pagerduty && routing_key.is_none() {
            errors.push(format!(
                "{at}: a pagerduty receiver needs routing_key_file or routing_key_env"
            ));
            continue;
        }
        let timeout = duration(r.timeout, "timeout", Duration::from_secs(10));
        let resend = duration(r.resend, "resend", Duration::from_secs(60));
        let max_attempts = match r.max_attempts {
            Some(0) => {
                errors.push(format!(
                    "{at}: max_attempts must be at least 1, e.g. `max_attempts = {DEFAULT_MAX_ATTEMPTS}`"
                ));
                continue;
            }
            Some(n) => n,
            None => DEFAULT_MAX_ATTEMPTS,
        };
        match (timeout, resend) {
            (Ok(timeout), Ok(resend)) => out.receivers.push(Receiver {
                name: r.name,
                kind: r.kind,
                url,
                routing_key,
                timeout,
                resend,
                max_attempts,
            }),
            (Err(e), _) | (_, Err(e)) => errors.push(format!("{at}: {e}")),
        }
    }
    for (i, r) in routes.into_iter().enumerate() {
        let at = format!("route[{i}]");
        if r.receivers.is_empty() {
            errors.push(format!(
                "{at}: receivers is empty, e.g. receivers = [\"oncall\"]"
            ));
        }
        for name in &r.receivers {
            if out.receiver(name).is_none() {
                errors.push(format!("{at}: no receiver named `{name}`"));
            }
        }
        let mut states = Vec::with_capacity(r.states.len());
        for s in &r.states {
            match super::IncidentState::from_label(s) {
                Some(state) => states.push(state),
                None => errors.push(format!(
                    "{at}: unknown state `{s}`; one of hard_down, api_down, limited_visibility, degraded, {}",
                    super::PROBE_STATE
                )),
            }
        }
        match duration(r.repeat, "repeat", Duration::ZERO) {
            Ok(d) => out.routes.push(Route {
                receivers: r.receivers,
                vendors: r.vendors,
                states,
                regions: r.regions,
                labels: r.labels,
                repeat: (!d.is_zero()).then_some(d),
            }),
            Err(e) => errors.push(format!("{at}: {e}")),
        }
    }
    for (i, s) in silences.into_iter().enumerate() {
        let at = format!("silence[{i}]");
        match (instant(&s.starts, "starts"), instant(&s.ends, "ends")) {
            (Ok(starts_ms), Ok(ends_ms)) if ends_ms > starts_ms => out.silences.push(SilenceRow {
                id: 0,
                vendor: s.vendor,
                check_id: s.check,
                region: s.region,
                starts_ms,
                ends_ms,
                comment: s.comment,
                created_by: "config".into(),
                created_ms: starts_ms,
            }),
            (Ok(_), Ok(_)) => errors.push(format!("{at}: ends must be after starts")),
            (Err(e), _) | (_, Err(e)) => errors.push(format!("{at}: {e}")),
        }
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}
