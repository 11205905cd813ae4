//! The probe's disk spool over damaged segment files: the record decoder (`scan`) on raw
//! bytes, and `Spool::open` (crash recovery) on a directory of segments built from well-formed
//! records, then torn, flipped and overwritten.
//!
//! Invariants: a scan finds records in increasing position order, within the file, each of
//! which decodes where it was found; recovery succeeds or fails cleanly, is idempotent (a
//! second open finds what the first kept), and leaves a spool that takes new results with
//! positions past every one it still holds or acknowledged.
#![no_main]

use std::time::Duration;

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use vantage_checks::result::CheckResult;
use vantage_probe::fuzzing::{HEADER_LEN, MAGIC, MAX_POSITION, decode, encode, scan};
use vantage_probe::spool::{Spool, SpoolConfig, SpoolError};

/// More than any input holds: peek them all.
const ALL: usize = 1 << 20;

/// A result as the spool holds it; `seq` and `started_at` are replaced.
const RESULT: &str = r#"{"v":1,"check_id":"c","vendor":"v","kind":"tcp","probe_id":"p","boot_id":"b","seq":1,"started_at":"2026-12-05T00:00:00Z","status":"ok","timings":{"total_ms":1.0},"facts":{"kind":"none"}}"#;

#[derive(Arbitrary, Debug)]
struct Record<'a> {
    /// Added to the previous record's position (0 repeats it).
    step: u16,
    /// This position instead (a wild one, as a flipped bit would make).
    at: Option<u64>,
    /// Minutes before 2026-12-05.
    age_min: u16,
    /// A real result, or these bytes as the payload.
    payload: Option<&'a [u8]>,
}

#[derive(Arbitrary, Debug)]
struct Segment<'a> {
    /// The file's name is `seg-<base>.log`.
    base: u16,
    records: Vec<Record<'a>>,
    /// Bytes overwritten: (offset, value).
    damage: Vec<(u16, u8)>,
    /// Cut the file to this length.
    truncate: Option<u16>,
    /// Replace the whole file with these bytes.
    raw: Option<&'a [u8]>,
}

#[derive(Arbitrary, Debug)]
struct Input<'a> {
    segments: Vec<Segment<'a>>,
    acked: Option<&'a str>,
}

fn build(segment: &Segment<'_>, position: &mut u64) -> Vec<u8> {
    if let Some(raw) = segment.raw {
        return raw.to_vec();
    }
    let mut out = MAGIC.to_vec();
    for r in &segment.records {
        *position = r.at.unwrap_or(position.saturating_add(u64::from(r.step)));
        let started_ms = 1_796_428_800_000 - i64::from(r.age_min) * 60_000;
        let payload = match r.payload {
            Some(p) if !p.is_empty() => p.to_vec(),
            _ => RESULT
                .replace("\"seq\":1", &format!("\"seq\":{position}"))
                .into_bytes(),
        };
        encode(&mut out, *position, started_ms, &payload);
    }
    for &(at, byte) in &segment.damage {
        if let Some(b) = out.get_mut(usize::from(at)) {
            *b = byte;
        }
    }
    if let Some(len) = segment.truncate {
        out.truncate(usize::from(len));
    }
    out
}

fn check_scan(data: &[u8]) {
    let s = scan(data, 0);
    assert!(s.valid_end <= data.len() as u64);
    let mut last = 0;
    let mut end = HEADER_LEN.min(data.len() as u64);
    for f in &s.records {
        assert!(f.position > last, "positions {last} then {}", f.position);
        assert!(
            f.offset >= end,
            "record at {} overlaps the one before",
            f.offset
        );
        let r = decode(data, f.offset as usize, last).expect("a found record decodes");
        assert_eq!(
            (r.position, r.started_ms, r.payload.len()),
            (f.position, f.started_ms, f.len as usize)
        );
        last = f.position;
        end = f.offset + r.encoded_len();
    }
    assert_eq!(s.valid_end, end);
    for range in &s.corrupt {
        assert!(range.start < range.end && range.end <= data.len() as u64);
    }
}

fuzz_target!(|input: Input<'_>| {
    let dir = tempfile::tempdir().expect("tempdir");
    let spool_dir = dir.path().join("spool");
    std::fs::create_dir(&spool_dir).expect("spool dir");
    let mut position = 0;
    for segment in input.segments.iter().take(6) {
        let data = build(segment, &mut position);
        check_scan(&data);
        let name = format!("seg-{:020}.log", segment.base);
        std::fs::write(spool_dir.join(name), &data).expect("write segment");
    }
    if let Some(acked) = input.acked {
        std::fs::write(spool_dir.join("acked"), acked).expect("write acked");
    }
    let config = SpoolConfig {
        dir: spool_dir,
        max_bytes: 64 << 20,
        // Nothing in the input is old enough to expire: runs do not depend on the clock.
        max_age: Duration::from_secs(100 * 365 * 86_400),
    };
    let Ok(mut spool) = Spool::open(config.clone()) else {
        return;
    };
    let pending = spool.peek(ALL).expect("peek");
    for w in pending.windows(2) {
        assert!(w[0].position < w[1].position, "peek out of order");
    }
    assert_eq!(
        pending.len() as u64,
        spool.pending(),
        "pending counts what peek finds"
    );
    drop(spool);

    // Recovery is idempotent: a second open finds the same results.
    let mut spool = Spool::open(config.clone()).expect("a recovered spool opens again");
    let again = spool.peek(ALL).expect("peek");
    assert_eq!(
        again.iter().map(|p| p.position).collect::<Vec<_>>(),
        pending.iter().map(|p| p.position).collect::<Vec<_>>()
    );
    // New results go after every one still held. (Not always after every position the
    // first open saw: one whose segment was collected as unreadable may be used again.)
    let last = spool.last_position();
    let result: CheckResult = serde_json::from_str(RESULT).expect("a result");
    if last >= MAX_POSITION {
        // Only damage gets a spool here: it refuses to write what it could not read back.
        assert!(matches!(
            spool.append(&[result]),
            Err(SpoolError::Exhausted { .. })
        ));
        return;
    }
    spool.append(&[result]).expect("append");
    let after = spool.peek(ALL).expect("peek");
    let newest = after.last().expect("the new result").position;
    assert!(
        newest > spool.acked(),
        "new position {newest} not past the acknowledged"
    );
    assert!(
        again.iter().all(|p| p.position < newest),
        "new position {newest} reused"
    );
});
