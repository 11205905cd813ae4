//! The disk spool of results the coordinator has not acknowledged yet.
//!
//! Every result is appended here before it is sent, and removed only once the coordinator
//! acknowledged it, so a probe that is cut off, restarted or killed delivers every result
//! once it is back, within the spool's bounds (ARCHITECTURE.md §3, §6).
//!
//! On disk, `dir` holds:
//! - `seg-<20-digit position>.log`: append-only segments (record format in `spool/format.rs`). The name is
//!   the position of the segment's first record, or of the next record when it was created.
//!   A segment rolls over at about an eighth of `max_bytes` (4 KiB to 4 MiB).
//! - `acked`: the last acknowledged position in decimal, replaced by write-temp, fsync,
//!   rename, fsync(dir).
//!
//! Every record carries a position, assigned by the spool, that increases across restarts
//! (the result's own `seq` restarts at each boot). The rules that make the spool crash-atomic:
//! - `append` writes a whole batch with one write and one `fsync` before it returns Ok;
//!   a new segment is written under a `.tmp` name, synced and renamed, then the directory is
//!   synced. A crash mid-append leaves at most a torn tail: at open, the records of every
//!   segment are checked (length and CRC-32) and anything after the last good record is cut.
//!   A damaged record between good ones is skipped, counted and logged, never parsed.
//! - `ack` makes the new `acked` file durable before it forgets anything, and only then
//!   deletes segments whose every record is acknowledged or dropped. A crash in between only
//!   leaves records at or below `acked`, which open ignores.
//! - Positions come from the records themselves, the `acked` file and the newest segment's
//!   name, and the newest segment is never deleted, so positions never repeat after a restart.
//!
//! The spool keeps an index of the records not yet acknowledged in memory (32 bytes each,
//! against 0.5 to 1 KB of JSON on disk) and reads payloads back only in [`Spool::peek`].

pub(crate) mod format;

use std::collections::VecDeque;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tracing::{debug, info, warn};
use vantage_checks::result::CheckResult;

use self::format::{HEADER_LEN, MAGIC, MAX_PAYLOAD, RECORD_HEADER};

/// Smallest `max_bytes` accepted: room for a few segments of a few results each.
pub const MIN_MAX_BYTES: u64 = 64 << 10;
/// Segments roll over at `max_bytes / SEGMENTS_PER_BOUND`, so the size bound drops at most
/// about an eighth of the spool at once.
const SEGMENTS_PER_BOUND: u64 = 8;
const MIN_SEGMENT_BYTES: u64 = 4 << 10;
const MAX_SEGMENT_BYTES: u64 = 4 << 20;
const ACKED_FILE: &str = "acked";
const TMP_SUFFIX: &str = ".tmp";

/// Where the spool lives and how much it may hold.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SpoolConfig {
    /// The spool's own directory, created if missing. One probe process per directory.
    pub dir: PathBuf,
    /// Upper bound on the bytes of the segment files; the oldest results are dropped beyond it.
    /// At least [`MIN_MAX_BYTES`].
    pub max_bytes: u64,
    /// Results whose `started_at` is older than this are dropped.
    pub max_age: Duration,
}

/// Errors of the spool. Each names the file involved.
#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    /// A file system operation failed.
    #[error("spool {op} failed on {path}: {source}")]
    Io {
        /// What the spool was doing (`read`, `write`, `fsync`, …).
        op: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// A file named like a segment does not start with the segment header.
    #[error(
        "{path} is named like a spool segment but does not start with the spool header; \
         move it out of the spool directory"
    )]
    NotASegment {
        /// The file.
        path: PathBuf,
    },
    /// The configuration cannot work.
    #[error("invalid spool config: {0}")]
    Config(String),
    /// Positions would pass [`format::MAX_POSITION`]: only damage that planted a record with
    /// a position that large (and a checksum that holds) gets here.
    #[error(
        "spool positions are exhausted in {dir} (a damaged record claimed position {last}); \
         stop the probe and remove the directory"
    )]
    Exhausted {
        /// The spool directory.
        dir: PathBuf,
        /// The last position used.
        last: u64,
    },
    /// A result could not be encoded.
    #[error("cannot encode result `{check_id}` seq {seq} for the spool: {source}")]
    Encode {
        /// The result's check.
        check_id: String,
        /// The result's sequence number.
        seq: u64,
        /// The underlying error.
        #[source]
        source: serde_json::Error,
    },
    /// A result's JSON is larger than a spool record may hold.
    #[error(
        "result `{check_id}` seq {seq} is {bytes} bytes of JSON; a spool record holds at most \
         16 MiB"
    )]
    TooLarge {
        /// The result's check.
        check_id: String,
        /// The result's sequence number.
        seq: u64,
        /// Its encoded size.
        bytes: usize,
    },
    /// An acknowledgement named a position the spool never handed out.
    #[error("cannot ack through position {through}: the last appended position is {last}")]
    AckBeyondEnd {
        /// The position acknowledged.
        through: u64,
        /// The last position appended so far.
        last: u64,
    },
}

/// A result waiting for acknowledgement, with the position to acknowledge it by.
#[derive(Clone, Debug, PartialEq)]
pub struct Pending {
    /// The spool position; pass it (or a later one) to [`Spool::ack`].
    pub position: u64,
    /// The result as appended.
    pub result: CheckResult,
    /// Its JSON's length, as spooled (what it adds to a batch's body).
    pub bytes: usize,
}

/// Results encoded for the spool ([`Spool::append_encoded`]): their JSON, end to end.
#[derive(Debug, Default)]
pub struct Encoded {
    payloads: Vec<u8>,
    /// Each result's `started_at` (Unix ms) and JSON length, in order.
    records: Vec<(i64, usize)>,
}

impl Encoded {
    /// Encodes `results`; refuses one whose JSON a spool record cannot hold.
    pub fn new(results: &[CheckResult]) -> Result<Self, SpoolError> {
        let mut out = Self {
            payloads: Vec::new(),
            records: Vec::with_capacity(results.len()),
        };
        for result in results {
            let at = out.payloads.len();
            serde_json::to_writer(&mut out.payloads, result).map_err(|source| {
                SpoolError::Encode {
                    check_id: result.check_id.clone(),
                    seq: result.seq,
                    source,
                }
            })?;
            let len = out.payloads.len() - at;
            if len > MAX_PAYLOAD {
                return Err(SpoolError::TooLarge {
                    check_id: result.check_id.clone(),
                    seq: result.seq,
                    bytes: len,
                });
            }
            out.records.push((unix_ms(result), len));
        }
        Ok(out)
    }
}

