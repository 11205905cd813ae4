//! The scheduling and consensus settings shared by `[defaults]` and every `[[check]]`.

use std::ops::Range;
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use super::Ctx;
use crate::duration::format;
use crate::model::{Settings, Threshold};

/// Keys of [`SettingsConfig`]; in a `[[check]]` they override `[defaults]`.
pub(crate) const KEYS: &[&str] = &[
    "interval",
    "timeout",
    "window",
    "quorum",
    "failing",
    "regions",
    "region_quorum",
    "confirm",
    "for",
    "recover_for",
    "retry",
    "failing_interval",
    "slow",
    "flap_window",
    "lone_probe_pages",
];

/// `[defaults]`, and the same keys on a check.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SettingsConfig {
    /// Each probe runs each check this often (default `"10s"`, at least `"1s"`).
    interval: Option<Spanned<String>>,
    /// Hard timeout of one run (default `"4s"`, at most `interval`).
    timeout: Option<Spanned<String>>,
    /// Consensus window (default `"60s"`, at least `interval`).
    window: Option<Spanned<String>>,
    /// Fewest probes with fresh results before any verdict (default 3).
    quorum: Option<Spanned<i64>>,
    /// Share (`"50%"`) or count (`2`) of fresh probes that must agree a check fails (default `"50%"`).
    failing: Option<Spanned<toml::Value>>,
    /// A global verdict needs failing probes in at least this many regions (default 2).
    regions: Option<Spanned<i64>>,
    /// Fewest fresh probes in a region before a regional verdict (default 2).
    region_quorum: Option<Spanned<i64>>,
    /// A probe votes failing after this many failed runs in a row (default 1).
    confirm: Option<Spanned<i64>>,
    /// A verdict must hold this long to change state (default `"10s"`).
    #[serde(rename = "for")]
    hold_for: Option<Spanned<String>>,
    /// A failing verdict must be gone this long to clear (default `"30s"`).
    recover_for: Option<Spanned<String>>,
    /// Pause before one fast retry of a failed run, or `"off"` (default `"500ms"`).
    retry: Option<Spanned<String>>,
    /// Cadence while the check fails anywhere (default: a third of `interval`).
    failing_interval: Option<Spanned<String>>,
    /// A passing run slower than this votes slow (default: none).
    slow: Option<Spanned<String>>,
    /// A vendor failing again within this long of clearing stays in the same incident
    /// (default: three times `recover_for`).
    flap_window: Option<Spanned<String>>,
    /// Let one probe's votes alone make a failing or slow verdict (default `false`).
    lone_probe_pages: Option<bool>,
}

/// Validated settings, each with the span it came from so later cross-checks can point at it.
#[derive(Clone, Debug, Default)]
pub(crate) struct PartialSettings {
    interval: Option<(Duration, Range<usize>)>,
    timeout: Option<(Duration, Range<usize>)>,
    window: Option<(Duration, Range<usize>)>,
    quorum: Option<u32>,
    failing: Option<Threshold>,
    regions: Option<u32>,
    region_quorum: Option<u32>,
    confirm: Option<u32>,
    hold_for: Option<Duration>,
    recover_for: Option<Duration>,
    retry: Option<(Option<Duration>, Range<usize>)>,
    failing_interval: Option<(Duration, Range<usize>)>,
    slow: Option<Duration>,
    flap_window: Option<Duration>,
    lone_probe_pages: Option<bool>,
}

pub(crate) fn validate(ctx: &mut Ctx<'_>, raw: &SettingsConfig) -> PartialSettings {
    let ms = Duration::from_millis;
    let mut dur = |v: &Option<Spanned<String>>, key: &str, min: Duration, example: &str| {
        v.as_ref()
            .and_then(|v| ctx.duration(v, key, min, example).map(|d| (d, v.span())))
    };
    let interval = dur(&raw.interval, "interval", ms(1000), "\"10s\"");
    let timeout = dur(&raw.timeout, "timeout", ms(10), "\"4s\"");
    let window = dur(&raw.window, "window", ms(1000), "\"60s\"");
    let hold_for = dur(&raw.hold_for, "for", ms(0), "\"10s\"").map(|d| d.0);
    let recover_for = dur(&raw.recover_for, "recover_for", ms(0), "\"30s\"").map(|d| d.0);
    let failing_interval = dur(&raw.failing_interval, "failing_interval", ms(500), "\"3s\"");
    let slow = dur(&raw.slow, "slow", ms(1), "\"800ms\"").map(|d| d.0);
    let flap_window = dur(&raw.flap_window, "flap_window", ms(0), "\"90s\"").map(|d| d.0);
    let retry = raw.retry.as_ref().and_then(|v| {
        if v.get_ref().trim() == "off" {
            Some((None, v.span()))
        } else {
            ctx.duration(v, "retry", ms(1), "\"500ms\"` or `retry = \"off\"")
                .map(|d| (Some(d), v.span()))
        }
    });
    let mut int = |v: &Option<Spanned<i64>>, key: &str, example: &str| {
        v.as_ref()
            .and_then(|v| ctx.integer(v, key, 1..=1000, example))
    };
    let quorum = int(&raw.quorum, "quorum", "3");
    let regions = int(&raw.regions, "regions", "2");
    let region_quorum = int(&raw.region_quorum, "region_quorum", "2");
    let confirm = int(&raw.confirm, "confirm", "2");
    let failing = raw.failing.as_ref().and_then(|v| threshold(ctx, v));
    PartialSettings {
        interval,
        timeout,
        window,
        quorum,
        failing,
        regions,
        region_quorum,
        confirm,
        hold_for,
        recover_for,
        retry,
        failing_interval,
        slow,
        flap_window,
        lone_probe_pages: raw.lone_probe_pages,
    }
}

