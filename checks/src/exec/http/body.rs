//! Response bodies: undoing the content encoding, and the body assertions (`body_contains`,
//! `body_matches`, `json`, `fresh`).

use std::borrow::Cow;
use std::io::Read;

use serde_json::Value;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::model::HttpCheck;
use crate::result::FailureKind;

/// How much larger than `max_body_bytes` a decoded body may be: a compressed page of
/// `max_body_bytes` may expand to this many times its size, and no further, so a small
/// decompression bomb costs the probe at most `max_body_bytes × 8` bytes of memory.
pub const DECODED_BODY_FACTOR: u64 = 8;

/// Content codings undone at most (`gzip, gzip, gzip, …` costs one pass each).
pub const MAX_CONTENT_CODINGS: usize = 4;

/// Why a body could not be decoded.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// Decoded, it is larger than the cap (decoding stopped there).
    #[error("the decoded body is larger than {cap} bytes")]
    TooLarge {
        /// The cap that was reached.
        cap: u64,
    },
    /// Not valid for its declared encoding.
    #[error("{0}")]
    Corrupt(String),
    /// An encoding this probe cannot decode.
    #[error("{0}")]
    Unsupported(String),
}

/// Undoes `content_encoding` (a list, applied in order, so undone in reverse), yielding at most
/// `cap` bytes so that a small compressed body cannot expand without bound: decoding stops
/// after `cap + 1` bytes of any layer. Synchronous and CPU-bound: on a runtime, call it from
/// `spawn_blocking` (as the executor does).
pub fn decode_body<'a>(
    raw: &'a [u8],
    content_encoding: Option<&str>,
    cap: u64,
) -> Result<Cow<'a, [u8]>, DecodeError> {
    let mut body = Cow::Borrowed(raw);
    let codings: Vec<String> = content_encoding
        .unwrap_or_default()
        .split(',')
        .map(|c| c.trim().to_ascii_lowercase())
        .filter(|c| !c.is_empty() && c != "identity")
        .collect();
    #[cfg(test)]
    tests::DECODED_ON
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .push((cap, std::thread::current().id()));
    if codings.len() > MAX_CONTENT_CODINGS {
        return Err(DecodeError::Corrupt(format!(
            "declared with {} content codings, more than the {MAX_CONTENT_CODINGS} a probe undoes",
            codings.len()
        )));
    }
    for coding in codings.iter().rev() {
        let input: &[u8] = &body;
        let mut out = Vec::new();
        let read = match coding.as_str() {
            "gzip" | "x-gzip" => flate2::read::MultiGzDecoder::new(input)
                .take(cap.saturating_add(1))
                .read_to_end(&mut out),
            "deflate" => flate2::read::ZlibDecoder::new(input)
                .take(cap.saturating_add(1))
                .read_to_end(&mut out),
            "br" => brotli::Decompressor::new(input, 8192)
                .take(cap.saturating_add(1))
                .read_to_end(&mut out),
            other => {
                return Err(DecodeError::Unsupported(format!(
                    "this probe cannot decode `{other}` bodies"
                )));
            }
        };
        read.map_err(|e| DecodeError::Corrupt(format!("not valid {coding}: {e}")))?;
        if out.len() as u64 > cap {
            return Err(DecodeError::TooLarge { cap });
        }
        body = Cow::Owned(out);
    }
    Ok(body)
}

/// [`decode_body`] on the blocking pool, so a slow or large decode never holds a runtime
/// worker thread (other checks' timers and sockets run there). A body without a content
/// coding is returned as is, without a thread hop.
pub(super) async fn decode_off_runtime(
    raw: Vec<u8>,
    content_encoding: Option<String>,
    cap: u64,
) -> Result<Result<Vec<u8>, DecodeError>, tokio::task::JoinError> {
    let plain = content_encoding.as_deref().is_none_or(|e| {
        e.split(',')
            .all(|c| c.trim().is_empty() || c.trim().eq_ignore_ascii_case("identity"))
    });
    if plain {
        return Ok(Ok(raw));
    }
    tokio::task::spawn_blocking(move || {
        decode_body(&raw, content_encoding.as_deref(), cap).map(|body| match body {
            Cow::Borrowed(b) => b.to_vec(),
            Cow::Owned(b) => b,
        })
    })
    .await
}

/// True when the check asserts anything about the body.
pub(super) fn has_assertions(check: &HttpCheck) -> bool {
    check.body_contains.is_some()
        || check.body_matches.is_some()
        || check.json.is_some()
        || check.fresh.is_some()
}

