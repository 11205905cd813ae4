//! The latency histogram blob of a rollup row (compact: bucket index and varint count per
//! non-empty bucket; or the legacy `LATENCY_BUCKETS` little-endian u32 counts), as the store
//! reads it (`decode_buckets`, `Totals::add_latency_blob`), and the SLI a report computes
//! from the sums.
//!
//! Invariants: both readers agree on whether a blob is good and on what it holds; a bad blob
//! leaves the totals as they were; a good one's histogram re-encodes to a blob that decodes
//! to it again and is its own encoding (canonical), and never takes the dense length unless
//! it is a dense blob; percentiles are bucket bounds in order (p50 <= p95 <= p99);
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
        if row.latency.len() == LATENCY_BUCKETS * 4 {
            assert!(decoded.is_ok(), "a dense blob always decodes");
        }
        let mut t = Totals {
            runs: u64::from(row.runs),
            failures: u64::from(row.failures),
            probe_errors: u64::from(row.probe_errors),
            slow: u64::from(row.slow),
            ..Totals::default()
        };
        let added = t.add_latency_blob(row.latency);
        assert_eq!(added.is_ok(), decoded.is_ok());
        match decoded {
            Ok(buckets) => {
                let canonical = encode_buckets(&buckets);
                assert_eq!(decode_buckets(&canonical).expect("re-encoded"), buckets);
                assert_eq!(encode_buckets(&decode_buckets(&canonical).expect("again")), canonical);
                assert_ne!(canonical.len(), LATENCY_BUCKETS * 4);
                assert_eq!(&t.latency[..], &buckets[..]);
            }
            Err(_) => assert_eq!(t.latency, [0; LATENCY_BUCKETS]),
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
