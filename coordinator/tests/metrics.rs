//! `/metrics` on a real coordinator, and the Grafana dashboard in `deploy/grafana/` against it:
//! every metric a panel or variable of the dashboard queries must be exported, with samples,
//! once the coordinator has some results.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use http::StatusCode;
use serde_json::Value;
use time::OffsetDateTime;
use vantage_checks::wire::{ProbeCounters, ResultBatch};

mod support;

use support::*;

const DASHBOARD: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../deploy/grafana/vantage.json"
);

const CHECKS: &str = r#"
[defaults]
interval = "1s"
timeout = "800ms"
retry = "off"
window = "4s"
quorum = 2
regions = 1
region_quorum = 1
for = "0s"

[[vendor]]
id = "acme"
name = "Acme DNS"

[[check]]
id = "acme-www"
vendor = "acme"
kind = "tcp"
target = "127.0.0.1:9"
"#;

/// A receiver that is never called here (no incident opens); its counters must still be
/// exported.
const CONFIG: &str = r#"
[[receiver]]
name = "hook"
kind = "webhook"
url = "http://127.0.0.1:9/hook"
"#;

/// The queries of a dashboard: every string under `expr` (panel targets), `query` and
/// `definition` (template variables), anywhere in it.
fn queries(dashboard: &Value) -> Vec<String> {
    fn walk(v: &Value, key: Option<&str>, out: &mut Vec<String>) {
        match v {
            Value::String(s) if matches!(key, Some("expr" | "query" | "definition")) => {
                out.push(s.clone());
            }
            Value::Array(items) => items.iter().for_each(|i| walk(i, key, out)),
            Value::Object(map) => map.iter().for_each(|(k, v)| walk(v, Some(k), out)),
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(dashboard, None, &mut out);
    out
}

/// The metric names a PromQL expression uses: every identifier that starts with `vantage_`
/// (functions, labels and keywords never do).
fn metric_names(expr: &str) -> BTreeSet<String> {
    let ident = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == ':';
    let mut names = BTreeSet::new();
    let mut rest = expr;
    while let Some(at) = rest.find("vantage_") {
        let starts_word = rest[..at].chars().next_back().is_none_or(|c| !ident(c));
        let tail = &rest[at..];
        let end = tail.find(|c: char| !ident(c)).unwrap_or(tail.len());
        if starts_word {
            names.insert(tail[..end].to_owned());
        }
        rest = &tail[end..];
    }
    names
}

/// A scrape: sample names (as queried: `_total`, `_bucket`, …) and family types.
struct Exposition {
    samples: BTreeSet<String>,
    types: BTreeMap<String, String>,
}

impl Exposition {
    fn parse(text: &str) -> Self {
        let mut samples = BTreeSet::new();
        let mut types = BTreeMap::new();
        for line in text.lines() {
            if let Some(t) = line.strip_prefix("# TYPE ") {
                let mut parts = t.split_whitespace();
                if let (Some(name), Some(kind)) = (parts.next(), parts.next()) {
                    types.insert(name.to_owned(), kind.to_owned());
                }
            } else if !line.starts_with('#') && !line.is_empty() {
                let end = line.find(['{', ' ']).unwrap_or(line.len());
                samples.insert(line[..end].to_owned());
            }
        }
        Self { samples, types }
    }

    /// Why `name`, as a query uses it, does not fit this scrape, if it does not: no sample of
    /// that name, or a suffix that does not fit its family's type (`_total` of a counter,
    /// `_bucket`, `_sum` and `_count` of a histogram).
    fn problem(&self, name: &str) -> Option<String> {
        if !self.samples.contains(name) {
            return Some(format!("`{name}` has no sample in /metrics"));
        }
        let suffixes = [
            ("_total", "counter"),
            ("_bucket", "histogram"),
            ("_sum", "histogram"),
            ("_count", "histogram"),
        ];
        for (suffix, kind) in suffixes {
            if let Some(family) = name.strip_suffix(suffix)
                && let Some(t) = self.types.get(family)
            {
                return (t != kind).then(|| format!("`{name}`: `{family}` is a {t}, not a {kind}"));
            }
        }
        match self.types.get(name).map(String::as_str) {
            Some("gauge" | "unknown") => None,
            Some(t) => Some(format!("`{name}` is a {t}: query it with its suffix")),
            None => Some(format!("`{name}` has no # TYPE line")),
        }
    }

    /// Every problem of every metric the queries use, with the query.
    fn problems<'a>(&self, queries: impl IntoIterator<Item = &'a str>) -> Vec<String> {
        let mut out = Vec::new();
        for q in queries {
            for name in metric_names(q) {
                if let Some(p) = self.problem(&name) {
                    out.push(format!("{p} (in `{q}`)"));
                }
            }
        }
        out
    }
}

fn dashboard() -> Value {
    let text = std::fs::read_to_string(DASHBOARD).expect("read the dashboard");
    serde_json::from_str(&text).expect("the dashboard is JSON")
}

#[test]
fn the_dashboard_is_grafana_json_on_a_datasource_variable() {
    let d = dashboard();
    assert!(
        d["schemaVersion"].as_u64().is_some_and(|v| v >= 36),
        "schemaVersion"
    );
    assert!(d["uid"].is_string() && d["title"].is_string());
    let vars = d["templating"]["list"].as_array().expect("templating");
    assert!(
        vars.iter().any(|v| v["name"] == "datasource"
            && v["type"] == "datasource"
            && v["query"] == "prometheus"),
        "a `datasource` variable of type prometheus"
    );
    let mut ids = BTreeSet::new();
    let panels = d["panels"].as_array().expect("panels");
    for p in panels.iter().filter(|p| p["type"] != "row") {
        let title = p["title"].as_str().expect("a title");
        assert!(
            ids.insert(p["id"].as_u64().expect("an id")),
            "{title}: id repeats"
        );
        assert_eq!(p["datasource"]["uid"], "${datasource}", "{title}");
        assert!(p["gridPos"]["w"].as_u64().is_some(), "{title}: gridPos");
        let targets = p["targets"].as_array().expect("targets");
        assert!(!targets.is_empty(), "{title}: no query");
        for t in targets {
            assert_eq!(t["datasource"]["uid"], "${datasource}", "{title}");
            let expr = t["expr"].as_str().expect("expr");
            assert!(
                !metric_names(expr).is_empty(),
                "{title}: `{expr}` queries nothing of ours"
            );
        }
    }
    assert!(ids.len() >= 15, "{} panels", ids.len());
}

#[test]
fn the_check_catches_what_is_not_exported() {
    let scrape = Exposition::parse(
        "# TYPE vantage_results_ingested counter\nvantage_results_ingested_total 3\n\
         # TYPE vantage_store_size_bytes gauge\nvantage_store_size_bytes 4096\n\
         # TYPE vantage_eval_seconds histogram\nvantage_eval_seconds_bucket{le=\"+Inf\"} 1\n\
         vantage_eval_seconds_sum 0.1\nvantage_eval_seconds_count 1\n# EOF\n",
    );
    let fine = [
        "sum(rate(vantage_results_ingested_total[5m])) / vantage_store_size_bytes",
        "histogram_quantile(0.95, sum by (le) (rate(vantage_eval_seconds_bucket[5m])))",
        "vantage_eval_seconds_sum / vantage_eval_seconds_count",
        "label_values(vantage_store_size_bytes, instance)",
    ];
    assert_eq!(scrape.problems(fine), Vec::<String>::new());
    let cases = [
        (
            "rate(vantage_no_such_metric_total[5m])",
            "`vantage_no_such_metric_total` has no sample",
        ),
        (
            "vantage_results_ingested",
            "`vantage_results_ingested` has no sample",
        ),
        (
            "vantage_eval_seconds > 1",
            "`vantage_eval_seconds` has no sample",
        ),
        ("vantage_store_size_bytes_total", "has no sample"),
        (
            "max(vantage_store_size_bytes) + vantage_gone",
            "`vantage_gone` has no sample",
        ),
    ];
    for (expr, want) in cases {
        let problems = scrape.problems([expr]);
        assert_eq!(problems.len(), 1, "{expr}: {problems:?}");
        assert!(problems[0].contains(want), "{expr}: {problems:?}");
    }
    assert_eq!(
        metric_names("a:vantage_x + vantage_y{vendor=\"vantage_z\"}"),
        ["vantage_y".to_owned(), "vantage_z".to_owned()].into(),
        "only whole identifiers (a label value that looks like a name is harmless: it fails)"
    );
    // The same check on the real dashboard with one bad panel added.
    let mut d = dashboard();
    let panels = d["panels"].as_array_mut().expect("panels");
    panels.push(serde_json::json!({
        "type": "timeseries", "title": "bad",
        "targets": [{ "expr": "rate(vantage_not_exported_total[5m])" }]
    }));
    let problems = scrape.problems(queries(&d).iter().map(String::as_str));
    assert!(
        problems
            .iter()
            .any(|p| p.contains("vantage_not_exported_total")),
        "{problems:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_metric_the_dashboard_queries_is_exported() {
    let mut c = Coordinator::new(CONFIG, Some(CHECKS));
    let tokens: Vec<(String, String)> = [("p1", "eu"), ("p2", "us")]
        .into_iter()
        .map(|(p, r)| (p.to_owned(), c.add_probe(p, r)))
        .collect();
    c.start().await;
    let d = dashboard();
    let queries = queries(&d);
    let names: BTreeSet<String> = queries.iter().flat_map(|q| metric_names(q)).collect();
    assert!(names.len() >= 20, "the dashboard queries {names:?}");

    // Some results, with the probes' own counters, until every family the dashboard uses has
    // samples (the vendor's state, for one, comes with the engine's first tick).
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut seq = 0;
    let text = loop {
        for (probe, token) in &tokens {
            seq += 1;
            let batch = ResultBatch {
                results: vec![result(
                    probe,
                    seq,
                    "acme-www",
                    "acme",
                    OffsetDateTime::now_utc(),
                )],
                counters: Some(ProbeCounters {
                    pending: 1,
                    ..ProbeCounters::default()
                }),
            };
            let body = serde_json::to_vec(&batch).expect("encode");
            let reply = post_body(c.addr, Some(token), body).await;
            assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
        }
        let r = get(c.addr, "/metrics", None, &[])
            .await
            .expect("GET /metrics");
        assert_eq!(r.status, StatusCode::OK);
        let text = String::from_utf8_lossy(&r.body).into_owned();
        let problems = Exposition::parse(&text).problems(queries.iter().map(String::as_str));
        if problems.is_empty() {
            break text;
        }
        assert!(
            Instant::now() < deadline,
            "the dashboard queries what /metrics does not export:\n{}\n\n{text}",
            problems.join("\n")
        );
        // Polling interval, not a wait for an event.
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    // The families the issue asks for, with the labels it names.
    for line in [
        "vantage_vendor_state{vendor=\"acme\",region=\"global\",state=\"",
        "vantage_check_verdict{check=\"acme-www\",vendor=\"acme\",verdict=\"",
        "vantage_probe_last_seen_timestamp_seconds{probe=\"p1\"} ",
        "vantage_probe_quarantined{probe=\"p2\"} 0",
        "vantage_alert_deliveries_total{receiver=\"hook\",outcome=\"failed\"} 0",
        "vantage_batches_rejected_total{reason=\"busy\"} 0",
        "vantage_consensus_evaluation_seconds_bucket{",
        "vantage_alert_outbox_pending 0",
        "vantage_store_size_bytes ",
        "vantage_stream_consumers 0",
    ] {
        assert!(
            text.lines().any(|l| l.starts_with(line)),
            "no `{line}…` in:\n{text}"
        );
    }
    println!(
        "metrics: the dashboard's {} metrics are all exported",
        names.len()
    );
}