/// `failing = "50%"` or `failing = 2`.
fn threshold(ctx: &mut Ctx<'_>, v: &Spanned<toml::Value>) -> Option<Threshold> {
    const HELP: &str = "failing must be a share of fresh probes above 0% and at most 100%, or a count of at least 1, e.g. `failing = \"50%\"` or `failing = 2`";
    let parsed = match v.get_ref() {
        toml::Value::String(s) => s
            .trim()
            .strip_suffix('%')
            .and_then(|n| n.trim().parse::<f64>().ok())
            .filter(|p| *p > 0.0 && *p <= 100.0)
            .map(|p| Threshold::Share(p / 100.0)),
        toml::Value::Integer(n) => u32::try_from(*n)
            .ok()
            .filter(|n| *n >= 1)
            .map(Threshold::Count),
        _ => None,
    };
    if parsed.is_none() {
        ctx.error(v.span(), format!("{HELP}; got `{}`", v.get_ref()));
    }
    parsed
}

/// The check's own settings over `[defaults]` over the built-in defaults, cross-checked.
pub(crate) fn merge(
    ctx: &mut Ctx<'_>,
    base: &PartialSettings,
    own: &PartialSettings,
    check_span: Range<usize>,
) -> Option<Settings> {
    let d = Settings::default();
    fn pick<T: Clone>(own: &Option<T>, base: &Option<T>) -> Option<T> {
        own.clone().or_else(|| base.clone())
    }
    let interval = pick(&own.interval, &base.interval);
    let timeout = pick(&own.timeout, &base.timeout);
    let window = pick(&own.window, &base.window);
    let failing_interval = pick(&own.failing_interval, &base.failing_interval);
    let retry = pick(&own.retry, &base.retry);
    let at = |v: &Option<(Duration, Range<usize>)>| {
        v.as_ref().map_or(check_span.clone(), |v| v.1.clone())
    };
    let iv = interval.as_ref().map_or(d.interval, |v| v.0);
    let settings = Settings {
        interval: iv,
        timeout: timeout.as_ref().map_or(d.timeout, |v| v.0),
        window: window.as_ref().map_or(d.window, |v| v.0),
        quorum: pick(&own.quorum, &base.quorum).unwrap_or(d.quorum),
        failing: pick(&own.failing, &base.failing).unwrap_or(d.failing),
        regions: pick(&own.regions, &base.regions).unwrap_or(d.regions),
        region_quorum: pick(&own.region_quorum, &base.region_quorum).unwrap_or(d.region_quorum),
        confirm: pick(&own.confirm, &base.confirm).unwrap_or(d.confirm),
        hold_for: pick(&own.hold_for, &base.hold_for).unwrap_or(d.hold_for),
        recover_for: pick(&own.recover_for, &base.recover_for).unwrap_or(d.recover_for),
        retry: retry.as_ref().map_or(d.retry, |v| v.0),
        // A third of the effective interval unless set, but never below the minimum cadence.
        failing_interval: failing_interval
            .as_ref()
            .map_or((iv / 3).max(Duration::from_millis(500)), |v| v.0),
        slow: pick(&own.slow, &base.slow),
        flap_window: pick(&own.flap_window, &base.flap_window),
        lone_probe_pages: pick(&own.lone_probe_pages, &base.lone_probe_pages).unwrap_or(false),
    };
    let mut ok = true;
    let show = |d: Duration| format!("\"{}\"", format(d));
    if settings.timeout > settings.interval {
        ctx.error(
            at(&timeout),
            format!(
                "timeout ({}) must not exceed interval ({}), or runs would pile up; e.g. `timeout = {}`",
                show(settings.timeout),
                show(settings.interval),
                show(settings.interval / 2)
            ),
        );
        ok = false;
    }
    if settings.window < settings.interval {
        ctx.error(
            at(&window),
            format!(
                "window ({}) must be at least interval ({}), or every probe would look silent; e.g. `window = {}`",
                show(settings.window),
                show(settings.interval),
                show(settings.interval * 6)
            ),
        );
        ok = false;
    }
    if settings.failing_interval > settings.interval {
        ctx.error(
            at(&failing_interval),
            format!(
                "failing_interval ({}) must not exceed interval ({}): it speeds checks up while they fail; e.g. `failing_interval = {}`",
                show(settings.failing_interval),
                show(settings.interval),
                show(settings.interval / 3)
            ),
        );
        ok = false;
    }
    if let Some(pause) = settings.retry
        && settings.timeout <= settings.interval
        && pause + settings.timeout > settings.interval
    {
        let span = retry.as_ref().map_or(check_span.clone(), |r| r.1.clone());
        ctx.error(
            span,
            format!(
                "retry ({}) plus timeout ({}) must fit in interval ({}); shorten it or turn it off, e.g. `retry = \"500ms\"` or `retry = \"off\"`",
                show(pause),
                show(settings.timeout),
                show(settings.interval)
            ),
        );
        ok = false;
    }
    ok.then_some(settings)
}
