//! Latency charts: p50 and p95 per region, read from the per-minute rollups, drawn as inline
//! SVG on the server (no chart library, no script).
//!
//! [`series`] is the pure part: it merges the rollups' latency histograms by region and time
//! step, then reads the percentiles of each merged histogram ([`percentile`]). [`svg`] draws
//! the result with axes and a legend.

use std::collections::BTreeMap;

use maud::{Markup, html};

use crate::store::{LATENCY_BUCKETS, Rollup, latency_bucket_upper};

/// The time span a chart covers: `points` steps of `step_ms` starting at `from_ms`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Span {
    /// Start of the first step (Unix ms).
    pub(crate) from_ms: i64,
    /// Length of one step (ms), a whole number of minutes.
    pub(crate) step_ms: i64,
    /// Number of steps.
    pub(crate) points: usize,
}

impl Span {
    /// The last hour in 1-minute points, ending with the minute that holds `now_ms`.
    pub(crate) fn last_hour(now_ms: i64) -> Self {
        Self::ending(now_ms, 60_000, 60)
    }

    /// The last day in 15-minute points, ending with the step that holds `now_ms`.
    pub(crate) fn last_day(now_ms: i64) -> Self {
        Self::ending(now_ms, 15 * 60_000, 96)
    }

    fn ending(now_ms: i64, step_ms: i64, points: usize) -> Self {
        let end = now_ms.div_euclid(step_ms) * step_ms + step_ms;
        Self {
            from_ms: end - step_ms * points as i64,
            step_ms,
            points,
        }
    }

    /// End of the last step (exclusive).
    pub(crate) fn end_ms(self) -> i64 {
        self.from_ms + self.step_ms * self.points as i64
    }

    fn index(&self, at_ms: i64) -> Option<usize> {
        if at_ms < self.from_ms {
            return None;
        }
        let i = ((at_ms - self.from_ms) / self.step_ms) as usize;
        (i < self.points).then_some(i)
    }
}

/// The percentiles of one region over a [`Span`]; `None` where the region had no results.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct RegionSeries {
    /// The region.
    pub(crate) region: String,
    /// p50 per step (ms).
    pub(crate) p50: Vec<Option<f64>>,
    /// p95 per step (ms).
    pub(crate) p95: Vec<Option<f64>>,
    /// Results counted per step.
    pub(crate) counts: Vec<u64>,
}

impl RegionSeries {
    /// The newest step with results: (p50, p95).
    pub(crate) fn latest(&self) -> Option<(f64, f64)> {
        self.p50
            .iter()
            .zip(&self.p95)
            .rev()
            .find_map(|(a, b)| Some(((*a)?, (*b)?)))
    }
}

/// The `q` quantile (0..=1) of a latency histogram (see [`crate::store::latency_bucket`]),
/// interpolated linearly inside the bucket that holds it; `None` for an empty histogram.
pub(crate) fn percentile(hist: &[u64], q: f64) -> Option<f64> {
    let total: u64 = hist.iter().sum();
    if total == 0 {
        return None;
    }
    // The rank of the wanted result, 1-based: the p50 of 1..=10 is the 5th.
    let rank = (q.clamp(0.0, 1.0) * total as f64).ceil().max(1.0);
    let mut below = 0u64;
    for (i, &n) in hist.iter().enumerate() {
        if n == 0 {
            continue;
        }
        if (below + n) as f64 >= rank {
            let lower = if i == 0 {
                0.0
            } else {
                latency_bucket_upper(i - 1)
            };
            let upper = latency_bucket_upper(i);
            let within = (rank - below as f64) / n as f64;
            return Some(lower + (upper - lower) * within);
        }
        below += n;
    }
    None
}

/// Merges the rollups of one check by region and step of `span`, and reads p50 and p95 of each
/// merged histogram. Rollups outside the span, and histograms of the wrong length, are left out.
/// Regions come out sorted by name.
pub(crate) fn series(rollups: &[Rollup], span: Span) -> Vec<RegionSeries> {
    let mut merged: BTreeMap<&str, Vec<[u64; LATENCY_BUCKETS]>> = BTreeMap::new();
    for r in rollups {
        let Some(i) = span.index(r.minute_ms) else {
            continue;
        };
        if r.latency_buckets.len() != LATENCY_BUCKETS {
            continue;
        }
        let steps = merged
            .entry(r.region.as_str())
            .or_insert_with(|| vec![[0; LATENCY_BUCKETS]; span.points]);
        for (sum, n) in steps[i].iter_mut().zip(&r.latency_buckets) {
            *sum += n;
        }
    }
    merged
        .into_iter()
        .map(|(region, steps)| RegionSeries {
            region: region.to_owned(),
            p50: steps.iter().map(|h| percentile(h, 0.50)).collect(),
            p95: steps.iter().map(|h| percentile(h, 0.95)).collect(),
            counts: steps.iter().map(|h| h.iter().sum()).collect(),
        })
        .collect()
}

