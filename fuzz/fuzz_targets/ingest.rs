//! A `POST /api/v1/results` body: the wire decoder, then the coordinator's `validate_batch`.
//!
//! Invariants: every result is either stored or refused, never both or neither; nothing
//! stored breaks the coordinator's limits; and any decoded result, made valid and cut down by
//! the probe's `limits::fit`, is stored (a probe that keeps within the limits is never
//! refused for size).
#![no_main]

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};

use libfuzzer_sys::fuzz_target;
use time::OffsetDateTime;
use vantage_checks::limits;
use vantage_checks::result::{CheckResult, RESULT_SCHEMA_VERSION};
use vantage_checks::wire::decode_batch;
use vantage_coordinator::catalog::{Catalog, Catalogs};
use vantage_coordinator::config::Limits;
use vantage_coordinator::ingest::validate_batch;
use vantage_coordinator::store::ProbeRecord;

/// One check `c` of vendor `v` that every probe runs, and one only probes in `us` run.
const CHECKS: &str = "[[vendor]]\nid = \"v\"\n[[check]]\nid = \"c\"\nvendor = \"v\"\nkind = \"tcp\"\ntarget = \"127.0.0.1:9\"\n\n[[check]]\nid = \"us-only\"\nvendor = \"v\"\nkind = \"tcp\"\ntarget = \"127.0.0.1:9\"\nprobes = { regions = [\"us\"] }\n";

fn catalog() -> Arc<Catalog> {
    static CATALOG: OnceLock<Arc<Catalog>> = OnceLock::new();
    Arc::clone(CATALOG.get_or_init(|| {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("checks.toml");
        std::fs::write(&path, CHECKS).expect("write checks");
        Catalogs::load(vec![path]).expect("load checks").current()
    }))
}

fn probe() -> ProbeRecord {
    ProbeRecord {
        id: "p1".into(),
        region: "eu".into(),
        labels: BTreeMap::new(),
        created_ms: 0,
        revoked_ms: None,
        last_seen_ms: None,
    }
}

/// A fixed `now` (2026-12-01T00:00:00Z), so that a crash reproduces.
fn now() -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(1_796_083_200).expect("valid time")
}

fn assert_within_limits(r: &CheckResult, l: &Limits, now: OffsetDateTime) {
    assert_eq!(r.v, RESULT_SCHEMA_VERSION);
    assert_eq!(r.probe_id, "p1");
    assert_eq!(r.check_id, "c", "only check `c` is selected for p1");
    assert!(!r.boot_id.is_empty());
    for (what, s) in [
        ("check_id", Some(&r.check_id)),
        ("vendor", Some(&r.vendor)),
        ("boot_id", Some(&r.boot_id)),
        ("message", r.message.as_ref()),
        ("truncated", r.truncated.as_ref()),
    ] {
        let len = s.map_or(0, String::len);
        assert!(len <= l.max_field_bytes, "{what} of {len} bytes stored");
    }
    let facts = serde_json::to_vec(&r.facts).expect("facts encode").len();
    assert!(
        facts <= limits::MAX_FACTS_BYTES,
        "facts of {facts} bytes stored"
    );
    assert!(r.started_at <= now + l.clock_skew);
    assert!(r.started_at >= now - l.max_result_age);
    assert!(r.timings.total_ms.is_finite() && r.timings.total_ms >= 0.0);
    // What is stored is read back from the store as JSON.
    let json = serde_json::to_vec(r).expect("result encodes");
    serde_json::from_slice::<CheckResult>(&json).expect("a stored result decodes again");
}

fuzz_target!(|body: &[u8]| {
    let Ok(batch) = decode_batch(body) else {
        return;
    };
    let now = now();
    let l = Limits::default();
    let catalog = catalog();
    let fitted: Vec<CheckResult> = batch
        .results
        .iter()
        .filter_map(|r| r.as_ref().ok())
        .map(|r| {
            // As the probe would send it: its own ids, a sane clock, cut to the limits.
            let mut r = r.clone();
            r.v = RESULT_SCHEMA_VERSION;
            r.probe_id = "p1".into();
            r.check_id = "c".into();
            r.vendor = "v".into();
            r.boot_id = "b".into();
            r.started_at = now;
            r.timings.total_ms = 1.0;
            limits::fit(&mut r);
            r
        })
        .collect();
    let n = batch.results.len();
    match validate_batch(batch.results, &probe(), &catalog, &l, now) {
        Err(_) => assert!(n > l.max_batch, "a batch of {n} refused whole"),
        Ok(checked) => {
            assert!(n <= l.max_batch);
            assert_eq!(checked.rows.len() + checked.refused.len(), n);
            let mut indexes: Vec<usize> = checked.refused.iter().map(|r| r.index).collect();
            indexes.dedup();
            assert_eq!(
                indexes.len(),
                checked.refused.len(),
                "one refusal per result"
            );
            assert!(indexes.iter().all(|&i| i < n));
            for row in &checked.rows {
                assert_eq!(row.region, "eu");
                assert_within_limits(&row.result, &l, now);
            }
        }
    }
    if fitted.len() <= l.max_batch {
        let m = fitted.len();
        let checked = validate_batch(
            fitted.into_iter().map(Ok).collect(),
            &probe(),
            &catalog,
            &l,
            now,
        )
        .expect("not too many");
        assert!(
            checked.refused.is_empty(),
            "a result kept within the limits by the probe was refused: {:?}",
            checked.refused
        );
        assert_eq!(checked.rows.len(), m);
    }
});