/// The first failed body assertion, checked at `now`.
pub(super) fn check(
    check: &HttpCheck,
    body: &[u8],
    now: OffsetDateTime,
) -> Option<(FailureKind, String)> {
    let text = String::from_utf8_lossy(body);
    let mismatch = |m: String| Some((FailureKind::BodyMismatch, m));
    if let Some(needle) = &check.body_contains
        && !text.contains(needle.as_str())
    {
        return mismatch(format!("the body does not contain `{needle}`"));
    }
    if let Some(re) = &check.body_matches
        && !re.is_match(&text)
    {
        return mismatch(format!("the body does not match `{}`", re.as_str()));
    }
    if check.json.is_none() && check.fresh.is_none() {
        return None;
    }
    let json: Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(e) => return mismatch(format!("the body is not JSON: {e}")),
    };
    if let Some(expect) = &check.json {
        match (json.pointer(&expect.pointer), &expect.equals) {
            (None, _) => return mismatch(format!("the JSON has nothing at `{}`", expect.pointer)),
            (Some(got), Some(want)) if !json_equal(got, want) => {
                return mismatch(format!(
                    "the JSON at `{}` is {got}, expected {want}",
                    expect.pointer
                ));
            }
            _ => {}
        }
    }
    if let Some(fresh) = &check.fresh {
        let Some(value) = json.pointer(&fresh.pointer) else {
            return mismatch(format!("the JSON has no timestamp at `{}`", fresh.pointer));
        };
        let Some(at) = timestamp(value) else {
            return mismatch(format!(
                "the JSON at `{}` is {value}, not an RFC 3339 timestamp or Unix seconds",
                fresh.pointer
            ));
        };
        let age = now - at;
        if age > fresh.max_age {
            return Some((
                FailureKind::StaleData,
                format!(
                    "the timestamp at `{}` ({value}) is {}s old, older than max_age of {}",
                    fresh.pointer,
                    age.whole_seconds(),
                    crate::duration::format(fresh.max_age)
                ),
            ));
        }
    }
    None
}

/// JSON equality where integers and floats of the same value are equal (TOML `1` vs JSON `1.0`).
fn json_equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x == y || x.as_f64() == y.as_f64(),
        _ => a == b,
    }
}

