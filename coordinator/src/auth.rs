//! Bearer tokens: generated once, shown once, stored only as a SHA-256 hash.

use std::fmt;

use base64::Engine as _;
use sha2::{Digest, Sha256};

/// A bearer token. Its `Debug` and `Display` never show the secret.
#[derive(Clone, PartialEq, Eq)]
pub struct Token(String);

/// Prefix of probe tokens, so a leaked one is recognisable in a secret scanner.
const PROBE_PREFIX: &str = "vtp_";

impl Token {
    /// A new random probe token: 256 bits from the OS's generator.
    pub fn generate_probe() -> Self {
        let bytes: [u8; 32] = rand::random();
        Self(format!(
            "{PROBE_PREFIX}{}",
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
        ))
    }

    /// Wraps a token read from a file, env var or header (surrounding whitespace trimmed).
    pub fn new(s: &str) -> Self {
        Self(s.trim().to_owned())
    }

    /// The secret itself: only for printing once at creation and for sending.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The hash stored and compared in place of the token.
    pub fn hash(&self) -> [u8; 32] {
        Sha256::digest(self.0.as_bytes()).into()
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token(<redacted>)")
    }
}

/// The token of an `Authorization: Bearer …` header value, if that is what it is.
pub fn bearer(header: Option<&http::HeaderValue>) -> Option<Token> {
    let value = header?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    (scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty()).then(|| Token::new(token))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_unique_redacted_and_hash_stably() {
        let a = Token::generate_probe();
        let b = Token::generate_probe();
        assert_ne!(a, b);
        assert!(a.expose().starts_with("vtp_") && a.expose().len() > 40);
        assert_eq!(format!("{a:?}"), "Token(<redacted>)");
        assert_eq!(a.hash(), Token::new(&format!(" {} \n", a.expose())).hash());
        assert_ne!(a.hash(), b.hash());
    }

    #[test]
    fn bearer_parsing() {
        let h = |s: &str| http::HeaderValue::from_str(s).expect("header");
        assert_eq!(
            bearer(Some(&h("Bearer abc"))).map(|t| t.expose().to_owned()),
            Some("abc".into())
        );
        assert_eq!(
            bearer(Some(&h("bearer  abc "))).map(|t| t.expose().to_owned()),
            Some("abc".into())
        );
        assert!(bearer(Some(&h("Basic abc"))).is_none());
        assert!(bearer(Some(&h("Bearer "))).is_none());
        assert!(bearer(None).is_none());
    }
}