/// Colours for regions, in order: the Okabe–Ito palette, told apart by most colour-blind
/// readers. Each region also has its name in the legend and its latest figures in text.
const PALETTE: [&str; 7] = [
    "#0072b2", "#e69f00", "#009e73", "#cc79a7", "#56b4e9", "#d55e00", "#7a7a7a",
];

/// The colour of the `i`th region.
pub(crate) fn colour(i: usize) -> &'static str {
    PALETTE[i % PALETTE.len()]
}

/// A round axis maximum at or above `v`: 1, 2 or 5 times a power of ten.
fn nice_max(v: f64) -> f64 {
    if !(v.is_finite() && v > 0.0) {
        return 10.0;
    }
    let mag = 10f64.powf(v.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * mag)
        .find(|m| *m >= v)
        .unwrap_or(10.0 * mag)
}

/// A latency for people: `850 µs`, `12 ms`, `1.4 s`.
pub(crate) fn ms_label(ms: f64) -> String {
    if ms <= 0.0 {
        "0".to_owned()
    } else if ms < 1.0 {
        format!("{:.0} µs", ms * 1000.0)
    } else if ms < 10.0 {
        format!("{ms:.1} ms")
    } else if ms < 1000.0 {
        format!("{ms:.0} ms")
    } else {
        format!("{:.1} s", ms / 1000.0)
    }
}

const W: f64 = 560.0;
const H: f64 = 180.0;
const LEFT: f64 = 52.0;
const RIGHT: f64 = 10.0;
const TOP: f64 = 10.0;
const BOTTOM: f64 = 24.0;

