//! Response bodies: undoing the content encoding, and the body assertions (`body_contains`,
//! `body_matches`, `json`, `fresh`).

use std::borrow::Cow;
use std::io::Read;

use serde_json::Value;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::model::HttpCheck;
use crate::result::FailureKind;

/// Why a body could not be decoded.
#[derive(Debug, PartialEq)]
pub enum DecodeError {
    /// Decoded, it is larger than the cap.
    TooLarge,
    /// Not valid for its declared encoding.
    Corrupt(String),
    /// An encoding this probe cannot decode.
    Unsupported(String),
}

/// Undoes `content_encoding` (a list, applied in order, so undone in reverse), yielding at most
/// `cap` bytes so that a small compressed body cannot expand without bound.
pub fn decode<'a>(
    content_encoding: Option<&str>,
    raw: &'a [u8],
    cap: u64,
) -> Result<Cow<'a, [u8]>, DecodeError> {
    let mut body = Cow::Borrowed(raw);
    let codings: Vec<String> = content_encoding
        .unwrap_or_default()
        .split(',')
        .map(|c| c.trim().to_ascii_lowercase())
        .filter(|c| !c.is_empty() && c != "identity")
        .collect();
    for coding in codings.iter().rev() {
        let input: &[u8] = &body;
        let mut out = Vec::new();
        let read = match coding.as_str() {
            "gzip" | "x-gzip" => flate2::read::MultiGzDecoder::new(input)
                .take(cap + 1)
                .read_to_end(&mut out),
            "deflate" => flate2::read::ZlibDecoder::new(input)
                .take(cap + 1)
                .read_to_end(&mut out),
            "br" => brotli::Decompressor::new(input, 8192)
                .take(cap + 1)
                .read_to_end(&mut out),
            other => {
                return Err(DecodeError::Unsupported(format!(
                    "this probe cannot decode `{other}` bodies"
                )));
            }
        };
        read.map_err(|e| DecodeError::Corrupt(format!("not valid {coding}: {e}")))?;
        if out.len() as u64 > cap {
            return Err(DecodeError::TooLarge);
        }
        body = Cow::Owned(out);
    }
    Ok(body)
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
        assert_eq!(decode(None, &plain, 1 << 20).as_deref(), Ok(&plain[..]));
        assert_eq!(
            decode(Some("gzip"), &gzip(&plain), 1 << 20).as_deref(),
            Ok(&plain[..])
        );
        assert_eq!(
            decode(Some("br"), &brotli(&plain), 1 << 20).as_deref(),
            Ok(&plain[..])
        );
        assert_eq!(
            decode(Some("gzip, br"), &brotli(&gzip(&plain)), 1 << 20).as_deref(),
            Ok(&plain[..])
        );
        assert!(matches!(
            decode(Some("gzip"), b"not gzip", 1 << 20),
            Err(DecodeError::Corrupt(_))
        ));
        assert!(matches!(
            decode(Some("zstd"), b"x", 1 << 20),
            Err(DecodeError::Unsupported(_))
        ));
        // A bomb: 1 MB of zeros in a few hundred bytes.
        assert_eq!(
            decode(Some("gzip"), &gzip(&vec![0; 1 << 20]), 4096),
            Err(DecodeError::TooLarge)
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