/// Spooled records not yet decoded ([`Spool::peek_raw`]), oldest first.
#[derive(Debug, Default)]
pub struct Raw {
    payloads: Vec<u8>,
    records: Vec<RawRecord>,
}

#[derive(Debug)]
struct RawRecord {
    position: u64,
    offset: usize,
    len: usize,
}

impl Raw {
    /// Decodes the records: the results, and the positions of those whose JSON this version
    /// cannot parse (pass them to [`Spool::discard`]).
    pub fn decode(self) -> (Vec<Pending>, Vec<u64>) {
        let mut pending = Vec::with_capacity(self.records.len());
        let mut unreadable = Vec::new();
        for r in &self.records {
            match serde_json::from_slice::<CheckResult>(&self.payloads[r.offset..r.offset + r.len])
            {
                Ok(result) => pending.push(Pending {
                    position: r.position,
                    result,
                    bytes: r.len,
                }),
                Err(e) => {
                    warn!(
                        position = r.position,
                        reason = %e,
                        "skipping a spooled result that cannot be read back"
                    );
                    unreadable.push(r.position);
                }
            }
        }
        (pending, unreadable)
    }
}

/// The disk spool. Not shared: the agent gives it a thread of its own (blocking I/O).
pub struct Spool {
    dir: PathBuf,
    max_bytes: u64,
    max_age: Duration,
    segment_bytes: u64,
    /// Oldest first; appends go to the last one, which is never deleted (its name keeps the
    /// next position after a restart).
    segments: VecDeque<Segment>,
    /// Write handle on the last segment; `None` after a failed write, so the next append
    /// starts a fresh segment rather than trusting the damaged one.
    writer: Option<File>,
    acked: u64,
    next_position: u64,
    pending: u64,
    bytes: u64,
    dropped: u64,
    recovered_torn: u64,
    corrupt: u64,
}

#[derive(Debug)]
struct Segment {
    path: PathBuf,
    base: u64,
    size: u64,
    /// Records neither acknowledged nor dropped, positions increasing.
    entries: VecDeque<Entry>,
    /// No entry started before this (Unix ms), so the age bound can skip the segment.
    oldest_ms: i64,
}

#[derive(Clone, Copy, Debug)]
struct Entry {
    position: u64,
    offset: u64,
    len: u32,
    started_ms: i64,
}

impl std::fmt::Debug for Spool {
    // The index can hold millions of entries: show the totals only.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Spool")
            .field("dir", &self.dir)
            .field("segments", &self.segments.len())
            .field("pending", &self.pending)
            .field("bytes", &self.bytes)
            .field("acked", &self.acked)
            .field("next_position", &self.next_position)
            .field("dropped", &self.dropped)
            .field("recovered_torn", &self.recovered_torn)
            .field("corrupt", &self.corrupt)
            .finish()
    }
}

impl Spool {
    /// Opens the spool in `config.dir`, creating it if needed, and recovers from whatever a
    /// crash left: torn tails are cut, damaged records skipped, temporary files removed.
    pub fn open(config: SpoolConfig) -> Result<Spool, SpoolError> {
        if config.max_bytes < MIN_MAX_BYTES {
            return Err(SpoolError::Config(format!(
                "max_bytes must be at least {MIN_MAX_BYTES} (64 KiB), e.g. 268435456 for 256 MiB; \
                 got {}",
                config.max_bytes
            )));
        }
        if config.max_age.is_zero() {
            return Err(SpoolError::Config(
                "max_age must be more than zero, e.g. 24h".to_owned(),
            ));
        }
        let dir = config.dir;
        fs::create_dir_all(&dir).map_err(io_err("create directory", &dir))?;
        let parent = match dir.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
            _ => PathBuf::from("."),
        };
        sync_dir(&parent)?;