/// An RFC 3339 string or Unix seconds (integer or fractional).
fn timestamp(value: &Value) -> Option<OffsetDateTime> {
    match value {
        Value::String(s) => OffsetDateTime::parse(s, &Rfc3339).ok(),
        Value::Number(n) => {
            let secs = n.as_f64()?;
            if !secs.is_finite() {
                return None;
            }
            let nanos = (secs * 1e9) as i128;
            OffsetDateTime::from_unix_timestamp_nanos(nanos).ok()
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::time::Duration;

    use super::*;
    use crate::model::{FreshExpect, JsonExpect};

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        enc.write_all(data).expect("gzip");
        enc.finish().expect("gzip")
    }

    fn brotli(data: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        {
            let mut w = brotli::CompressorWriter::new(&mut out, 4096, 5, 22);
            w.write_all(data).expect("brotli");
        }
        out
    }

    #[test]
    fn decodes_gzip_br_and_stacked() {
        let plain = b"hello hello hello".repeat(10);
        assert_eq!(
            decode_body(&plain, None, 1 << 20).as_deref(),
            Ok(&plain[..])
        );
        assert_eq!(
            decode_body(&gzip(&plain), Some("gzip"), 1 << 20).as_deref(),
            Ok(&plain[..])
        );
        assert_eq!(
            decode_body(&brotli(&plain), Some("br"), 1 << 20).as_deref(),
            Ok(&plain[..])
        );
        assert_eq!(
            decode_body(&brotli(&gzip(&plain)), Some("gzip, br"), 1 << 20).as_deref(),
            Ok(&plain[..])
        );
        assert!(matches!(
            decode_body(b"not gzip", Some("gzip"), 1 << 20),
            Err(DecodeError::Corrupt(_))
        ));
        assert!(matches!(
            decode_body(b"x", Some("zstd"), 1 << 20),
            Err(DecodeError::Unsupported(_))
        ));
        // A bomb: 1 MB of zeros in a few hundred bytes.
        assert_eq!(
            decode_body(&gzip(&vec![0; 1 << 20]), Some("gzip"), 4096),
            Err(DecodeError::TooLarge { cap: 4096 })
        );
    }

    /// Issue 12, item 11: a bomb in every coding, and stacked, stops at the cap; a pile of
    /// codings is refused before any work.
    #[test]
    fn r12_bombs_stop_at_the_cap() {
        let zeros = vec![0u8; 8 << 20];
        let mut zlib = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
        zlib.write_all(&zeros).expect("deflate");
        let deflate = zlib.finish().expect("deflate");
        let gz = gzip(&zeros);
        for (raw, coding) in [
            (gz.clone(), "gzip"),
            (brotli(&zeros), "br"),
            (deflate, "deflate"),
            (gzip(&gz), "gzip, gzip"),
        ] {
            assert!(raw.len() < 64 << 10, "{coding}: {} bytes", raw.len());
            assert_eq!(
                decode_body(&raw, Some(coding), 1 << 16),
                Err(DecodeError::TooLarge { cap: 1 << 16 }),
                "{coding}"
            );
        }
        assert!(matches!(
            decode_body(b"x", Some("gzip, gzip, gzip, gzip, gzip"), 1 << 16),
            Err(DecodeError::Corrupt(_))
        ));
    }

    /// Where [`decode_body`] ran, by cap (each test uses its own cap).
    pub(super) static DECODED_ON: std::sync::Mutex<Vec<(u64, std::thread::ThreadId)>> =
        std::sync::Mutex::new(Vec::new());

    /// Issue 12, item 11: the executor decodes on the blocking pool, never on a runtime thread
    /// (here the test's own thread, the only one a current-thread runtime has).
    #[tokio::test(flavor = "current_thread")]
    async fn r12_decoding_runs_off_the_runtime_threads() {
        const CAP: u64 = 987_651;
        let plain = b"off the runtime".repeat(100);
        let decoded = decode_off_runtime(gzip(&plain), Some("gzip".to_owned()), CAP)
            .await
            .expect("joined");
        assert_eq!(decoded.as_deref(), Ok(&plain[..]));
        let on: Vec<std::thread::ThreadId> = DECODED_ON
            .lock()
            .expect("lock")
            .iter()
            .filter(|(cap, _)| *cap == CAP)
            .map(|(_, id)| *id)
            .collect();
        assert_eq!(on.len(), 1, "decoded once");
        assert_ne!(
            on[0],
            std::thread::current().id(),
            "decoded on the runtime's thread"
        );
    }

    fn http_check() -> HttpCheck {
        let text = "[[vendor]]\nid = \"v\"\nname = \"V\"\n[[check]]\nid = \"c\"\nvendor = \"v\"\nkind = \"http\"\nurl = \"https://example.com/\"\n";
        let set = crate::config::parse_str(text).expect("valid check");
        match set.checks.into_iter().next().map(|c| c.spec) {
            Some(crate::model::CheckSpec::Http(h)) => *h,
            other => panic!("expected an http check, got {other:?}"),
        }
    }

    #[test]
    fn body_assertions() {
        let now = OffsetDateTime::from_unix_timestamp(1_700_000_000).expect("time");
        let body = br#"{"status":"ok","count":1,"at":"2023-11-14T22:13:10Z","unix":1699999990}"#;
        let mut c = http_check();
        assert_eq!(check(&c, body, now), None);

        c.body_contains = Some("\"ok\"".into());
        assert_eq!(check(&c, body, now), None);
        c.body_contains = Some("down".into());
        assert_eq!(
            check(&c, body, now).map(|f| f.0),
            Some(FailureKind::BodyMismatch)
        );
        c.body_contains = None;

        c.body_matches = Some(regex::Regex::new(r#""count":\d"#).expect("regex"));
        assert_eq!(check(&c, body, now), None);
        c.body_matches = Some(regex::Regex::new("^<html").expect("regex"));
        assert_eq!(
            check(&c, body, now).map(|f| f.0),
            Some(FailureKind::BodyMismatch)
        );
        c.body_matches = None;

        let json = |pointer: &str, equals: Option<Value>| JsonExpect {
            pointer: pointer.into(),
            equals,
        };
        for (expect, want) in [
            (json("/status", Some("ok".into())), None),
            (json("/count", Some(serde_json::json!(1.0))), None),
            (json("/status", None), None),
            (
                json("/status", Some("down".into())),
                Some(FailureKind::BodyMismatch),
            ),
            (json("/missing", None), Some(FailureKind::BodyMismatch)),
        ] {
            c.json = Some(expect.clone());
            assert_eq!(check(&c, body, now).map(|f| f.0), want, "{expect:?}");
        }
        c.json = Some(json("/status", None));
        assert_eq!(
            check(&c, b"<html>", now).map(|f| f.0),
            Some(FailureKind::BodyMismatch)
        );
        c.json = None;

        let fresh = |pointer: &str, secs: u64| FreshExpect {
            pointer: pointer.into(),
            max_age: Duration::from_secs(secs),
        };
        for (expect, want) in [
            (fresh("/at", 60), None),
            (fresh("/at", 5), Some(FailureKind::StaleData)),
            (fresh("/unix", 60), None),
            (fresh("/unix", 5), Some(FailureKind::StaleData)),
            (fresh("/status", 60), Some(FailureKind::BodyMismatch)),
            (fresh("/missing", 60), Some(FailureKind::BodyMismatch)),
        ] {
            c.fresh = Some(expect.clone());
            assert_eq!(check(&c, body, now).map(|f| f.0), want, "{expect:?}");
        }
    }
}
