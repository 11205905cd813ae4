//! The status page's HTML. Pure functions of what [`super`] read: no I/O, no clock.
//!
//! maud escapes every splice, so vendor names, check ids, probe labels and failure messages
//! reach the page as text, never as markup. The only unescaped markup is static (the icons).

use maud::{DOCTYPE, Markup, PreEscaped, html};

use super::chart::{self, Span};
use super::{
    Attention, CheckCharts, Chrome, IncidentCard, Overview, ProbeLine, VendorPage, asset_urls,
    check_scopes,
};
use crate::consensus::vendor::{Condition, ScopeStatus, VendorState, VendorStatus};
use crate::consensus::{Evidence, Ms, ProbeVote, Verdict, Vote};
use crate::engine::{CheckDetail, CheckTransition, VendorView};
use crate::store::state::{IncidentEventRow, IncidentRow};

/// The icons of the states, drawn once per page and used by reference; the shapes differ so
/// that colour is never the only signal (and every cell names its state in text too).
const ICONS: &str = r##"<svg class="defs" aria-hidden="true" focusable="false" width="0" height="0">
<symbol id="i-operational" viewBox="0 0 16 16"><circle cx="8" cy="8" r="7" fill="currentColor"/><path d="M4.6 8.3l2.2 2.2 4.6-4.8" stroke="#fff" stroke-width="2" fill="none" stroke-linecap="round" stroke-linejoin="round"/></symbol>
<symbol id="i-unknown" viewBox="0 0 16 16"><circle cx="8" cy="8" r="6.6" fill="none" stroke="currentColor" stroke-width="1.6" stroke-dasharray="2.6 2"/><path d="M6.2 6.3a1.9 1.9 0 1 1 2.7 1.7c-.6.3-.9.7-.9 1.2v.5" stroke="currentColor" stroke-width="1.6" fill="none" stroke-linecap="round"/><circle cx="8" cy="11.8" r=".95" fill="currentColor"/></symbol>
<symbol id="i-degraded" viewBox="0 0 16 16"><path d="M8 1.3l7.2 13.2H.8z" fill="currentColor"/><path d="M8 6v4" stroke="#fff" stroke-width="1.8" stroke-linecap="round"/><circle cx="8" cy="12.2" r="1" fill="#fff"/></symbol>
<symbol id="i-limited_visibility" viewBox="0 0 16 16"><circle cx="8" cy="8" r="6.3" fill="none" stroke="currentColor" stroke-width="1.8"/><path d="M8 1.7a6.3 6.3 0 0 1 0 12.6z" fill="currentColor"/></symbol>
<symbol id="i-api_down" viewBox="0 0 16 16"><path d="M8 .8l7.2 7.2L8 15.2.8 8z" fill="currentColor"/><path d="M8 4.6v4.2" stroke="#fff" stroke-width="1.8" stroke-linecap="round"/><circle cx="8" cy="11.2" r="1" fill="#fff"/></symbol>
<symbol id="i-hard_down" viewBox="0 0 16 16"><path d="M5 .8h6L15.2 5v6L11 15.2H5L.8 11V5z" fill="currentColor"/><path d="M5.6 5.6l4.8 4.8M10.4 5.6l-4.8 4.8" stroke="#fff" stroke-width="2" stroke-linecap="round"/></symbol>
</svg>"##;

/// The label people read for a state.
pub(super) fn state_text(s: VendorState) -> &'static str {
    match s {
        VendorState::Operational => "operational",
        VendorState::Unknown => "unknown",
        VendorState::Degraded => "degraded",
        VendorState::LimitedVisibility => "limited visibility",
        VendorState::ApiDown => "API down",
        VendorState::HardDown => "hard down",
    }
}

/// A state's icon (static markup: the label is one of the fixed state labels).
fn icon(s: VendorState) -> Markup {
    PreEscaped(format!(
        r##"<svg class="icon" aria-hidden="true" focusable="false" viewBox="0 0 16 16"><use href="#i-{}"></use></svg>"##,
        s.as_label()
    ))
}

/// A state as a badge: icon and name.
fn badge(s: VendorState) -> Markup {
    html! {
        span class={"badge state-" (s.as_label())} data-state=(s.as_label()) {
            (icon(s)) span.label { (state_text(s)) }
        }
    }
}

fn verdict_badge(v: Verdict) -> Markup {
    let state = match v {
        Verdict::Unknown => VendorState::Unknown,
        Verdict::Passing => VendorState::Operational,
        Verdict::Slow => VendorState::Degraded,
        Verdict::Failing => VendorState::HardDown,
    };
    html! {
        span class={"badge verdict state-" (state.as_label())} data-verdict=(v.as_label()) {
            (icon(state)) span.label { (v.as_label()) }
        }
    }
}

/// How bad an attention item is, for ordering.
pub(super) fn severity(a: &Attention) -> (VendorState, bool) {
    let state = a
        .vendor
        .as_ref()
        .map(|v| v.vendor.status.worst())
        .or_else(|| a.incident.as_ref().and_then(|i| i.row.state.vendor()))
        .unwrap_or(VendorState::Degraded);
    (state, a.incident.is_some())
}

fn datetime(ms: Ms) -> Option<time::OffsetDateTime> {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000).ok()
}