        let mut spool = Spool {
            segment_bytes: (config.max_bytes / SEGMENTS_PER_BOUND)
                .clamp(MIN_SEGMENT_BYTES, MAX_SEGMENT_BYTES),
            max_bytes: config.max_bytes,
            max_age: config.max_age,
            segments: VecDeque::new(),
            writer: None,
            acked: 0,
            next_position: 1,
            pending: 0,
            bytes: 0,
            dropped: 0,
            recovered_torn: 0,
            corrupt: 0,
            dir,
        };
        spool.recover()?;
        info!(
            dir = %spool.dir.display(),
            pending = spool.pending,
            bytes = spool.bytes,
            acked = spool.acked,
            next_position = spool.next_position,
            recovered_torn = spool.recovered_torn,
            corrupt = spool.corrupt,
            "opened result spool"
        );
        Ok(spool)
    }

    /// Appends `results` in order, with one write and one fsync, and returns once they are
    /// durable. Applies both bounds first: results already older than `max_age` are dropped,
    /// and the oldest segments are dropped until the batch fits in `max_bytes`.
    pub fn append(&mut self, results: &[CheckResult]) -> Result<(), SpoolError> {
        self.append_encoded(&Encoded::new(results)?)
    }

    /// [`Spool::append`] of results already encoded, wherever they live: the spool's own
    /// thread then handles bytes only.
    pub fn append_encoded(&mut self, batch: &Encoded) -> Result<(), SpoolError> {
        self.append_at(batch, SystemTime::now())
    }

    fn append_at(&mut self, batch: &Encoded, now: SystemTime) -> Result<(), SpoolError> {
        self.expire(now)?;
        let cutoff = self.cutoff_ms(now);
        let mut encoded = Vec::with_capacity(batch.records.len());
        let mut too_old = 0;
        let mut at = 0;
        for &(started_ms, len) in &batch.records {
            let payload = &batch.payloads[at..at + len];
            at += len;
            if started_ms < cutoff {
                too_old += 1;
                continue;
            }
            encoded.push((started_ms, payload));
        }
        self.report_drop(too_old, "age");

        // A batch larger than the whole spool keeps its newest results.
        let room = self.max_bytes - HEADER_LEN;
        let mut total: u64 = encoded.iter().map(|(_, p)| record_len(p)).sum();
        let mut skip = 0;
        while total > room {
            total -= record_len(encoded[skip].1);
            skip += 1;
        }
        let mut dropped = skip as u64;
        let encoded = &encoded[skip..];
        if encoded.is_empty() {
            self.report_drop(dropped, "size");
            return Ok(());
        }

        loop {
            let header = if self.needs_roll(total) {
                HEADER_LEN
            } else {
                0
            };
            if self.bytes + total + header <= self.max_bytes {
                break;
            }
            if self.segments.len() <= 1 {
                if self.writer.is_some()
                    && self.segments.back().is_none_or(|s| s.size == HEADER_LEN)
                {
                    // An empty newest segment: the trimmed batch fits by construction.
                    break;
                }
                // The oldest segment is the one being written: start the next one first, so
                // the newest segment, whose name carries the next position, is never missing.
                self.roll()?;
                continue;
            }
            dropped += self.drop_oldest_segment()?;
        }
        self.report_drop(dropped, "size");
        if self.next_position + encoded.len() as u64 > format::MAX_POSITION + 1 {
            // Written past the largest position, a record would not be read back.
            return Err(SpoolError::Exhausted {
                dir: self.dir.clone(),
                last: self.next_position - 1,
            });
        }
        if self.needs_roll(total) {
            self.roll()?;
        }

        let first = self.next_position;
        let mut buf = Vec::with_capacity(total as usize);
        let mut entries = Vec::with_capacity(encoded.len());
        let Some(segment) = self.segments.back_mut() else {
            unreachable!("roll() leaves a segment to write to");
        };
        for (i, (started_ms, payload)) in encoded.iter().enumerate() {
            let position = first + i as u64;
            entries.push(Entry {
                position,
                offset: segment.size + buf.len() as u64,
                len: payload.len() as u32,
                started_ms: *started_ms,
            });
            format::encode(&mut buf, position, *started_ms, payload);
        }
        // Positions are used even if the write fails: its bytes may be on disk anyway.
        self.next_position = first + encoded.len() as u64;
        let Some(file) = self.writer.as_mut() else {
            unreachable!("roll() leaves a writer");
        };
        let written = file
            .seek(SeekFrom::Start(segment.size))
            .and_then(|_| file.write_all(&buf))
            .map_err(io_err("write", &segment.path))
            .and_then(|()| file.sync_data().map_err(io_err("fsync", &segment.path)));
        if let Err(e) = written {
            // Best effort: cut the partial batch, and never write to this segment again.
            let _ = file.set_len(segment.size);
            self.writer = None;
            return Err(e);
        }
        segment.size += total;
        segment.oldest_ms = entries
            .iter()
            .map(|e| e.started_ms)
            .fold(segment.oldest_ms, i64::min);
        segment.entries.extend(entries);
        self.bytes += total;
        self.pending += encoded.len() as u64;
        Ok(())
    }

    /// Up to `max` results not yet acknowledged, oldest first, without removing them. Drops
    /// results older than `max_age` first. A record that cannot be read back (damaged on disk,
    /// or JSON this version cannot parse) is skipped, counted in [`Spool::corrupt`] and logged.
    pub fn peek(&mut self, max: usize) -> Result<Vec<Pending>, SpoolError> {
        let (pending, unreadable) = self.peek_raw(max)?.decode();
        self.discard(&unreadable)?;
        Ok(pending)
    }

    /// [`Spool::peek`] without decoding: the records' JSON, checked against their lengths and
    /// checksums, to decode wherever the results are wanted ([`Raw::decode`]); records that
    /// then fail to decode go to [`Spool::discard`].
    pub fn peek_raw(&mut self, max: usize) -> Result<Raw, SpoolError> {
        self.expire(SystemTime::now())?;
        let mut out = Raw::default();
        let mut bad = Vec::new();
        for segment in &self.segments {
            let mut next = 0;
            while out.records.len() < max && next < segment.entries.len() {
                let end = segment.entries.len().min(next + max - out.records.len());
                let chunk = segment.entries.range(next..end);
                read_chunk(segment, chunk, &mut out, &mut bad)?;
                next = end;
            }
            if out.records.len() >= max {
                break;
            }
        }
        self.discard(&bad)?;
        Ok(out)
    }

    /// Skips the records at `positions` for good, counting them in [`Spool::corrupt`]: they
    /// cannot be read back (damaged on disk, or JSON this version cannot parse).
    pub fn discard(&mut self, positions: &[u64]) -> Result<(), SpoolError> {
        if positions.is_empty() {
            return Ok(());
        }
        let mut removed = 0;
        for segment in &mut self.segments {
            let before = segment.entries.len();
            segment.entries.retain(|e| !positions.contains(&e.position));
            removed += (before - segment.entries.len()) as u64;
        }
        self.corrupt += removed;
        self.pending -= removed;
        self.collect_garbage()
    }

    /// Acknowledges every result at or below position `through`: they are never returned
    /// again, even after a restart. Acknowledging an old position again does nothing.
    pub fn ack(&mut self, through: u64) -> Result<(), SpoolError> {
        if through <= self.acked {
            return Ok(());
        }
        if through >= self.next_position {
            return Err(SpoolError::AckBeyondEnd {
                through,
                last: self.next_position - 1,
            });
        }
        self.write_acked(through)?;
        self.acked = through;
        for segment in &mut self.segments {
            while segment
                .entries
                .front()
                .is_some_and(|e| e.position <= through)
            {
                segment.entries.pop_front();
                self.pending -= 1;
            }
            if !segment.entries.is_empty() {
                break;
            }
        }
        self.collect_garbage()
    }

    /// Drops the results whose `started_at` is more than `max_age` before `now`, and returns
    /// how many. [`Spool::append`] and [`Spool::peek`] call it with the current time.
    pub fn expire(&mut self, now: SystemTime) -> Result<u64, SpoolError> {
        let cutoff = self.cutoff_ms(now);
        let mut expired = 0;
        for segment in &mut self.segments {
            if segment.oldest_ms >= cutoff {
                continue;
            }
            let before = segment.entries.len();
            segment.entries.retain(|e| e.started_ms >= cutoff);
            expired += (before - segment.entries.len()) as u64;
            segment.oldest_ms = oldest(&segment.entries);
        }
        self.pending -= expired;
        self.report_drop(expired, "age");
        if expired > 0 {
            self.collect_garbage()?;
        }
        Ok(expired)
    }

    /// Results neither acknowledged nor dropped.
    pub fn pending(&self) -> u64 {
        self.pending
    }

    /// Bytes of the segment files on disk.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Results dropped at the size or age bound since open.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// Torn tails (a crash mid-append) cut from the newest segment at open; a tail counts once,
    /// however many records the interrupted batch held. None of them had been reported durable.
    pub fn recovered_torn(&self) -> u64 {
        self.recovered_torn
    }

    /// Damaged records skipped since open: a bad checksum between good records, a bad tail of
    /// an older segment, or JSON that no longer parses.
    pub fn corrupt(&self) -> u64 {
        self.corrupt
    }

    /// The last acknowledged position (0 before the first acknowledgement).
    pub fn acked(&self) -> u64 {
        self.acked
    }

    /// The position of the last record appended (0 if none ever was). The next append's
    /// records get the positions after it.
    pub fn last_position(&self) -> u64 {
        self.next_position - 1
    }

    /// The spool's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn recover(&mut self) -> Result<(), SpoolError> {
        let mut found = Vec::new();
        let entries = fs::read_dir(&self.dir).map_err(io_err("list", &self.dir))?;
        for entry in entries {
            let entry = entry.map_err(io_err("list", &self.dir))?;
            let path = entry.path();
            let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
                continue;
            };
            if name.ends_with(TMP_SUFFIX) {
                // Written by an append or ack that did not finish: never promised to anyone.
                debug!(path = %path.display(), "removing unfinished spool file");
                fs::remove_file(&path).map_err(io_err("remove", &path))?;
            } else if let Some(base) = parse_segment_name(&name) {
                found.push((base, path));
            }
        }
        found.sort();
        self.acked = self.read_acked()?;

        let mut last_position = 0;
        let count = found.len();
        for (i, (base, path)) in found.into_iter().enumerate() {
            let newest = i + 1 == count;
            let data = fs::read(&path).map_err(io_err("read", &path))?;
            if data.len() < MAGIC.len() || data[..MAGIC.len()] != MAGIC[..] {
                let head = &data[..data.len().min(MAGIC.len())];
                if MAGIC.starts_with(head) || head.iter().all(|&b| b == 0) {
                    // Created but never synced: no record was ever promised from it.
                    warn!(path = %path.display(), "removing a segment whose header was torn");
                    fs::remove_file(&path).map_err(io_err("remove", &path))?;
                    continue;
                }
                return Err(SpoolError::NotASegment { path });
            }
            let scan = format::scan(&data, last_position);
            for range in &scan.corrupt {
                warn!(
                    path = %path.display(),
                    offset = range.start,
                    bytes = range.end - range.start,
                    "skipping a damaged record in the result spool"
                );
            }
            self.corrupt += scan.corrupt.len() as u64;
            let mut size = data.len() as u64;
            if scan.valid_end < size {
                let torn = size - scan.valid_end;
                if newest {
                    self.recovered_torn += 1;
                    warn!(path = %path.display(), bytes = torn, "cutting a torn record from the result spool");
                } else {
                    self.corrupt += 1;
                    warn!(path = %path.display(), bytes = torn, "cutting a damaged tail from an older spool segment");
                }
                let file = OpenOptions::new()
                    .write(true)
                    .open(&path)
                    .map_err(io_err("open", &path))?;
                file.set_len(scan.valid_end)
                    .map_err(io_err("truncate", &path))?;
                file.sync_all().map_err(io_err("fsync", &path))?;
                size = scan.valid_end;
            }
            if let Some(last) = scan.records.last() {
                last_position = last.position;
            }
            let entries: VecDeque<Entry> = scan
                .records
                .iter()
                .filter(|r| r.position > self.acked)
                .map(|r| Entry {
                    position: r.position,
                    offset: r.offset,
                    len: r.len,
                    started_ms: r.started_ms,
                })
                .collect();
            self.pending += entries.len() as u64;
            self.bytes += size;
            self.segments.push_back(Segment {
                path,
                base,
                size,
                oldest_ms: oldest(&entries),
                entries,
            });
        }
        let newest_base = self.segments.back().map_or(0, |s| s.base);
        self.next_position = (self.acked + 1).max(last_position + 1).max(newest_base);
        if let Some(segment) = self.segments.back() {
            let file = OpenOptions::new()
                .write(true)
                .open(&segment.path)
                .map_err(io_err("open", &segment.path))?;
            self.writer = Some(file);
        }
        self.collect_garbage()
    }

    fn read_acked(&self) -> Result<u64, SpoolError> {
        let path = self.dir.join(ACKED_FILE);
        let text = match fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
            Err(e) => return Err(io_err("read", &path)(e)),
        };
        match text.trim_end_matches('\n').parse::<u64>() {
            Ok(acked) if acked <= format::MAX_POSITION => Ok(acked),
            _ => {
                // Only disk damage gets here (the file is replaced by rename). Resending is
                // safe, the coordinator de-duplicates; losing results is not.
                warn!(path = %path.display(), content = %text.chars().take(40).collect::<String>().escape_debug(), "ignoring an unreadable acked file: unacknowledged results may be sent again");
                Ok(0)
            }
        }
    }

    fn write_acked(&self, through: u64) -> Result<(), SpoolError> {
        let path = self.dir.join(ACKED_FILE);
        let tmp = self.dir.join(format!("{ACKED_FILE}{TMP_SUFFIX}"));
        let mut file = File::create(&tmp).map_err(io_err("create", &tmp))?;
        file.write_all(format!("{through}\n").as_bytes())
            .map_err(io_err("write", &tmp))?;
        file.sync_all().map_err(io_err("fsync", &tmp))?;
        fs::rename(&tmp, &path).map_err(io_err("rename", &path))?;
        sync_dir(&self.dir)
    }

    fn needs_roll(&self, batch: u64) -> bool {
        match (self.segments.back(), &self.writer) {
            (Some(last), Some(_)) => {
                last.size > HEADER_LEN && last.size + batch > self.segment_bytes
            }
            _ => true,
        }
    }

    /// Starts a new segment named after the next position and makes it the one written to.
    fn roll(&mut self) -> Result<(), SpoolError> {
        let base = self.next_position;
        if self.segments.back().is_some_and(|s| s.base == base) {
            // The newest segment holds nothing (its name is the next position); replace it.
            if let Some(old) = self.segments.pop_back() {
                self.bytes -= old.size;
                fs::remove_file(&old.path).map_err(io_err("remove", &old.path))?;
            }
        }
        let path = self.dir.join(segment_name(base));
        let tmp = self.dir.join(format!("{}{TMP_SUFFIX}", segment_name(base)));
        let mut file = File::create(&tmp).map_err(io_err("create", &tmp))?;
        file.write_all(MAGIC).map_err(io_err("write", &tmp))?;
        file.sync_all().map_err(io_err("fsync", &tmp))?;
        fs::rename(&tmp, &path).map_err(io_err("rename", &path))?;
        sync_dir(&self.dir)?;
        debug!(path = %path.display(), "started a new spool segment");
        self.segments.push_back(Segment {
            path,
            base,
            size: HEADER_LEN,
            entries: VecDeque::new(),
            oldest_ms: i64::MAX,
        });
        self.bytes += HEADER_LEN;
        self.writer = Some(file);
        self.collect_garbage()
    }

    /// Deletes the oldest segment, which is not the newest, and returns how many results it
    /// still held.
    fn drop_oldest_segment(&mut self) -> Result<u64, SpoolError> {
        debug_assert!(self.segments.len() > 1);
        let Some(segment) = self.segments.pop_front() else {
            return Ok(0);
        };
        let n = segment.entries.len() as u64;
        self.pending -= n;
        self.bytes -= segment.size;
        fs::remove_file(&segment.path).map_err(io_err("remove", &segment.path))?;
        sync_dir(&self.dir)?;
        Ok(n)
    }

    /// Deletes every segment but the newest that holds no pending result.
    fn collect_garbage(&mut self) -> Result<(), SpoolError> {
        let mut removed = false;
        let mut i = 0;
        while i + 1 < self.segments.len() {
            if self.segments[i].entries.is_empty() {
                if let Some(segment) = self.segments.remove(i) {
                    self.bytes -= segment.size;
                    fs::remove_file(&segment.path).map_err(io_err("remove", &segment.path))?;
                    removed = true;
                }
                continue;
            }
            i += 1;
        }
        // Only the newest segment may hold positions past `acked`, so a deletion that does not
        // survive a crash brings back nothing that is not acknowledged or droppable again.
        if removed {
            sync_dir(&self.dir)?;
        }
        Ok(())
    }

    fn cutoff_ms(&self, now: SystemTime) -> i64 {
        let now_ms = match now.duration_since(UNIX_EPOCH) {
            Ok(d) => i64::try_from(d.as_millis()).unwrap_or(i64::MAX),
            Err(e) => -i64::try_from(e.duration().as_millis()).unwrap_or(i64::MAX),
        };
        now_ms.saturating_sub(i64::try_from(self.max_age.as_millis()).unwrap_or(i64::MAX))
    }

    /// One named event for drops at a bound: counted and logged together.
    /// Counts `n` new results that could not be written (a full or failing disk) as dropped:
    /// the spool keeps what it holds, the oldest results, and the next append tries again.
    pub fn lost(&mut self, n: u64) {
        self.dropped += n;
    }

    fn report_drop(&mut self, n: u64, reason: &'static str) {
        if n == 0 {
            return;
        }
        self.dropped += n;
        warn!(
            dropped = n,
            reason,
            total_dropped = self.dropped,
            pending = self.pending,
            "dropped the oldest spooled results at the spool's {reason} bound"
        );
    }
}

