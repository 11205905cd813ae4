//! Who a request is: the `Authorization: Bearer …` header (API, probes) and the status page's
//! session cookie (`Cookie` headers, then the signed `v1.<expiry>.<tag>` value).
//!
//! Invariants: a bearer token is the header's credentials, trimmed and non-empty, after a
//! `Bearer` scheme; a token opens only what its role allows; a session verifies only when
//! its expiry is in the window a coordinator issues and its tag is the one issued for it.
#![no_main]

use http::header::COOKIE;
use http::{HeaderMap, HeaderValue};
use libfuzzer_sys::fuzz_target;
use vantage_coordinator::access::{Access, Need};
use vantage_coordinator::alert::Secret;
use vantage_coordinator::auth::bearer;
use vantage_coordinator::fuzzing::{self as f, cookie, issue, verify};

/// 2026-12-01T00:00:00Z, and the session lifetime (12 h).
const NOW: i64 = 1_796_083_200;
const LIFETIME: i64 = 12 * 3600;
const READER: &str = "reader-token-0123456789abcdef0123456789";
const OPERATOR: &str = "operator-token-0123456789abcdef012345678";

// `later:u16le` (seconds after `NOW`), then lines: the `Authorization` value, then
// `Cookie` values.
fuzz_target!(|data: &[u8]| {
    let (Some(&a), Some(&b)) = (data.first(), data.get(1)) else {
        return;
    };
    let later = u16::from_le_bytes([a, b]);
    let mut lines = data[2..].split(|&b| b == b'\n');
    let authorization = lines.next().unwrap_or_default();
    let cookies: Vec<&[u8]> = lines.collect();
    let access = Access {
        reader: Some(Secret::new(READER)),
        operator: Some(Secret::new(OPERATOR)),
        metrics: None,
        public_reads: false,
    };
    let header = HeaderValue::from_bytes(authorization).ok();
    let token = bearer(header.as_ref());
    if let Some(t) = &token {
        let text = header
            .as_ref()
            .and_then(|h| h.to_str().ok())
            .expect("a bearer is text");
        let (scheme, rest) = text.split_once(' ').expect("a scheme and credentials");
        assert!(scheme.eq_ignore_ascii_case("bearer"), "scheme {scheme:?}");
        assert_eq!(t.expose(), rest.trim());
        assert!(!t.expose().is_empty());
    }
    let who = token.as_ref().map(|t| t.expose());
    assert_eq!(
        access.allows(Need::Change, token.as_ref()),
        who == Some(OPERATOR)
    );
    assert_eq!(
        access.allows(Need::Read, token.as_ref()),
        who == Some(OPERATOR) || who == Some(READER)
    );

    let mut headers = HeaderMap::new();
    for c in &cookies {
        if let Ok(v) = HeaderValue::from_bytes(c) {
            headers.append(COOKIE, v);
        }
    }
    let now = NOW + i64::from(later);
    let Some(value) = cookie(&headers, f::COOKIE) else {
        return;
    };
    assert_eq!(value, value.trim());
    for key in [READER, OPERATOR] {
        let secret = Secret::new(key);
        if verify(&secret, value, now) {
            let expiry: i64 = value
                .split('.')
                .nth(1)
                .and_then(|e| e.parse().ok())
                .expect("a verified session has an expiry");
            assert!(
                expiry > now && expiry <= now + LIFETIME + 300,
                "expiry {expiry} at {now}"
            );
            let issued = issue(&secret, expiry - LIFETIME);
            assert_eq!(
                issued.rsplit('.').next(),
                value.rsplit('.').next(),
                "a session verified with another tag than the one issued"
            );
        }
    }
});