/// `2026-11-23 16:20:05 UTC`.
pub(super) fn absolute(ms: Ms) -> String {
    datetime(ms)
        .and_then(|t| {
            t.format(time::macros::format_description!(
                "[year]-[month]-[day] [hour]:[minute]:[second] UTC"
            ))
            .ok()
        })
        .unwrap_or_default()
}

fn clock(ms: Ms) -> String {
    datetime(ms)
        .and_then(|t| {
            t.format(time::macros::format_description!(
                "[hour]:[minute]:[second]"
            ))
            .ok()
        })
        .unwrap_or_default()
}

/// `just now`, `12 s ago`, `5 min ago`, `3 h ago`, `2 d ago` (or `in 5 s` for a clock ahead).
pub(super) fn ago(now: Ms, ms: Ms) -> String {
    let d = (now - ms) / 1000;
    if d < 0 {
        return format!("in {} s", -d);
    }
    match d {
        0..=2 => "just now".to_owned(),
        3..=59 => format!("{d} s ago"),
        60..=3599 => format!("{} min ago", d / 60),
        3600..=86_399 => format!("{} h ago", d / 3600),
        _ => format!("{} d ago", d / 86_400),
    }
}

/// `3 min`, `2 h 5 min`.
fn duration(ms: Ms) -> String {
    let s = ms.max(0) / 1000;
    match s {
        0..=59 => format!("{s} s"),
        60..=3599 => format!("{} min", s / 60),
        3600..=86_399 => format!("{} h {} min", s / 3600, s % 3600 / 60),
        _ => format!("{} d {} h", s / 86_400, s % 86_400 / 3600),
    }
}

/// A moment: relative text, the absolute time on hover and in `datetime`.
fn when(now: Ms, ms: Ms) -> Markup {
    html! {
        time datetime=(crate::alert::rfc3339(ms)) title=(absolute(ms)) { (ago(now, ms)) }
    }
}

fn vendor_href(id: &str) -> String {
    format!(
        "/vendors/{}",
        percent_encoding::utf8_percent_encode(id, percent_encoding::NON_ALPHANUMERIC)
    )
}

/// An element id from untrusted text: letters, digits, `-` and `_` only.
fn dom_id(prefix: &str, parts: &[&str]) -> String {
    let mut out = prefix.to_owned();
    for p in parts {
        out.push('-');
        out.extend(p.chars().map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        }));
    }
    out
}

/// The whole document around a page's `<main>`.
pub(super) fn layout(title: &str, chrome: &Chrome, live: bool, main: Markup) -> Markup {
    let (css, js) = asset_urls();
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                meta name="referrer" content="same-origin";
                title { (title) }
                link rel="stylesheet" href=(css);
                @if live {
                    script src=(js) defer {}
                    // Without JavaScript, the page reloads itself.
                    noscript { meta http-equiv="refresh" content="30"; }
                }
            }
            body {
                (PreEscaped(ICONS))
                header.top {
                    a.brand href="/" {
                        span.mark aria-hidden="true" {}
                        span { "Vantage" }
                        span.sub { "status" }
                    }
                    @if live {
                        span.live id="live" data-live="off" role="status" aria-live="polite" {
                            span.dot aria-hidden="true" {}
                            span.text { "refreshes every 30 s" }
                        }
                    }
                    @if chrome.signed_in {
                        form.signout method="post" action="/logout" {
                            button type="submit" { "Sign out" }
                        }
                    }
                }
                (main)
                footer.bottom {
                    "Vantage coordinator · times in UTC · "
                    a href="/api/v1/vendors" { "JSON API" }
                }
            }
        }
    }
}

/// A small page for a refusal or a missing page.
pub(super) fn error_page(status: http::StatusCode, message: &str) -> Markup {
    let main = html! {
        main.narrow id="main" {
            section.card {
                h2 { (status.as_u16()) " " (status.canonical_reason().unwrap_or("")) }
                p { (message) }
                p { a href="/" { "Back to the status page" } }
            }
        }
    };
    layout("Vantage status", &Chrome { signed_in: false }, false, main)
}

/// The sign-in page; `message` says what went wrong last time.
pub(super) fn login(next: &str, message: Option<&str>) -> Markup {
    let main = html! {
        main.narrow id="main" {
            section.card.login {
                h2 { "Sign in" }
                p.muted { "This coordinator's status page needs its reader token (" code { "[api] token_file" } " or " code { "token_env" } " in coordinator.toml)." }
                @if let Some(m) = message {
                    p.error role="alert" { (m) }
                }
                form method="post" action="/login" {
                    input type="hidden" name="next" value=(next);
                    label for="token" { "Reader token" }
                    input id="token" type="password" name="token" autocomplete="current-password" required autofocus;
                    button type="submit" { "Sign in" }
                }
            }
        }
    };
    layout(
        "Sign in · Vantage status",
        &Chrome { signed_in: false },
        false,
        main,
    )
}

fn scope_status<'a>(status: &'a VendorStatus, region: &str) -> Option<&'a ScopeStatus> {
    if region == "global" {
        Some(&status.global)
    } else {
        status.regions.get(region)
    }
}

fn condition_line(c: &Condition) -> String {
    let mut s = format!("{}: {}", state_text(c.kind.state()), c.checks.join(", "));
    if !c.failures.is_empty() {
        s.push_str(&format!(" ({})", c.failures.join(", ")));
    }
    s
}

