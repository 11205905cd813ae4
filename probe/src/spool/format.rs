//! The bytes of a spool segment: a file header, then checksummed records.
//!
//! ```text
//! segment = MAGIC record*
//! record  = len:u32le crc:u32le position:u64le started_ms:i64le payload[len]
//! ```
//!
//! `payload` is the result's JSON. `crc` is CRC-32 (IEEE) over `len`, `position`, `started_ms`
//! and `payload`, so a record that was torn by a crash or flipped on disk never decodes.
//! `started_ms` repeats the result's `started_at` (Unix milliseconds) so the age bound can be
//! applied at open without parsing JSON.

use std::ops::Range;

/// First bytes of every segment file; the digit is the format version.
pub const MAGIC: &[u8; 8] = b"VSPOOL1\n";
/// Length of [`MAGIC`].
pub const HEADER_LEN: u64 = MAGIC.len() as u64;
/// Length of a record's fixed part, before the payload.
pub const RECORD_HEADER: usize = 24;
/// Largest payload a record may hold; a larger length field is garbage by definition.
pub const MAX_PAYLOAD: usize = 16 << 20;
/// Largest position a record may hold; a larger one is damage (at a million results a second
/// the spool would reach it after 146,000 years), and the position counter never overflows.
pub const MAX_POSITION: u64 = 1 << 62;

/// Appends one encoded record to `out`. The caller keeps `payload` within [`MAX_PAYLOAD`].
pub fn encode(out: &mut Vec<u8>, position: u64, started_ms: i64, payload: &[u8]) {
    debug_assert!(!payload.is_empty() && payload.len() <= MAX_PAYLOAD);
    let len = u32::try_from(payload.len())
        .unwrap_or(u32::MAX)
        .to_le_bytes();
    let start = out.len();
    out.extend_from_slice(&len);
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&position.to_le_bytes());
    out.extend_from_slice(&started_ms.to_le_bytes());
    out.extend_from_slice(payload);
    let crc = checksum(&len, &out[start + 8..]);
    out[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
}

/// One record that decoded with a good checksum.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Record<'a> {
    /// The record's spool position.
    pub position: u64,
    /// The result's `started_at`, in Unix milliseconds.
    pub started_ms: i64,
    /// The result's JSON.
    pub payload: &'a [u8],
}

impl Record<'_> {
    /// Bytes the record takes on disk.
    pub fn encoded_len(&self) -> u64 {
        (RECORD_HEADER + self.payload.len()) as u64
    }
}

/// Decodes the record starting at `offset` of `data` if it is whole, its checksum holds and its
/// position is above `after`. Cheap tests come first: the resynchronising scan calls this at
/// every byte offset of a damaged region.
pub fn decode(data: &[u8], offset: usize, after: u64) -> Option<Record<'_>> {
    let rest = data.get(offset..)?;
    if rest.len() < RECORD_HEADER {
        return None;
    }
    let len = u32::from_le_bytes(rest[0..4].try_into().ok()?) as usize;
    if len == 0 || len > MAX_PAYLOAD || rest.len() - RECORD_HEADER < len {
        return None;
    }
    let position = u64::from_le_bytes(rest[8..16].try_into().ok()?);
    let payload = &rest[RECORD_HEADER..RECORD_HEADER + len];
    // Payloads are JSON objects; this rejects zero-filled and most random regions early.
    if position <= after || position > MAX_POSITION || payload[0] != b'{' {
        return None;
    }
    let crc = u32::from_le_bytes(rest[4..8].try_into().ok()?);
    if crc != checksum(&rest[0..4], &rest[8..RECORD_HEADER + len]) {
        return None;
    }
    Some(Record {
        position,
        started_ms: i64::from_le_bytes(rest[16..24].try_into().ok()?),
        payload,
    })
}

fn checksum(len: &[u8], rest: &[u8]) -> u32 {
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(len);
    hasher.update(rest);
    hasher.finalize()
}

/// A record found by [`scan`], without its payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Found {
    /// The record's spool position.
    pub position: u64,
    /// The result's `started_at`, in Unix milliseconds.
    pub started_ms: i64,
    /// Offset of the record's first byte in the segment file.
    pub offset: u64,
    /// Length of the payload.
    pub len: u32,
}

/// What a whole segment holds.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Scan {
    /// Every record that decoded, in file order, positions strictly increasing.
    pub records: Vec<Found>,
    /// Damaged byte ranges between two good records.
    pub corrupt: Vec<Range<u64>>,
    /// End of the last good record (or of the header): bytes past it are a torn tail.
    pub valid_end: u64,
}