/// Reads the records of `chunk` (consecutive entries of `segment`) with one read, pushing the
/// good ones to `out` and the positions of the bad ones to `bad`.
fn read_chunk<'a>(
    segment: &Segment,
    chunk: impl Iterator<Item = &'a Entry> + Clone,
    out: &mut Raw,
    bad: &mut Vec<u64>,
) -> Result<(), SpoolError> {
    let (Some(first), Some(last)) = (chunk.clone().next(), chunk.clone().last()) else {
        return Ok(());
    };
    let start = first.offset;
    let end = last.offset + RECORD_HEADER as u64 + u64::from(last.len);
    let mut file = File::open(&segment.path).map_err(io_err("open", &segment.path))?;
    file.seek(SeekFrom::Start(start))
        .map_err(io_err("read", &segment.path))?;
    let base = out.payloads.len();
    out.payloads.reserve((end - start) as usize);
    // A short read (the file was cut behind our back) shows up as records that fail to decode.
    (&mut file)
        .take(end - start)
        .read_to_end(&mut out.payloads)
        .map_err(io_err("read", &segment.path))?;
    let read = out.payloads.len();
    for entry in chunk {
        let at = (entry.offset - start) as usize;
        let payload = match format::decode(&out.payloads[base..read], at, entry.position - 1) {
            // The payload follows the record's header.
            Some(record) if record.position == entry.position => {
                Some((base + at + RECORD_HEADER, record.payload.len()))
            }
            _ => None,
        };
        match payload {
            Some((offset, len)) => out.records.push(RawRecord {
                position: entry.position,
                offset,
                len,
            }),
            None => {
                warn!(
                    path = %segment.path.display(),
                    position = entry.position,
                    reason = "bad length or checksum",
                    "skipping a spooled result that cannot be read back"
                );
                bad.push(entry.position);
            }
        }
    }
    Ok(())
}