/// One cell of the grid: the state's name in text, its icon, and data attributes for tools.
fn cell(v: &VendorView, region: &str) -> Markup {
    let scope = scope_status(&v.status, region);
    let state = scope.map(|s| s.state).unwrap_or(VendorState::Unknown);
    let title = match scope {
        None => format!(
            "{}: no probe in {region} has reported on this vendor's checks",
            v.name
        ),
        Some(s) if s.conditions.is_empty() => {
            format!("{} in {region}: {}", v.name, state_text(state))
        }
        Some(s) => s
            .conditions
            .iter()
            .map(condition_line)
            .collect::<Vec<_>>()
            .join("; "),
    };
    html! {
        td class={"cell state-" (state.as_label())} data-vendor=(v.id) data-region=(region)
            data-state=(state.as_label()) title=(title) {
            (icon(state)) span.label { (state_text(state)) }
        }
    }
}

fn grid(vendors: &[VendorView], regions: &[String], link: bool) -> Markup {
    html! {
        div.table-wrap {
            table.grid {
                thead {
                    tr {
                        th scope="col" { "Vendor" }
                        th.scope-global scope="col" { "global" }
                        @for r in regions { th scope="col" { (r) } }
                    }
                }
                tbody {
                    @for v in vendors {
                        tr data-vendor=(v.id) {
                            th scope="row" {
                                @if link {
                                    a href=(vendor_href(&v.id)) { (v.name) }
                                } @else {
                                    (v.name)
                                }
                                span.id { (v.id) }
                            }
                            (cell(v, "global"))
                            @for r in regions { (cell(v, r)) }
                        }
                    }
                }
            }
        }
    }
}

fn state_key() -> Markup {
    html! {
        ul.key aria-label="States" {
            @for s in VendorState::ALL {
                li { (badge(s)) }
            }
        }
    }
}

fn updated(now: Ms) -> Markup {
    html! {
        p.updated {
            "Updated "
            time datetime=(crate::alert::rfc3339(now)) { (absolute(now)) }
        }
    }
}

/// The overview's `<main>`: the swap target of the live refresh.
pub(super) fn overview(o: &Overview) -> Markup {
    let bad = o
        .vendors
        .iter()
        .filter(|v| v.status.worst().is_bad())
        .count();
    html! {
        main id="main" data-partial="/?partial=main" {
            (updated(o.now_ms))
            section id="states" aria-labelledby="h-states" {
                h2 id="h-states" { "Vendors by region" }
                p.summary {
                    (o.vendors.len()) " vendors, "
                    @if bad == 0 { "none with a problem" } @else { strong { (bad) " with a problem" } }
                    " · " (o.regions.len()) " regions · " (o.probes.iter().filter(|p| p.record.revoked_ms.is_none()).count()) " probes"
                }
                @if o.vendors.is_empty() {
                    p.empty { "No vendors: add " code { "[[vendor]]" } " tables to the check files." }
                } @else {
                    (grid(&o.vendors, &o.regions, true))
                }
                (state_key())
            }
            section id="attention" aria-labelledby="h-attention" {
                h2 id="h-attention" {
                    "Active conditions and open incidents"
                    span.count { (o.attention.len()) }
                }
                @if o.attention.is_empty() {
                    p.empty.all-clear { "Nothing needs attention: no active condition, no open incident." }
                }
                @for a in &o.attention { (attention(o.now_ms, a)) }
                @if !o.resolved.is_empty() {
                    h3.subhead { "Resolved in the last day" }
                    ul.resolved {
                        @for i in &o.resolved { (resolved_line(o.now_ms, i)) }
                    }
                }
            }
            section id="latency" aria-labelledby="h-latency" {
                h2 id="h-latency" { "Latency, last hour" }
                p.hint { "p50 and p95 of each check's total time per minute, by probe region. Each vendor's page has the last day." }
                @if o.charts.is_empty() {
                    p.empty { "No checks." }
                }
                div.charts {
                    @for c in &o.charts {
                        @let name = o.vendors.iter().find(|v| v.id == c.vendor).map_or(c.vendor.as_str(), |v| v.name.as_str());
                        article.chart-card id=(dom_id("chart", &[&c.check])) {
                            h3 {
                                (c.check)
                                span.muted { " " (c.kind) " · " (name) }
                            }
                            (chart::svg(&dom_id("c1h", &[&c.check]), &c.check, "in the last hour", Span::last_hour(o.now_ms), &c.hour))
                            a.more href={(vendor_href(&c.vendor)) "#" (dom_id("check", &[&c.check]))} { "Last day and evidence →" }
                        }
                    }
                }
            }
            section id="probes" aria-labelledby="h-probes" {
                h2 id="h-probes" { "Probes" }
                (probes(o.now_ms, &o.probes))
            }
        }
    }
}

fn resolved_line(now: Ms, i: &IncidentRow) -> Markup {
    let state = i.state.vendor();
    html! {
        li data-incident=(i.id) {
            @if let Some(s) = state { (badge(s)) } @else { span.badge.state-degraded { span.label { (i.state) } } }
            " " span.summary { (i.summary) }
            span.muted {
                " · #" (i.id) " · opened " (when(now, i.opened_ms))
                @if let Some(r) = i.resolved_ms {
                    ", resolved " (when(now, r)) " after " (duration(r - i.opened_ms))
                }
            }
        }
    }
}

