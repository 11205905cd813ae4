//! The latency histogram blob of a rollup row (`LATENCY_BUCKETS` little-endian u32 counts),
//! as the store reads it (`decode_buckets`, `Totals::add_latency_blob`), and the SLI a
//! report computes from the sums.
//!
//! Invariants: a blob decodes exactly when it has the right length, and re-encodes to
//! itself; both readers agree; percentiles are bucket bounds in order (p50 <= p95 <= p99);
//! availability is a share.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use vantage_coordinator::fuzzing::{decode_buckets, encode_buckets};
use vantage_coordinator::report::sla::sli;
use vantage_coordinator::store::LATENCY_BUCKETS;
use vantage_coordinator::store::report::Totals;

#[derive(Arbitrary, Debug)]
struct Row<'a> {
    runs: u32,
    failures: u32,
    probe_errors: u32,
    slow: u32,
    latency: &'a [u8],
}

fuzz_target!(|rows: Vec<Row<'_>>| {
    let mut sum = Totals::default();
    for row in rows.iter().take(64) {
        let decoded = decode_buckets(row.latency);
        assert_eq!(decoded.is_ok(), row.latency.len() == LATENCY_BUCKETS * 4);
        let mut t = Totals {
            runs: u64::from(row.runs),
            failures: u64::from(row.failures),
            probe_errors: u64::from(row.probe_errors),
            slow: u64::from(row.slow),
            ..Totals::default()
        };
        let added = t.add_latency_blob(row.latency);
        assert_eq!(added.is_ok(), decoded.is_ok());
        if let Ok(buckets) = decoded {
            assert_eq!(encode_buckets(&buckets), row.latency);
            assert_eq!(&t.latency[..], &buckets[..]);
        }
        sum.add(&t);
    }
    let s = sli(&sum);
    if let Some(a) = s.availability {
        assert!((0.0..=1.0).contains(&a), "availability {a}");
    }
    if let Some(p) = s.latency_ms {
        assert!(p.p50 <= p.p95 && p.p95 <= p.p99, "{p:?}");
    }
    assert!(s.good <= s.valid && s.valid <= s.runs);
});
