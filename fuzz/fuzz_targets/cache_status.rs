//! The cache-status normaliser: any response headers in, one `CacheInfo` out.
//!
//! Invariants: no panic; a PoP is 3 to 5 uppercase letters when read from `cf-ray` or
//! `x-served-by`, and never holds a comma; the age is the `Age` header's number.
#![no_main]

use http::{HeaderMap, HeaderName, HeaderValue};
use libfuzzer_sys::fuzz_target;
use vantage_checks::exec::cache_status::normalise;

// A response's header block: `name: value` lines.
fuzz_target!(|data: &[u8]| {
    let mut headers = HeaderMap::new();
    for line in data.split(|&b| b == b'\n') {
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            continue;
        };
        let value = line[colon + 1..].trim_ascii();
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(&line[..colon]),
            HeaderValue::from_bytes(value),
        ) {
            headers.append(name, value);
        }
    }
    let info = normalise(&headers);
    if let Some(pop) = &info.pop {
        assert!(!pop.contains(','), "pop {pop:?}");
        if headers.get("x-amz-cf-pop").is_none() {
            assert!((3..=5).contains(&pop.len()), "pop {pop:?}");
            assert!(pop.chars().all(|c| c.is_ascii_uppercase()), "pop {pop:?}");
        }
    }
    if let Some(age) = info.age {
        let header = headers
            .get("age")
            .and_then(|v| v.to_str().ok())
            .map(str::trim);
        assert_eq!(header.and_then(|a| a.parse::<u64>().ok()), Some(age));
    }
    // The same headers give the same answer.
    assert_eq!(normalise(&headers), info);
});
