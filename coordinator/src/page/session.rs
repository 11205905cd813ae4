//! The status page's sign-in: browsers cannot send a bearer header when they navigate, so a
//! reader signs in once with the reader token and gets a session cookie.
//!
//! The cookie holds no token: it is `v1.<expiry>.<mac>`, where the MAC is HMAC-SHA-256 keyed
//! by the hash of the configured token. The coordinator keeps no session table; a cookie is
//! valid until it expires ([`LIFETIME`]) or the token changes. It is `HttpOnly`,
//! `SameSite=Strict`, `Path=/`, and `Secure` when the coordinator serves TLS. It authorizes
//! reads only: changes over the API still need the bearer token.

use std::time::Duration;

use base64::Engine as _;
use hmac::{Hmac, Mac};
use http::{HeaderMap, header};
use sha2::Sha256;

use crate::alert::Secret;
use crate::auth::Token;

/// The cookie's name.
pub const COOKIE: &str = "vantage_session";
/// How long a sign-in lasts.
pub(crate) const LIFETIME: Duration = Duration::from_secs(12 * 3600);

type HmacSha256 = Hmac<Sha256>;

fn mac(token: &Secret) -> HmacSha256 {
    // Keyed by the token's hash, the same value the API compares, never by the token itself.
    let key = Token::new(token.expose()).hash();
    // HMAC takes a key of any length: this cannot fail.
    <HmacSha256 as Mac>::new_from_slice(&key).unwrap_or_else(|_| unreachable!("hmac key"))
}

fn message(expiry_s: i64) -> String {
    format!("vantage-page-session|v1|{expiry_s}")
}

/// A new session value, valid from `now_s` (Unix seconds) for `LIFETIME`.
pub fn issue(token: &Secret, now_s: i64) -> String {
    let expiry = now_s + LIFETIME.as_secs() as i64;
    let mut m = mac(token);
    m.update(message(expiry).as_bytes());
    let tag = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(m.finalize().into_bytes());
    format!("v1.{expiry}.{tag}")
}

/// True when `value` is a session issued for `token` that has not expired at `now_s`.
pub fn verify(token: &Secret, value: &str, now_s: i64) -> bool {
    let mut parts = value.split('.');
    let (Some("v1"), Some(expiry), Some(tag), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return false;
    };
    let Ok(expiry) = expiry.parse::<i64>() else {
        return false;
    };
    // Expired, or from further in the future than any session this coordinator issues.
    if expiry <= now_s || expiry > now_s + LIFETIME.as_secs() as i64 + 300 {
        return false;
    }
    let Ok(tag) = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(tag) else {
        return false;
    };
    let mut m = mac(token);
    m.update(message(expiry).as_bytes());
    // Constant-time comparison.
    m.verify_slice(&tag).is_ok()
}

/// The value of cookie `name` in the request's `Cookie` headers.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim())
}

/// True when the request carries a valid session cookie for `token`.
pub(crate) fn signed_in(headers: &HeaderMap, token: &Secret, now_s: i64) -> bool {
    cookie(headers, COOKIE).is_some_and(|v| verify(token, v, now_s))
}

/// True when the request carries a valid session cookie for any token that may sign in.
pub(crate) fn signed_in_any(headers: &HeaderMap, access: &crate::access::Access) -> bool {
    let now = now_s();
    access.session_keys().any(|k| signed_in(headers, k, now))
}

/// The `Set-Cookie` value that signs a browser in.
pub(crate) fn set_cookie(value: &str, secure: bool) -> String {
    format!(
        "{COOKIE}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{}",
        LIFETIME.as_secs(),
        if secure { "; Secure" } else { "" }
    )
}

/// The `Set-Cookie` value that signs a browser out.
pub(crate) fn clear_cookie(secure: bool) -> String {
    format!(
        "{COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0{}",
        if secure { "; Secure" } else { "" }
    )
}

/// Unix seconds now.
pub(crate) fn now_s() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(cookie: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            http::HeaderValue::from_str(cookie).expect("cookie header"),
        );
        h
    }

    #[test]
    fn a_session_is_valid_for_its_token_until_it_expires() {
        let token = Secret::new("reader-token");
        let now = 1_800_000_000;
        let value = issue(&token, now);
        assert!(!value.contains("reader-token"));
        assert!(verify(&token, &value, now));
        assert!(verify(&token, &value, now + LIFETIME.as_secs() as i64 - 1));
        assert!(!verify(&token, &value, now + LIFETIME.as_secs() as i64));
        assert!(!verify(&Secret::new("another-token"), &value, now));
    }

    #[test]
    fn forged_or_mangled_sessions_are_refused() {
        let token = Secret::new("reader-token");
        let now = 1_800_000_000;
        let value = issue(&token, now);
        let (head, tag) = value.rsplit_once('.').expect("three parts");
        // A later expiry with the old tag.
        let later = format!("v1.{}.{tag}", now + 100);
        assert!(!verify(&token, &later, now));
        // Far-future expiry, whatever the tag.
        assert!(!verify(
            &token,
            &format!("v1.{}.{tag}", now + 10 * 86_400),
            now
        ));
        for bad in [
            "",
            "v1",
            "v1..",
            "v2.1.abc",
            &format!("{head}."),
            &format!("{head}.{tag}.x"),
            &format!("{head}.!!!"),
            &format!("{head}.{}", &tag[1..]),
        ] {
            assert!(!verify(&token, bad, now), "{bad:?} accepted");
        }
    }

    #[test]
    fn the_cookie_is_found_among_others() {
        let token = Secret::new("t");
        let now = 1_800_000_000;
        let value = issue(&token, now);
        let h = headers(&format!("a=1; {COOKIE}={value}; b=2"));
        assert_eq!(cookie(&h, COOKIE), Some(value.as_str()));
        assert!(signed_in(&h, &token, now));
        assert!(!signed_in(&headers("a=1"), &token, now));
        assert!(!signed_in(&HeaderMap::new(), &token, now));
    }

    #[test]
    fn cookie_attributes() {
        let c = set_cookie("v1.1.x", true);
        for want in [
            "vantage_session=v1.1.x",
            "Path=/",
            "HttpOnly",
            "SameSite=Strict",
            "Max-Age=43200",
            "Secure",
        ] {
            assert!(c.contains(want), "{c} lacks {want}");
        }
        assert!(!set_cookie("v", false).contains("Secure"));
        assert!(clear_cookie(false).contains("Max-Age=0"));
    }
}