fn record_len(payload: &[u8]) -> u64 {
    (RECORD_HEADER + payload.len()) as u64
}

fn oldest(entries: &VecDeque<Entry>) -> i64 {
    entries
        .iter()
        .map(|e| e.started_ms)
        .min()
        .unwrap_or(i64::MAX)
}

fn unix_ms(result: &CheckResult) -> i64 {
    let ms = result.started_at.unix_timestamp_nanos() / 1_000_000;
    i64::try_from(ms).unwrap_or(if ms < 0 { i64::MIN } else { i64::MAX })
}

fn segment_name(base: u64) -> String {
    format!("seg-{base:020}.log")
}

fn parse_segment_name(name: &str) -> Option<u64> {
    let digits = name.strip_prefix("seg-")?.strip_suffix(".log")?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    // A base past every position is damage: the spool never names a segment so.
    digits
        .parse()
        .ok()
        .filter(|&base| base <= format::MAX_POSITION + 1)
}

fn sync_dir(dir: &Path) -> Result<(), SpoolError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err("fsync directory", dir))
}

fn io_err(op: &'static str, path: &Path) -> impl FnOnce(io::Error) -> SpoolError {
    let path = path.to_owned();
    move |source| SpoolError::Io { op, path, source }
}

#[cfg(test)]
mod tests {
    use std::ops::Range;

    use vantage_checks::model::CheckKind;
    use vantage_checks::result::{Facts, RESULT_SCHEMA_VERSION, Status, TcpFacts, Timings};

    use super::*;

    const HOUR: Duration = Duration::from_secs(3600);

    fn config(dir: &Path, max_bytes: u64) -> SpoolConfig {
        SpoolConfig {
            dir: dir.join("spool"),
            max_bytes,
            max_age: 24 * HOUR,
        }
    }

    fn open(config: &SpoolConfig) -> Spool {
        Spool::open(config.clone()).expect("open spool")
    }

    fn result_at(seq: u64, started: SystemTime) -> CheckResult {
        CheckResult {
            v: RESULT_SCHEMA_VERSION,
            check_id: format!("check-{}", seq % 7),
            vendor: "acme".to_owned(),
            kind: CheckKind::Tcp,
            probe_id: "probe-1".to_owned(),
            boot_id: "boot-1".to_owned(),
            seq,
            started_at: started.into(),
            status: if seq.is_multiple_of(3) {
                Status::Fail
            } else {
                Status::Ok
            },
            failure: None,
            message: Some(format!("run {seq} {}", "x".repeat((seq % 50) as usize))),
            slow: false,
            retried: false,
            timings: Timings {
                total_ms: seq as f64 / 8.0,
                ..Timings::default()
            },
            facts: Facts::Tcp(TcpFacts::default()),
            truncated: None,
            run: None,
        }
    }