/// The polylines of one series: runs of consecutive points, broken where data is missing.
fn segments(
    values: &[Option<f64>],
    x: impl Fn(usize) -> f64,
    y: impl Fn(f64) -> f64,
) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    for (i, v) in values.iter().enumerate() {
        match v {
            Some(v) => {
                if !current.is_empty() {
                    current.push(' ');
                }
                current.push_str(&format!("{:.1},{:.1}", x(i), y(*v)));
            }
            None if !current.is_empty() => out.push(std::mem::take(&mut current)),
            None => {}
        }
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

/// One chart: p50 (solid) and p95 (dashed) per region over `span`, with a y axis in ms, a
/// relative time axis, a legend and the latest figures as text. `id` must be unique in the
/// page (it names the chart's title for screen readers).
pub(crate) fn svg(id: &str, check: &str, what: &str, span: Span, data: &[RegionSeries]) -> Markup {
    let max = nice_max(
        data.iter()
            .flat_map(|s| s.p95.iter().chain(&s.p50))
            .flatten()
            .copied()
            .fold(0.0, f64::max),
    );
    let plot_w = W - LEFT - RIGHT;
    let plot_h = H - TOP - BOTTOM;
    let step_w = plot_w / span.points.max(1) as f64;
    // A point sits in the middle of its step.
    let x = |i: usize| LEFT + step_w * (i as f64 + 0.5);
    let y = |v: f64| TOP + plot_h * (1.0 - (v / max).clamp(0.0, 1.0));
    let ticks: Vec<f64> = (0..=4).map(|k| max * f64::from(k) / 4.0).collect();
    let span_min = span.step_ms * span.points as i64 / 60_000;
    let time_ticks: Vec<(f64, String)> = (0..=4)
        .map(|k| {
            let ago = span_min - span_min * k / 4;
            let label = match ago {
                0 => "now".to_owned(),
                m if m % 60 == 0 => format!("−{}h", m / 60),
                m => format!("−{m}m"),
            };
            (LEFT + plot_w * k as f64 / 4.0, label)
        })
        .collect();
    let title_id = format!("{id}-title");
    let empty = data.iter().all(|s| s.latest().is_none());
    html! {
        figure.chart data-check=(check) {
            svg.chart-svg role="img" aria-labelledby=(title_id) viewBox={"0 0 " (W) " " (H)}
                preserveAspectRatio="xMidYMid meet" xmlns="http://www.w3.org/2000/svg" {
                title id=(title_id) { "Latency of " (check) ", p50 and p95 by region, " (what) }
                @for t in &ticks {
                    line.grid x1=(LEFT) x2=(W - RIGHT) y1=(format!("{:.1}", y(*t))) y2=(format!("{:.1}", y(*t)))
                        stroke="#e3e6ea" stroke-width="1" {}
                    text.axis x=(LEFT - 6.0) y=(format!("{:.1}", y(*t) + 4.0)) text-anchor="end"
                        font-size="11" fill="#5b6470" { (ms_label(*t)) }
                }
                @for (tx, label) in &time_ticks {
                    text.axis x=(format!("{tx:.1}")) y=(H - 6.0) text-anchor="middle" font-size="11"
                        fill="#5b6470" { (label) }
                }
                line x1=(LEFT) x2=(LEFT) y1=(TOP) y2=(TOP + plot_h) stroke="#9aa3ad" stroke-width="1" {}
                @if empty {
                    text x=(LEFT + plot_w / 2.0) y=(TOP + plot_h / 2.0) text-anchor="middle"
                        font-size="13" fill="#5b6470" { "no results " (what) }
                }
                @for (i, s) in data.iter().enumerate() {
                    g data-region=(s.region) {
                        @for pts in segments(&s.p95, x, y) {
                            @if pts.contains(' ') {
                                polyline.p95 points=(pts) fill="none" stroke=(colour(i))
                                    stroke-width="1.5" stroke-dasharray="4 3" {}
                            } @else {
                                circle.p95 cx=(pts.split(',').next().unwrap_or("0"))
                                    cy=(pts.split(',').nth(1).unwrap_or("0")) r="2"
                                    fill=(colour(i)) {}
                            }
                        }
                        @for pts in segments(&s.p50, x, y) {
                            @if pts.contains(' ') {
                                polyline.p50 points=(pts) fill="none" stroke=(colour(i))
                                    stroke-width="2" {}
                            } @else {
                                circle.p50 cx=(pts.split(',').next().unwrap_or("0"))
                                    cy=(pts.split(',').nth(1).unwrap_or("0")) r="2.5"
                                    fill=(colour(i)) {}
                            }
                        }
                    }
                }
            }
            figcaption {
                ul.legend {
                    @for (i, s) in data.iter().enumerate() {
                        li {
                            svg.swatch viewBox="0 0 28 10" width="28" height="10" aria-hidden="true" {
                                line x1="0" x2="12" y1="5" y2="5" stroke=(colour(i)) stroke-width="2" {}
                                line x1="16" x2="28" y1="5" y2="5" stroke=(colour(i)) stroke-width="1.5"
                                    stroke-dasharray="4 3" {}
                            }
                            span.region { (s.region) }
                            @if let Some((p50, p95)) = s.latest() {
                                span.figures { "p50 " (ms_label(p50)) " · p95 " (ms_label(p95)) }
                            } @else {
                                span.figures { "no results" }
                            }
                        }
                    }
                    li.key { "solid p50, dashed p95" }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::latency_bucket;

    fn hist(latencies: &[f64]) -> Vec<u64> {
        let mut h = vec![0; LATENCY_BUCKETS];
        for &ms in latencies {
            h[latency_bucket(ms)] += 1;
        }
        h
    }

    fn rollup(region: &str, probe: &str, minute_ms: i64, latencies: &[f64]) -> Rollup {
        Rollup {
            check_id: "c".into(),
            probe_id: probe.into(),
            region: region.into(),
            minute_ms,
            count: latencies.len() as u64,
            failures: 0,
            failures_by_kind: BTreeMap::new(),
            slow: 0,
            probe_errors: 0,
            latency_buckets: hist(latencies),
        }
    }

    /// The bucket bounds around `ms`.
    fn bounds(ms: f64) -> (f64, f64) {
        let b = latency_bucket(ms);
        let lower = if b == 0 {
            0.0
        } else {
            latency_bucket_upper(b - 1)
        };
        (lower, latency_bucket_upper(b))
    }

    #[test]
    fn percentiles_fall_in_the_bucket_of_the_true_value() {
        assert_eq!(percentile(&[0; LATENCY_BUCKETS], 0.5), None);
        let values: Vec<f64> = (1..=100).map(f64::from).collect();
        let h = hist(&values);
        for (q, truth) in [(0.5, 50.0), (0.95, 95.0), (0.01, 1.0), (1.0, 100.0)] {
            let p = percentile(&h, q).expect("non-empty");
            let (lo, hi) = bounds(truth);
            assert!(p >= lo && p <= hi, "q{q}: {p} not in [{lo}, {hi}]");
        }
        // One value: every percentile is within its bucket.
        let one = hist(&[12.0]);
        let (lo, hi) = bounds(12.0);
        let p = percentile(&one, 0.5).expect("one");
        assert!(p > lo && p <= hi);
        // Sub-millisecond results sit in bucket 0, read between 0 and 1 ms.
        let fast = percentile(&hist(&[0.2, 0.3]), 0.5).expect("fast");
        assert!(fast > 0.0 && fast <= 1.0);
    }

    #[test]
    fn percentiles_are_monotonic_in_q() {
        let h = hist(&[1.0, 3.0, 3.5, 8.0, 40.0, 41.0, 300.0, 2000.0]);
        let mut last = 0.0;
        for k in 0..=20 {
            let p = percentile(&h, f64::from(k) / 20.0).expect("non-empty");
            assert!(p >= last, "p{k} {p} < {last}");
            last = p;
        }
    }

    #[test]
    fn series_merge_probes_of_a_region_and_minutes_of_a_step() {
        let span = Span {
            from_ms: 600_000,
            step_ms: 120_000,
            points: 3,
        };
        let rollups = vec![
            // Region a, step 0: two probes, two minutes; 4 fast results and 1 slow one.
            rollup("a", "a1", 600_000, &[10.0, 10.0]),
            rollup("a", "a2", 600_000, &[10.0]),
            rollup("a", "a1", 660_000, &[10.0, 1000.0]),
            // Region a, step 2 only.
            rollup("a", "a1", 840_000, &[100.0]),
            // Region b, step 1.
            rollup("b", "b1", 720_000, &[50.0]),
            // Outside the span on both sides, and a malformed histogram: left out.
            rollup("b", "b1", 540_000, &[9999.0]),
            rollup("b", "b1", 960_000, &[9999.0]),
            Rollup {
                latency_buckets: vec![1; 3],
                ..rollup("b", "b2", 720_000, &[])
            },
        ];
        let s = series(&rollups, span);
        assert_eq!(
            s.iter().map(|r| r.region.as_str()).collect::<Vec<_>>(),
            ["a", "b"]
        );
        let a = &s[0];
        assert_eq!(a.counts, [5, 0, 1]);
        let (lo, hi) = bounds(10.0);
        let p50 = a.p50[0].expect("a step 0");
        assert!(p50 >= lo && p50 <= hi, "p50 {p50}");
        // The p95 of five results is the fifth, the slow one.
        let (lo, hi) = bounds(1000.0);
        let p95 = a.p95[0].expect("a step 0");
        assert!(p95 >= lo && p95 <= hi, "p95 {p95}");
        assert_eq!(a.p50[1], None);
        assert!(a.p50[2].is_some());
        assert_eq!(
            a.latest(),
            Some((a.p50[2].unwrap_or(0.0), a.p95[2].unwrap_or(0.0)))
        );
        let b = &s[1];
        assert_eq!(b.counts, [0, 1, 0]);
        let (lo, hi) = bounds(50.0);
        assert!(b.p50[1].is_some_and(|p| p >= lo && p <= hi));
    }

    #[test]
    fn spans_end_with_the_current_step() {
        let now = 1_700_000_123_456;
        let h = Span::last_hour(now);
        assert_eq!(h.points, 60);
        assert!(h.end_ms() > now && h.end_ms() - now <= 60_000);
        assert_eq!(h.from_ms % 60_000, 0);
        assert_eq!(h.index(now), Some(59));
        assert_eq!(h.index(h.from_ms - 1), None);
        assert_eq!(h.index(h.end_ms()), None);
        let d = Span::last_day(now);
        assert_eq!(d.points, 96);
        assert_eq!(d.end_ms() - d.from_ms, 86_400_000);
        assert_eq!(d.index(now), Some(95));
    }

    #[test]
    fn axes_are_round_and_labels_readable() {
        assert_eq!(nice_max(0.0), 10.0);
        assert_eq!(nice_max(7.0), 10.0);
        assert_eq!(nice_max(13.0), 20.0);
        assert_eq!(nice_max(420.0), 500.0);
        assert_eq!(nice_max(1000.0), 1000.0);
        assert_eq!(ms_label(0.0), "0");
        assert_eq!(ms_label(0.25), "250 µs");
        assert_eq!(ms_label(4.25), "4.2 ms");
        assert_eq!(ms_label(120.0), "120 ms");
        assert_eq!(ms_label(1500.0), "1.5 s");
    }

    #[test]
    fn the_svg_breaks_lines_at_gaps_and_escapes_names() {
        let span = Span {
            from_ms: 0,
            step_ms: 60_000,
            points: 4,
        };
        let data = vec![RegionSeries {
            region: "<eu>".into(),
            p50: vec![Some(10.0), Some(12.0), None, Some(11.0)],
            p95: vec![Some(20.0), Some(25.0), None, Some(22.0)],
            counts: vec![1, 1, 0, 1],
        }];
        let out = svg("c-1h", "www<a>", "in the last hour", span, &data).into_string();
        assert_eq!(out.matches("<polyline").count(), 2, "{out}");
        assert_eq!(out.matches("<circle").count(), 2, "{out}");
        assert!(out.contains("&lt;eu&gt;") && !out.contains("<eu>"));
        assert!(out.contains("www&lt;a&gt;"));
        assert!(out.contains("p50 11 ms · p95 22 ms"));
        let none = svg("c-1d", "c", "in the last day", span, &[]).into_string();
        assert!(none.contains("no results in the last day"));
    }
}