fn event_note(e: &IncidentEventRow) -> Option<String> {
    let d: serde_json::Value = serde_json::from_str(&e.detail).unwrap_or_default();
    match e.kind.as_str() {
        "suppressed" => Some(format!(
            "held back by silence #{}: {}",
            d["silence"],
            d["comment"].as_str().unwrap_or_default()
        )),
        "notified" => d["receiver"]
            .as_str()
            .map(|r| format!("sent to {r}: {}", d["why"].as_str().unwrap_or_default())),
        "cleared" => Some(format!(
            "clear again; resolves at {} unless it fails again first",
            d["resolves_at"]
                .as_str()
                .unwrap_or("the end of the flap window")
        )),
        "flapped" => Some(format!(
            "failing again within the flap window (flap {}): same incident, nobody paged again. {}",
            d["flap"],
            d["summary"].as_str().unwrap_or_default()
        )),
        "changed" if d["not_paged"].is_string() => Some(format!(
            "{} (not paged: {})",
            d["summary"].as_str().unwrap_or_default(),
            d["not_paged"].as_str().unwrap_or_default()
        )),
        _ => d["summary"].as_str().map(str::to_owned),
    }
}

/// A timeline: the incident's events and the checks' transitions, oldest first.
fn timeline(incident: Option<&IncidentCard>, transitions: &[CheckTransition]) -> Markup {
    enum Item<'a> {
        Event(&'a IncidentEventRow),
        Transition(&'a CheckTransition),
    }
    let mut items: Vec<(Ms, Item<'_>)> = incident
        .map(|i| i.events.iter().map(|e| (e.at_ms, Item::Event(e))).collect())
        .unwrap_or_default();
    // Transitions that say something is or was wrong; a check's first verdict after a start
    // (unknown → passing) is noise here.
    items.extend(
        transitions
            .iter()
            .filter(|t| {
                [t.transition.from, t.transition.to]
                    .iter()
                    .any(|v| matches!(v, Verdict::Failing | Verdict::Slow))
            })
            .map(|t| (t.transition.at_ms, Item::Transition(t))),
    );
    // At the same moment, the checks' transitions come before the incident they caused.
    items.sort_by_key(|(at, item)| (*at, matches!(item, Item::Event(_))));
    html! {
        @if items.is_empty() {
            p.muted { "No events yet." }
        } @else {
            ol.timeline {
                @for (at, item) in &items {
                    @match item {
                        Item::Event(e) => {
                            li class={"event kind-" (e.kind)} data-kind=(e.kind) {
                                time datetime=(crate::alert::rfc3339(*at)) title=(absolute(*at)) { (clock(*at)) }
                                span.kind { (e.kind) }
                                @if let Some(s) = e.state.vendor() { (badge(s)) }
                                @if let Some(n) = event_note(e) { span.note { (n) } }
                            }
                        }
                        Item::Transition(t) => {
                            li.event.kind-transition data-kind="transition" {
                                time datetime=(crate::alert::rfc3339(*at)) title=(absolute(*at)) { (clock(*at)) }
                                span.kind { "check" }
                                span.note {
                                    code { (t.check) } " " (t.transition.scope.to_string()) ": "
                                    (t.transition.from.as_label()) " → " strong { (t.transition.to.as_label()) }
                                    @if t.evidence.global.failing > 0 {
                                        " (" (t.evidence.global.failing) " of " (t.evidence.global.fresh) " probes failing)"
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

fn conditions(status: &VendorStatus) -> Markup {
    let mut lines: Vec<(String, &Condition)> = status
        .global
        .conditions
        .iter()
        .map(|c| ("everywhere".to_owned(), c))
        .collect();
    for (r, s) in &status.regions {
        for c in &s.conditions {
            // A regional condition the global one already covers says nothing new.
            if !status.global.conditions.iter().any(|g| g.kind == c.kind) {
                lines.push((format!("in {r}"), c));
            }
        }
    }
    html! {
        @if lines.is_empty() {
            p.muted { "No active condition." }
        } @else {
            ul.conditions {
                @for (scope, c) in &lines {
                    li data-condition=(c.kind.as_label()) {
                        (badge(c.kind.state()))
                        @if c.kind.as_label() != c.kind.state().as_label() {
                            span.tag { (c.kind.as_label().replace('_', " ")) }
                        }
                        " " span.scope { (scope) } " · checks "
                        @for (i, check) in c.checks.iter().enumerate() {
                            @if i > 0 { ", " }
                            code { (check) }
                        }
                        @if !c.failures.is_empty() {
                            " · " @for (i, f) in c.failures.iter().enumerate() {
                                @if i > 0 { ", " }
                                span.failure { (f) }
                            }
                        }
                        @if !c.detail.is_empty() {
                            ul.detail {
                                @for d in &c.detail { li { (d) } }
                            }
                        }
                    }
                }
            }
        }
    }
}

fn vote_text(v: Vote) -> &'static str {
    match v {
        Vote::Passing => "passing",
        Vote::Slow => "slow",
        Vote::Failing => "failing",
        Vote::Silent => "silent",
        Vote::ProbeError => "probe error",
        Vote::Quarantined => "quarantined",
    }
}

fn vote_label(v: Vote) -> &'static str {
    match v {
        Vote::Passing => "passing",
        Vote::Slow => "slow",
        Vote::Failing => "failing",
        Vote::Silent => "silent",
        Vote::ProbeError => "probe_error",
        Vote::Quarantined => "quarantined",
    }
}

/// Which probes saw what: every vote on one check.
fn evidence_table(now: Ms, check: &str, e: &Evidence) -> Markup {
    let mut votes: Vec<&ProbeVote> = e.votes.iter().collect();
    votes.sort_by(|a, b| (&a.region, &a.probe).cmp(&(&b.region, &b.probe)));
    html! {
        div.table-wrap {
            table.votes data-check=(check) {
                thead {
                    tr {
                        th scope="col" { "Probe" }
                        th scope="col" { "Region" }
                        th scope="col" { "Vote" }
                        th scope="col" { "Failure" }
                        th.num scope="col" { "Latency" }
                        th scope="col" { "Last run" }
                        th scope="col" { "Message" }
                    }
                }
                tbody {
                    @for v in &votes {
                        tr class={"vote-" (vote_label(v.vote))} data-probe=(v.probe) data-vote=(vote_label(v.vote)) {
                            td { code { (v.probe) } }
                            td { (v.region) }
                            td.vote { span class={"pill vote-" (vote_label(v.vote))} { (vote_text(v.vote)) } }
                            td.failure { @if let Some(f) = v.failure { (f.as_label()) } @else { "—" } }
                            td.num { @if let Some(ms) = v.total_ms { (chart::ms_label(f64::from(ms))) } @else { "—" } }
                            td { @if let Some(at) = v.started_ms { (when(now, at)) } @else { "—" } }
                            td.message { @if let Some(m) = &v.message { (m) } }
                        }
                    }
                }
            }
        }
    }
}

fn evidence_summary(e: &Evidence) -> String {
    let g = &e.global;
    let mut s = format!("{} of {} fresh probes failing", g.failing, g.fresh);
    if g.slow > 0 {
        s.push_str(&format!(", {} slow", g.slow));
    }
    if !g.failing_regions.is_empty() {
        s.push_str(&format!(
            " (in {})",
            g.failing_regions
                .iter()
                .cloned()
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    s
}

fn incident_meta(now: Ms, i: &IncidentRow) -> Markup {
    html! {
        p.meta {
            "Incident #" (i.id) " · opened " (when(now, i.opened_ms))
            " · open for " (duration(now - i.opened_ms))
            @if i.updated_ms != i.opened_ms { " · changed " (when(now, i.updated_ms)) }
            @if i.flaps > 0 { " · flapped " (i.flaps) (if i.flaps == 1 { " time" } else { " times" }) }
            @if let Some(c) = i.clear_since_ms { " · " strong.clearing { "clear since " (when(now, c)) ", resolving" } }
        }
    }
}

fn attention(now: Ms, a: &Attention) -> Markup {
    let (state, _) = severity(a);
    let (id, subject) = match (&a.vendor, &a.probe, &a.incident) {
        (Some(v), ..) => (dom_id("attn-vendor", &[&v.vendor.id]), v.vendor.id.clone()),
        (None, Some((p, _)), _) => (dom_id("attn-probe", &[p]), p.clone()),
        (None, None, Some(i)) => (
            dom_id("attn-incident", &[&i.row.id.to_string()]),
            i.row.subject.clone(),
        ),
        (None, None, None) => (String::from("attn"), String::new()),
    };
    html! {
        article class={"card attention sev-" (state.as_label())} id=(id) data-subject=(subject)
            data-incident=[a.incident.as_ref().map(|i| i.row.id)] {
            @if let Some(v) = &a.vendor {
                header.card-head {
                    (badge(v.vendor.status.worst()))
                    h3 { a href=(vendor_href(&v.vendor.id)) { (v.vendor.name) } span.id { (v.vendor.id) } }
                }
                @if let Some(i) = &a.incident {
                    p.summary { (i.row.summary) }
                    (incident_meta(now, &i.row))
                } @else {
                    p.meta {
                        @if v.vendor.status.global_pending {
                            "No incident yet: the global verdict is about to change, and the first page will say whether this is regional or global."
                        } @else {
                            "No incident open."
                        }
                    }
                }
                div.cols {
                    div {
                        h4 { "Conditions" }
                        (conditions(&v.vendor.status))
                    }
                    div {
                        h4 { "Timeline" }
                        (timeline(a.incident.as_ref(), &a.transitions))
                    }
                }
                @let involved = involved_checks(v.checks.as_slice(), &v.vendor.status);
                @for c in involved {
                    details.evidence id=(dom_id("ev", &[&v.vendor.id, &c.id])) open {
                        summary {
                            "Evidence: " code { (c.id) } " — " (evidence_summary(&c.evidence))
                        }
                        (evidence_table(now, &c.id, &c.evidence))
                    }
                }
            } @else if let Some((probe, h)) = &a.probe {
                header.card-head {
                    span.badge.state-degraded data-state="probe_quarantined" { (icon(VendorState::Degraded)) span.label { "quarantined" } }
                    h3 { "Probe " code { (probe) } }
                }
                p.summary {
                    "Its votes are set aside: it failed checks of "
                    (h.vendors.join(", ")) " while its peers saw them pass."
                }
                @if let Some(i) = &a.incident { (incident_meta(now, &i.row)) }
                p.meta { "Quarantined " (when(now, h.since_ms)) " · checks " (h.checks.join(", ")) }
                @if let Some(i) = &a.incident {
                    h4 { "Timeline" }
                    (timeline(Some(i), &[]))
                }
            } @else if let Some(i) = &a.incident {
                header.card-head {
                    @if let Some(s) = i.row.state.vendor() { (badge(s)) }
                    h3 { (i.row.subject) }
                }
                p.summary { (i.row.summary) }
                (incident_meta(now, &i.row))
                h4 { "Timeline" }
                (timeline(Some(i), &[]))
            }
        }
    }
}

/// The checks behind a vendor's conditions; all its checks when none is named.
fn involved_checks<'a>(checks: &'a [CheckDetail], status: &VendorStatus) -> Vec<&'a CheckDetail> {
    let named: std::collections::BTreeSet<&str> = std::iter::once(&status.global)
        .chain(status.regions.values())
        .flat_map(|s| s.conditions.iter())
        .flat_map(|c| c.checks.iter().map(String::as_str))
        .collect();
    checks
        .iter()
        .filter(|c| named.is_empty() || named.contains(c.id.as_str()))
        .collect()
}

fn probes(now: Ms, list: &[ProbeLine]) -> Markup {
    html! {
        @if list.is_empty() {
            p.empty { "No probes registered: " code { "vantage-coordinator probe add <id> --region <region>" } }
        } @else {
            div.table-wrap {
                table.probes {
                    thead {
                        tr {
                            th scope="col" { "Probe" }
                            th scope="col" { "Region" }
                            th scope="col" { "Labels" }
                            th scope="col" { "Last seen" }
                            th scope="col" { "Health" }
                        }
                    }
                    tbody {
                        @for p in list {
                            @let health = if p.record.revoked_ms.is_some() { "revoked" } else if p.quarantine.is_some() { "quarantined" } else if !p.suspect.is_empty() { "suspect" } else { "healthy" };
                            tr data-probe=(p.record.id) data-health=(health) class={"health-" (health)} {
                                td { code { (p.record.id) } }
                                td { (p.record.region) }
                                td {
                                    @if p.record.labels.is_empty() { span.muted { "—" } }
                                    ul.labels {
                                        @for (k, v) in &p.record.labels { li { span.k { (k) } "=" span.v { (v) } } }
                                    }
                                }
                                td {
                                    @if let Some(seen) = p.record.last_seen_ms {
                                        (when(now, seen)) br; span.muted.small { (absolute(seen)) }
                                    } @else {
                                        span.muted { "never" }
                                    }
                                }
                                td.health {
                                    span class={"pill health-" (health)} { (health) }
                                    @if let Some(q) = &p.quarantine {
                                        span.reason {
                                            " since " (when(now, q.since_ms)) ": fails "
                                            (q.vendors.join(", ")) " while its peers see them fine"
                                        }
                                    }
                                    @if let Some(r) = p.record.revoked_ms {
                                        span.reason { " " (when(now, r)) }
                                    }
                                    @for s in &p.suspect {
                                        span.reason data-suspect-check=(s.check) {
                                            " alone " (if s.dissent == crate::consensus::suspect::Dissent::Slow { "slow on " } else { "fails " })
                                            code { (s.check) } " (" (s.vendor) ") since "
                                            (when(now, s.dissenting_since_ms))
                                            ": still votes, cannot page alone"
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// A vendor page's `<main>`.
pub(super) fn vendor(p: &VendorPage) -> Markup {
    let d = &p.detail;
    let v = &d.vendor;
    let now = p.now_ms;
    html! {
        main id="main" data-partial={(vendor_href(&v.id)) "?partial=main"} {
            p.crumbs { a href="/" { "← All vendors" } }
            (updated(now))
            section id="vendor" aria-labelledby="h-vendor" {
                h2 id="h-vendor" { (v.name) " " span.id { (v.id) } " " (badge(v.status.worst())) }
                (grid(std::slice::from_ref(v), &p.regions, false))
                div.cols {
                    div {
                        h3 { "Conditions" }
                        (conditions(&v.status))
                    }
                    div {
                        h3 { "Open incident" }
                        @if let Some(i) = &p.incident {
                            p.summary { (i.row.summary) }
                            (incident_meta(now, &i.row))
                            (timeline(Some(i), &[]))
                        } @else {
                            p.muted { "None." }
                        }
                    }
                }
            }
            section id="checks" aria-labelledby="h-checks" {
                h2 id="h-checks" { "Checks" }
                @for c in &d.checks {
                    @let charts = p.charts.iter().find(|x| x.check == c.id);
                    (check_section(now, &v.id, c, charts))
                }
            }
            section id="transitions" aria-labelledby="h-transitions" {
                h2 id="h-transitions" { "Recent transitions" }
                @if d.transitions.is_empty() {
                    p.muted { "None recorded." }
                } @else {
                    div.table-wrap {
                        table.transitions {
                            thead { tr { th scope="col" { "When" } th scope="col" { "Check" } th scope="col" { "Scope" } th scope="col" { "Change" } th scope="col" { "Failing votes" } } }
                            tbody {
                                @for t in &d.transitions {
                                    tr {
                                        td { (when(now, t.transition.at_ms)) }
                                        td { code { (t.check) } }
                                        td { (t.transition.scope.to_string()) }
                                        td { (verdict_badge(t.transition.from)) " → " (verdict_badge(t.transition.to)) }
                                        td { (t.evidence.global.failing) " of " (t.evidence.global.fresh) }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

fn check_section(now: Ms, vendor: &str, c: &CheckDetail, charts: Option<&CheckCharts>) -> Markup {
    let scopes = check_scopes(c);
    html! {
        article.card.check id=(dom_id("check", &[&c.id])) data-check=(c.id) {
            header.card-head {
                h3 { code { (c.id) } }
                span.muted { (c.kind) " · role " (c.role.as_label()) }
            }
            ul.verdicts {
                @for (scope, s) in &scopes {
                    li data-scope=(scope) {
                        span.scope { (scope) } " "
                        (verdict_badge(s.verdict))
                        span.muted.small { " since " (when(now, s.since_ms)) }
                        @if let Some(pending) = s.pending {
                            span.pending { " · turning " (pending.verdict.as_label()) " since " (when(now, pending.since_ms)) }
                        }
                    }
                }
            }
            details.evidence id=(dom_id("ev", &[vendor, &c.id])) open[c.evidence.global.failing > 0] {
                summary { "Evidence — " (evidence_summary(&c.evidence)) }
                (evidence_table(now, &c.id, &c.evidence))
            }
            @if let Some(ch) = charts {
                div.chart-pair {
                    div {
                        h4 { "Last hour" }
                        (chart::svg(&dom_id("c1h", &[&c.id]), &c.id, "in the last hour", Span::last_hour(now), &ch.hour))
                    }
                    @if let Some(day) = &ch.day {
                        div {
                            h4 { "Last day" }
                            (chart::svg(&dom_id("c1d", &[&c.id]), &c.id, "in the last day", Span::last_day(now), day))
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::consensus::quarantine::ProbeHealth;
    use crate::consensus::vendor::ConditionKind;
    use crate::consensus::{CheckState, Tally};
    use crate::engine::VendorDetail;
    use crate::store::ProbeRecord;
    use vantage_checks::model::Role;
    use vantage_checks::result::FailureKind;

    const NOW: Ms = 1_800_000_000_000;
    const EVIL: &str = "<script>alert(1)</script>";

    fn scope(state: VendorState, conditions: Vec<Condition>) -> ScopeStatus {
        ScopeStatus {
            state,
            conditions,
            clearing: false,
        }
    }

    fn down_in_b() -> VendorView {
        let cond = Condition {
            kind: ConditionKind::HardDown,
            checks: vec!["www".into()],
            failures: vec!["connect_timeout".into()],
            detail: vec![format!("b1: {EVIL}")],
        };
        VendorView {
            id: "acme".into(),
            name: format!("Acme {EVIL}"),
            status: VendorStatus {
                global: scope(VendorState::Operational, vec![]),
                regions: [
                    ("a".to_owned(), scope(VendorState::Operational, vec![])),
                    ("b".to_owned(), scope(VendorState::HardDown, vec![cond])),
                ]
                .into_iter()
                .collect(),
                global_pending: false,
            },
        }
    }

    fn evidence() -> Evidence {
        let vote = |probe: &str, region: &str, vote: Vote| ProbeVote {
            probe: probe.into(),
            region: region.into(),
            vote,
            failure: (vote == Vote::Failing).then_some(FailureKind::ConnectTimeout),
            started_ms: Some(NOW - 1500),
            total_ms: Some(812.0),
            message: (vote == Vote::Failing).then(|| EVIL.to_owned()),
        };
        Evidence {
            global: Tally {
                fresh: 3,
                failing: 1,
                ..Tally::default()
            },
            regions: BTreeMap::new(),
            votes: vec![
                vote("b1", "b", Vote::Failing),
                vote("a1", "a", Vote::Passing),
                vote("a2", "a", Vote::Silent),
            ],
        }
    }

    fn overview() -> Overview {
        let v = down_in_b();
        let detail = VendorDetail {
            vendor: v.clone(),
            checks: vec![CheckDetail {
                id: "www".into(),
                kind: "tcp",
                role: Role::Data,
                state: CheckState::default(),
                raw: BTreeMap::new(),
                evidence: evidence(),
            }],
            transitions: vec![],
        };
        Overview {
            now_ms: NOW,
            vendors: vec![v],
            regions: vec!["a".into(), "b".into(), "c".into()],
            attention: vec![Attention {
                vendor: Some(detail),
                probe: None,
                incident: Some(IncidentCard {
                    row: IncidentRow {
                        id: 7,
                        subject_kind: crate::alert::SubjectKind::Vendor,
                        subject: "acme".into(),
                        state: crate::alert::IncidentState::Vendor(VendorState::HardDown),
                        summary: format!("Acme {EVIL} is hard_down in b"),
                        opened_ms: NOW - 120_000,
                        updated_ms: NOW - 120_000,
                        resolved_ms: None,
                        detail: String::new(),
                        opened_state: crate::alert::IncidentState::Vendor(VendorState::HardDown),
                        clear_since_ms: None,
                        flaps: 2,
                        version: 3,
                    },
                    events: vec![IncidentEventRow {
                        seq: 1,
                        at_ms: NOW - 120_000,
                        kind: "opened".into(),
                        state: crate::alert::IncidentState::Vendor(VendorState::HardDown),
                        detail: serde_json::json!({ "summary": "opened summary" }).to_string(),
                    }],
                }),
                transitions: vec![],
            }],
            resolved: vec![],
            probes: vec![
                ProbeLine {
                    record: ProbeRecord {
                        id: "b1".into(),
                        region: "b".into(),
                        labels: [("city".to_owned(), EVIL.to_owned())].into_iter().collect(),
                        created_ms: NOW - 3_600_000,
                        revoked_ms: None,
                        last_seen_ms: Some(NOW - 4000),
                    },
                    quarantine: Some(ProbeHealth {
                        quarantined: true,
                        since_ms: NOW - 60_000,
                        vendors: vec!["acme".into(), "other".into()],
                        ..ProbeHealth::default()
                    }),
                    suspect: vec![],
                },
                ProbeLine {
                    record: ProbeRecord {
                        id: "c1".into(),
                        region: "c".into(),
                        labels: BTreeMap::new(),
                        created_ms: NOW - 3_600_000,
                        revoked_ms: None,
                        last_seen_ms: Some(NOW - 2000),
                    },
                    quarantine: None,
                    suspect: vec![crate::engine::SuspectView {
                        probe: "c1".into(),
                        check: "www".into(),
                        vendor: "acme".into(),
                        dissent: crate::consensus::suspect::Dissent::Failing,
                        dissenting_since_ms: NOW - 90_000,
                        suspect_since_ms: NOW - 30_000,
                    }],
                },
            ],
            charts: vec![],
        }
    }

    #[test]
    fn cells_name_their_state_in_text_and_attributes() {
        let html = super::overview(&overview()).into_string();
        assert!(html.contains(
            r#"<td class="cell state-hard_down" data-vendor="acme" data-region="b" data-state="hard_down""#
        ), "{html}");
        assert!(html.contains(r#"data-region="a" data-state="operational""#));
        assert!(html.contains(r#"data-region="global" data-state="operational""#));
        // A region the vendor has no state in reads as unknown, with why on hover.
        assert!(html.contains(r#"data-region="c" data-state="unknown""#));
        assert!(html.contains("<span class=\"label\">hard down</span>"));
    }

    #[test]
    fn untrusted_text_is_escaped_everywhere() {
        let o = overview();
        let html = super::overview(&o).into_string();
        assert!(!html.contains("<script>"), "{html}");
        // Name, condition detail, incident summary, vote message, probe label.
        assert!(html.matches("&lt;script&gt;").count() >= 5, "{html}");
        let page =
            layout("t", &Chrome { signed_in: true }, true, super::overview(&o)).into_string();
        assert_eq!(
            page.matches("<script").count(),
            1,
            "only the page's own script"
        );
        assert!(page.contains("action=\"/logout\""));
    }

    #[test]
    fn incidents_show_timeline_and_evidence() {
        let html = super::overview(&overview()).into_string();
        assert!(html.contains("Incident #7"));
        assert!(html.contains(r#"data-kind="opened""#));
        assert!(html.contains("opened summary"));
        assert!(html.contains(r#"<table class="votes" data-check="www">"#));
        assert!(html.contains(r#"data-probe="b1" data-vote="failing""#));
        assert!(html.contains("connect_timeout"));
        assert!(html.contains("812 ms"));
        assert!(html.contains("1 of 3 fresh probes failing"));
        // The quarantined probe, with why.
        assert!(html.contains(r#"data-probe="b1" data-health="quarantined""#));
        // The suspect probe, with the check it alone fails.
        assert!(
            html.contains(r#"data-probe="c1" data-health="suspect""#),
            "{html}"
        );
        assert!(html.contains(r#"data-suspect-check="www""#), "{html}");
        assert!(html.contains("flapped 2 times"), "{html}");
        assert!(html.contains("fails acme, other while its peers see them fine"));
    }

    #[test]
    fn times_read_well() {
        assert_eq!(ago(NOW, NOW - 1000), "just now");
        assert_eq!(ago(NOW, NOW - 12_000), "12 s ago");
        assert_eq!(ago(NOW, NOW - 300_000), "5 min ago");
        assert_eq!(ago(NOW, NOW - 3 * 3_600_000), "3 h ago");
        assert_eq!(ago(NOW, NOW - 2 * 86_400_000), "2 d ago");
        assert_eq!(ago(NOW, NOW + 5000), "in 5 s");
        assert_eq!(duration(125_000), "2 min");
        assert_eq!(duration(3_900_000), "1 h 5 min");
        assert_eq!(absolute(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(dom_id("ev", &["a b", "<x>"]), "ev-a_b-_x_");
        assert_eq!(vendor_href("a/b c"), "/vendors/a%2Fb%20c");
    }

    #[test]
    fn the_login_page_never_shows_a_token() {
        let html =
            login("/vendors/acme", Some("That token is not the reader token.")).into_string();
        assert!(html.contains(r#"type="password""#));
        assert!(html.contains(r#"name="next" value="/vendors/acme""#));
        assert!(html.contains("role=\"alert\""));
        assert!(!html.contains("<script"), "the login page needs no script");
    }
}