    fn results(seqs: Range<u64>) -> Vec<CheckResult> {
        let now = SystemTime::now();
        seqs.map(|seq| result_at(seq, now)).collect()
    }

    fn all(spool: &mut Spool) -> Vec<Pending> {
        let pending = spool.peek(usize::MAX).expect("peek");
        let indexed: usize = spool.segments.iter().map(|s| s.entries.len()).sum();
        assert_eq!(spool.pending(), indexed as u64, "pending matches the index");
        assert_eq!(
            spool.pending(),
            pending.len() as u64,
            "peek returns every pending result"
        );
        let on_disk: u64 = spool
            .segments
            .iter()
            .map(|s| fs::metadata(&s.path).expect("segment exists").len())
            .sum();
        assert_eq!(spool.bytes(), on_disk, "bytes() matches the segment files");
        pending
    }

    fn seqs(pending: &[Pending]) -> Vec<u64> {
        pending.iter().map(|p| p.result.seq).collect()
    }

    fn positions(pending: &[Pending]) -> Vec<u64> {
        pending.iter().map(|p| p.position).collect()
    }

    fn segment_files(config: &SpoolConfig) -> Vec<PathBuf> {
        let mut files: Vec<PathBuf> = fs::read_dir(&config.dir)
            .expect("list spool")
            .map(|e| e.expect("entry").path())
            .filter(|p| p.extension().is_some_and(|e| e == "log"))
            .collect();
        files.sort();
        files
    }

    fn newest_segment(config: &SpoolConfig) -> PathBuf {
        segment_files(config).pop().expect("a segment")
    }

    fn file_len(path: &Path) -> u64 {
        fs::metadata(path).expect("stat").len()
    }

    #[test]
    fn appended_results_are_delivered_oldest_first_until_acked() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let mut spool = open(&config(tmp.path(), 1 << 20));
        let batch = results(0..5);
        spool.append(&batch[..3]).expect("append");
        spool.append(&batch[3..]).expect("append");
        assert_eq!(spool.pending(), 5);
        assert_eq!(spool.last_position(), 5);

        let first = spool.peek(2).expect("peek");
        assert_eq!(positions(&first), [1, 2]);
        assert_eq!(first[0].result, batch[0]);
        let every = all(&mut spool);
        assert_eq!(seqs(&every), [0, 1, 2, 3, 4]);
        assert_eq!(
            every.iter().map(|p| &p.result).collect::<Vec<_>>(),
            batch.iter().collect::<Vec<_>>()
        );