/// Walks the records of a segment (`data` is the whole file, header included). Positions must
/// exceed `after` and increase. A record that does not decode starts a damaged region, which
/// ends at the next offset where a record decodes; if none does, the region is a torn tail and
/// the scan ends at `valid_end`.
pub fn scan(data: &[u8], after: u64) -> Scan {
    let mut scan = Scan {
        valid_end: HEADER_LEN.min(data.len() as u64),
        ..Scan::default()
    };
    let mut last = after;
    let mut offset = HEADER_LEN as usize;
    while offset < data.len() {
        if let Some(record) = decode(data, offset, last) {
            scan.records.push(Found {
                position: record.position,
                started_ms: record.started_ms,
                offset: offset as u64,
                len: record.payload.len() as u32,
            });
            last = record.position;
            offset += record.encoded_len() as usize;
            scan.valid_end = offset as u64;
            continue;
        }
        let limit = data.len().saturating_sub(RECORD_HEADER);
        match (offset + 1..=limit).find(|&at| decode(data, at, last).is_some()) {
            Some(next) => {
                scan.corrupt.push(offset as u64..next as u64);
                offset = next;
            }
            None => break,
        }
    }
    scan
}

#[cfg(test)]
mod tests {
    use super::*;

    fn segment(records: &[(u64, &[u8])]) -> Vec<u8> {
        let mut out = MAGIC.to_vec();
        for (position, payload) in records {
            encode(&mut out, *position, 1_000 * *position as i64, payload);
        }
        out
    }

    #[test]
    fn records_round_trip() {
        let data = segment(&[(1, b"{\"a\":1}"), (2, b"{}")]);
        let scan = scan(&data, 0);
        assert_eq!(scan.valid_end, data.len() as u64);
        assert!(scan.corrupt.is_empty());
        assert_eq!(scan.records.len(), 2);
        let second = decode(&data, scan.records[1].offset as usize, 1).expect("decodes");
        assert_eq!(second.position, 2);
        assert_eq!(second.started_ms, 2_000);
        assert_eq!(second.payload, b"{}");
    }

    #[test]
    fn every_flipped_bit_of_a_record_is_caught() {
        let data = segment(&[(7, b"{\"check\":\"x\"}")]);
        for byte in HEADER_LEN as usize..data.len() {
            for bit in 0..8 {
                let mut bad = data.clone();
                bad[byte] ^= 1 << bit;
                assert_eq!(
                    decode(&bad, HEADER_LEN as usize, 0),
                    None,
                    "byte {byte} bit {bit}"
                );
            }
        }
    }

    #[test]
    fn positions_at_or_below_after_do_not_decode() {
        let data = segment(&[(5, b"{}")]);
        assert!(decode(&data, 8, 4).is_some());
        assert!(decode(&data, 8, 5).is_none());
    }

    #[test]
    fn every_truncation_leaves_only_whole_records() {
        let data = segment(&[(1, b"{\"n\":1}"), (2, b"{\"n\":22}"), (3, b"{\"n\":333}")]);
        let whole = scan(&data, 0).records;
        for cut in HEADER_LEN as usize..=data.len() {
            let scan = scan(&data[..cut], 0);
            let expect: Vec<Found> = whole
                .iter()
                .copied()
                .filter(|r| r.offset as usize + RECORD_HEADER + r.len as usize <= cut)
                .collect();
            assert_eq!(scan.records, expect, "cut at {cut}");
            assert!(scan.corrupt.is_empty(), "cut at {cut}");
            let end = expect.last().map_or(HEADER_LEN, |r| {
                r.offset + (RECORD_HEADER as u64) + u64::from(r.len)
            });
            assert_eq!(scan.valid_end, end, "cut at {cut}");
        }
    }

    #[test]
    fn a_damaged_middle_record_is_skipped_and_the_rest_found() {
        let mut data = segment(&[(1, b"{\"n\":1}"), (2, b"{\"n\":2}"), (3, b"{\"n\":3}")]);
        let second = scan(&data, 0).records[1];
        data[second.offset as usize + RECORD_HEADER + 2] ^= 0xff;
        let scan = scan(&data, 0);
        let positions: Vec<u64> = scan.records.iter().map(|r| r.position).collect();
        assert_eq!(positions, [1, 3]);
        assert_eq!(scan.corrupt.len(), 1);
        assert_eq!(scan.corrupt[0].start, second.offset);
        assert_eq!(scan.valid_end, data.len() as u64);
    }

    #[test]
    fn zeroes_and_garbage_after_the_last_record_are_a_torn_tail() {
        let good = segment(&[(1, b"{\"n\":1}")]);
        for tail in [vec![0u8; 100], b"{\"garbage".to_vec(), vec![0xff; 3]] {
            let mut data = good.clone();
            data.extend_from_slice(&tail);
            let scan = scan(&data, 0);
            assert_eq!(scan.records.len(), 1);
            assert!(scan.corrupt.is_empty());
            assert_eq!(scan.valid_end, good.len() as u64);
        }
    }
}