        spool.ack(2).expect("ack");
        assert_eq!(spool.pending(), 3);
        assert_eq!(positions(&all(&mut spool)), [3, 4, 5]);
        spool.ack(1).expect("an older ack is a no-op");
        assert_eq!(spool.pending(), 3);
        spool.ack(5).expect("ack all");
        assert_eq!(spool.pending(), 0);
        assert!(all(&mut spool).is_empty());
        let err = spool.ack(6).expect_err("position 6 was never appended");
        assert_eq!(
            err.to_string(),
            "cannot ack through position 6: the last appended position is 5"
        );
        assert_eq!((spool.dropped(), spool.corrupt()), (0, 0));
    }

    #[test]
    fn reopen_keeps_unacked_results_and_forgets_acked_ones() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let config = config(tmp.path(), 1 << 20);
        let batch = results(0..10);
        {
            let mut spool = open(&config);
            spool.append(&batch).expect("append");
            spool.ack(4).expect("ack");
        }
        let mut spool = open(&config);
        assert_eq!(spool.acked(), 4);
        assert_eq!(spool.pending(), 6);
        let left = all(&mut spool);
        assert_eq!(positions(&left), [5, 6, 7, 8, 9, 10]);
        assert_eq!(
            left.into_iter().map(|p| p.result).collect::<Vec<_>>(),
            batch[4..]
        );
        assert_eq!((spool.recovered_torn(), spool.corrupt()), (0, 0));
    }

    #[test]
    fn a_torn_tail_is_cut_and_every_whole_record_kept() {
        // Sizes of the last record's pieces: within the header, at its end, within the payload.
        for cut in [1, 5, 23, 24, 25, 60] {
            let tmp = tempfile::tempdir().expect("tempdir");
            let config = config(tmp.path(), 1 << 20);
            let mut spool = open(&config);
            let batch = results(0..5);
            for r in &batch {
                spool.append(std::slice::from_ref(r)).expect("append");
            }
            let whole = spool.bytes();
            drop(spool);
            let path = newest_segment(&config);
            let file = OpenOptions::new().write(true).open(&path).expect("open");
            file.set_len(file_len(&path) - cut).expect("truncate");
            drop(file);

            let mut spool = open(&config);
            assert_eq!(spool.recovered_torn(), 1, "cut {cut}");
            assert_eq!(spool.corrupt(), 0, "cut {cut}");
            assert_eq!(spool.pending(), 4, "cut {cut}");
            assert!(spool.bytes() < whole - cut + 1, "cut {cut}");
            assert_eq!(file_len(&path), spool.bytes(), "the torn bytes are gone");
            let left = all(&mut spool);
            assert_eq!(
                left.iter().map(|p| p.result.clone()).collect::<Vec<_>>(),
                batch[..4]
            );
            // The spool goes on from the cut, and the next open finds nothing torn.
            spool.append(&results(5..6)).expect("append after recovery");
            drop(spool);
            let mut spool = open(&config);
            assert_eq!((spool.recovered_torn(), spool.corrupt()), (0, 0));
            assert_eq!(seqs(&all(&mut spool)), [0, 1, 2, 3, 5]);
        }
    }

    #[test]
    fn garbage_after_the_last_record_is_cut() {
        for garbage in [
            vec![0u8; 4096],
            b"{\"half\": \"a record".to_vec(),
            vec![0xa5; 7],
        ] {
            let tmp = tempfile::tempdir().expect("tempdir");
            let config = config(tmp.path(), 1 << 20);
            let mut spool = open(&config);
            spool.append(&results(0..3)).expect("append");
            let bytes = spool.bytes();
            drop(spool);
            let mut file = OpenOptions::new()
                .append(true)
                .open(newest_segment(&config))
                .expect("open");
            file.write_all(&garbage).expect("append garbage");
            drop(file);

            let mut spool = open(&config);
            assert_eq!(spool.recovered_torn(), 1);
            assert_eq!(spool.bytes(), bytes);
            assert_eq!(seqs(&all(&mut spool)), [0, 1, 2]);
        }
    }

    #[test]
    fn a_damaged_record_between_good_ones_is_skipped_and_counted() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let config = config(tmp.path(), 1 << 20);
        let mut spool = open(&config);
        for r in results(0..5) {
            spool.append(&[r]).expect("append");
        }
        let third = spool.segments[0].entries[2];
        drop(spool);
        flip_byte(&newest_segment(&config), third.offset + 30);

        let mut spool = open(&config);
        assert_eq!((spool.corrupt(), spool.recovered_torn()), (1, 0));
        assert_eq!(spool.pending(), 4);
        assert_eq!(seqs(&all(&mut spool)), [0, 1, 3, 4]);
    }

    fn flip_byte(path: &Path, offset: u64) {
        let mut data = fs::read(path).expect("read");
        data[offset as usize] ^= 0x40;
        fs::write(path, data).expect("write");
    }

    #[test]
    fn a_record_damaged_while_open_is_skipped_once_at_peek() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let config = config(tmp.path(), 1 << 20);
        let mut spool = open(&config);
        spool.append(&results(0..3)).expect("append");
        let second = spool.segments[0].entries[1];
        flip_byte(&newest_segment(&config), second.offset + 40);
        assert_eq!(seqs(&all(&mut spool)), [0, 2]);
        assert_eq!(seqs(&all(&mut spool)), [0, 2]);
        assert_eq!((spool.corrupt(), spool.pending()), (1, 2));
    }

    #[test]
    fn a_record_that_is_not_a_result_is_skipped_and_counted() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let config = config(tmp.path(), 1 << 20);
        let mut spool = open(&config);
        spool.append(&results(0..1)).expect("append");
        drop(spool);
        // Checksummed, but JSON this version does not know (as after a downgrade).
        let mut record = Vec::new();
        let now_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("clock after 1970")
            .as_millis() as i64;
        format::encode(&mut record, 2, now_ms, b"{\"future\":true}");
        let mut file = OpenOptions::new()
            .append(true)
            .open(newest_segment(&config))
            .expect("open");
        file.write_all(&record).expect("write");
        drop(file);

        let mut spool = open(&config);
        assert_eq!(spool.pending(), 2);
        spool.append(&results(1..2)).expect("append");
        let left = all(&mut spool);
        assert_eq!(positions(&left), [1, 3]);
        assert_eq!(seqs(&left), [0, 1]);
        assert_eq!((spool.corrupt(), spool.pending()), (1, 2));
    }

    #[test]
    fn the_size_bound_drops_the_oldest_results_and_counts_them() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let config = config(tmp.path(), MIN_MAX_BYTES);
        let mut spool = open(&config);
        assert_eq!(spool.segment_bytes, MIN_MAX_BYTES / 8);
        for r in results(0..600) {
            spool.append(&[r]).expect("append");
            assert!(spool.bytes() <= config.max_bytes, "{} bytes", spool.bytes());
        }
        let dropped = spool.dropped();
        assert!(dropped > 0);
        assert_eq!(spool.pending() + dropped, 600);
        let left = seqs(&all(&mut spool));
        assert_eq!(left, (dropped..600).collect::<Vec<_>>(), "a suffix is kept");
        // Only whole segments are dropped: the spool stays more than half full.
        assert!(spool.bytes() > config.max_bytes / 2);
        let on_disk: u64 = segment_files(&config).iter().map(|p| file_len(p)).sum();
        assert_eq!(on_disk, spool.bytes());

        drop(spool);
        let mut spool = open(&config);
        assert_eq!((spool.dropped(), spool.pending()), (0, 600 - dropped));
        assert_eq!(seqs(&all(&mut spool)), left);
    }

    #[test]
    fn a_batch_larger_than_the_spool_keeps_its_newest_results() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let config = config(tmp.path(), MIN_MAX_BYTES);
        let mut spool = open(&config);
        spool.append(&results(0..1000)).expect("append");
        assert!(spool.bytes() <= config.max_bytes);
        let kept = spool.pending();
        assert!(kept > 0 && kept < 1000);
        assert_eq!(spool.dropped(), 1000 - kept);
        assert_eq!(
            seqs(&all(&mut spool)),
            (1000 - kept..1000).collect::<Vec<_>>()
        );
    }

    #[test]
    fn the_age_bound_drops_old_results_and_counts_them() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let config = SpoolConfig {
            max_age: HOUR,
            ..config(tmp.path(), 1 << 20)
        };
        let now = SystemTime::now();
        let mut spool = open(&config);
        let old = [result_at(0, now - 2 * HOUR), result_at(1, now - 2 * HOUR)];
        spool.append(&old).expect("append");
        assert_eq!(
            (spool.dropped(), spool.pending()),
            (2, 0),
            "too old to spool"
        );

        let half = [30, 31, 32].map(|seq| result_at(seq, now - HOUR / 2));
        let fresh = [40, 41].map(|seq| result_at(seq, now));
        spool.append(&half).expect("append");
        spool.append(&fresh).expect("append");
        assert_eq!(spool.pending(), 5);
        assert_eq!(spool.expire(now + HOUR * 3 / 4).expect("expire"), 3);
        assert_eq!((spool.dropped(), spool.pending()), (5, 2));
        assert_eq!(seqs(&all(&mut spool)), [40, 41]);
    }

    #[test]
    fn results_that_aged_while_spooled_are_dropped_at_peek_after_reopen() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let config = SpoolConfig {
            max_age: HOUR,
            ..config(tmp.path(), 1 << 20)
        };
        let then = SystemTime::now() - 2 * HOUR;
        let mut spool = open(&config);
        spool
            .append_at(
                &Encoded::new(&[result_at(0, then), result_at(1, then)]).expect("encode"),
                then,
            )
            .expect("append");
        spool.append(&results(2..3)).expect("append");
        assert_eq!(spool.pending(), 1, "append expires older results");
        drop(spool);

        let mut spool = open(&config);
        assert_eq!(spool.pending(), 3);
        assert_eq!(seqs(&all(&mut spool)), [2]);
        assert_eq!((spool.dropped(), spool.pending()), (2, 1));
    }

    #[test]
    fn segments_roll_over_and_fully_acked_ones_are_deleted() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let config = config(tmp.path(), MIN_MAX_BYTES);
        let mut spool = open(&config);
        for r in results(0..100) {
            spool.append(&[r]).expect("append");
        }
        let files = segment_files(&config);
        assert!(files.len() >= 3, "{files:?}");
        for file in &files {
            assert!(file_len(file) <= spool.segment_bytes, "{}", file.display());
        }
        assert_eq!(
            files[0].file_name().and_then(|n| n.to_str()),
            Some("seg-00000000000000000001.log")
        );

        spool.ack(50).expect("ack");
        let left = segment_files(&config);
        assert!(left.len() < files.len());
        assert_eq!(
            &left[..],
            &files[files.len() - left.len()..],
            "oldest deleted"
        );
        assert_eq!(positions(&spool.peek(1).expect("peek")), [51]);
        let on_disk: u64 = left.iter().map(|p| file_len(p)).sum();
        assert_eq!(on_disk, spool.bytes());

        spool.ack(100).expect("ack all");
        assert_eq!(segment_files(&config), [files[files.len() - 1].clone()]);
        drop(spool);
        let mut spool = open(&config);
        assert_eq!(spool.pending(), 0);
        spool.append(&results(100..101)).expect("append");
        assert_eq!(positions(&all(&mut spool)), [101]);
    }

    #[test]
    fn positions_keep_increasing_across_reopen() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let config = config(tmp.path(), MIN_MAX_BYTES);
        let mut last = 0;
        for round in 0..6u64 {
            let mut spool = open(&config);
            assert_eq!(spool.last_position(), last, "round {round}");
            spool
                .append(&results(round * 3..round * 3 + 3))
                .expect("append");
            let got = positions(&all(&mut spool));
            let new = &got[got.len() - 3..];
            assert_eq!(
                new,
                [last + 1, last + 2, last + 3],
                "round {round}: {got:?}"
            );
            last = new[2];
            // Alternate: ack everything, or nothing; and roll to a fresh, empty segment.
            if round % 2 == 0 {
                spool.ack(last).expect("ack");
            }
            if round == 3 {
                spool.roll().expect("roll");
            }
        }
    }

    #[test]
    fn ten_thousand_results_round_trip_through_a_reopen() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let config = config(tmp.path(), 256 << 20);
        let batch = results(0..10_000);
        {
            let mut spool = open(&config);
            for chunk in batch.chunks(500) {
                spool.append(chunk).expect("append");
            }
        }
        let mut spool = open(&config);
        assert_eq!(spool.pending(), 10_000);
        let mut got = Vec::new();
        loop {
            let page = spool.peek(1_000).expect("peek");
            let Some(last) = page.last() else { break };
            spool.ack(last.position).expect("ack");
            got.extend(page);
        }
        assert_eq!(positions(&got), (1..=10_000).collect::<Vec<_>>());
        assert!(got.into_iter().map(|p| p.result).eq(batch));
        assert_eq!(spool.pending(), 0);
        assert_eq!(segment_files(&config).len(), 1);
    }

    #[test]
    fn leftovers_of_an_interrupted_write_are_removed_at_open() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let config = config(tmp.path(), 1 << 20);
        let mut spool = open(&config);
        spool.append(&results(0..2)).expect("append");
        drop(spool);
        fs::write(config.dir.join("acked.tmp"), "99\n").expect("write");
        fs::write(config.dir.join("seg-00000000000000000003.log.tmp"), MAGIC).expect("write");
        // A segment created but cut before its header was complete.
        fs::write(config.dir.join("seg-00000000000000000009.log"), &MAGIC[..3]).expect("write");

        let mut spool = open(&config);
        assert_eq!(seqs(&all(&mut spool)), [0, 1]);
        assert_eq!(spool.acked(), 0);
        let mut names: Vec<String> = fs::read_dir(&config.dir)
            .expect("list")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(names, ["seg-00000000000000000001.log"]);
    }

    #[test]
    fn a_foreign_file_named_like_a_segment_is_refused() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let config = config(tmp.path(), 1 << 20);
        fs::create_dir_all(&config.dir).expect("mkdir");
        let path = config.dir.join("seg-00000000000000000001.log");
        fs::write(&path, "not a spool segment").expect("write");
        let err = Spool::open(config).expect_err("refused");
        assert!(matches!(err, SpoolError::NotASegment { .. }), "{err}");
    }

    #[test]
    fn a_spool_too_small_to_work_is_refused() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let err = Spool::open(config(tmp.path(), 1000)).expect_err("refused");
        assert_eq!(
            err.to_string(),
            "invalid spool config: max_bytes must be at least 65536 (64 KiB), e.g. 268435456 \
             for 256 MiB; got 1000"
        );
    }

    /// Found by the `spool` fuzz target: a record at position u64::MAX (a checksum that
    /// happens to hold over damage), an `acked` file or a segment name that large, made
    /// `open` overflow computing the next position (a panic in debug builds, positions
    /// starting again at 0 in release). Positions past `MAX_POSITION` are damage now.
    #[test]
    fn r12_positions_past_the_largest_are_damage_not_an_overflow() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let config = config(tmp.path(), 1 << 20);
        let mut spool = open(&config);
        spool.append(&results(0..2)).expect("append");
        drop(spool);
        let payload = serde_json::to_vec(&results(7..8)[0]).expect("encode");
        let mut segment = MAGIC.to_vec();
        format::encode(&mut segment, u64::MAX, 0, &payload);
        fs::write(config.dir.join("seg-00000000000000000003.log"), &segment).expect("write");
        fs::write(config.dir.join("seg-18446744073709551615.log"), MAGIC).expect("write");
        fs::write(config.dir.join("acked"), "18446744073709551615\n").expect("write");

        let mut spool = open(&config);
        assert_eq!(
            spool.acked(),
            0,
            "an acked position past the largest is unreadable"
        );
        assert_eq!(seqs(&all(&mut spool)), [0, 1]);
        spool.append(&results(2..3)).expect("append");
        assert_eq!(seqs(&all(&mut spool)), [0, 1, 2]);
        assert_eq!(spool.last_position(), 3);
        drop(spool);

        // The largest position itself is readable, and nothing is written past it.
        let mut segment = MAGIC.to_vec();
        let now_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64);
        format::encode(&mut segment, format::MAX_POSITION, now_ms, &payload);
        fs::write(config.dir.join("seg-00000000000000000004.log"), &segment).expect("write");
        let mut spool = open(&config);
        assert_eq!(spool.last_position(), format::MAX_POSITION);
        assert_eq!(seqs(&all(&mut spool)), [0, 1, 2, 7]);
        let err = spool.append(&results(3..4)).expect_err("exhausted");
        assert!(matches!(err, SpoolError::Exhausted { .. }), "{err}");
        assert_eq!(seqs(&all(&mut spool)), [0, 1, 2, 7]);
    }
}
