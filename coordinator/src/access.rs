//! Who may read and change what over HTTP: the `[api]` tokens.
//!
//! - The **reader** token (`reader_token_file`) opens every read: the API's reads, the raw
//!   results, the live stream, the status page (through its sign-in), `/metrics`.
//! - The **operator** token (`token_file`) opens the same reads, and changes (silences). A
//!   status page session, whichever token signed it in, only ever reads.
//! - The optional **metrics** token (`metrics_token_file`) opens `/metrics` alone, for
//!   Prometheus' `authorization` block.
//!
//! With neither a reader nor an operator token, reads are open: fine on loopback, and off
//! loopback only when `public_reads` says it is meant ([`Access::check`] refuses to start
//! otherwise). Changes then need the CLI, which writes to the store directly. Probes have
//! tokens of their own, per probe, stored hashed ([`crate::auth`]).
//!
//! Tokens are compared by their SHA-256, in constant time, and must be at least
//! [`MIN_TOKEN_BYTES`] long: a short one is refused at start.

use std::net::SocketAddr;

use crate::alert::Secret;
use crate::auth::Token;

/// The shortest token accepted (32 bytes: e.g. `openssl rand -base64 32` gives 44).
pub const MIN_TOKEN_BYTES: usize = 32;

/// What a request needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Need {
    /// A read of the API, the stream or the page.
    Read,
    /// A change (a silence).
    Change,
    /// `/metrics`.
    Metrics,
}

/// The `[api]` tokens.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Access {
    /// Reads only.
    pub reader: Option<Secret>,
    /// Reads and changes.
    pub operator: Option<Secret>,
    /// `/metrics` only.
    pub metrics: Option<Secret>,
    /// Reads are open on purpose, off loopback too (`public_reads`, `--public-reads`).
    pub public_reads: bool,
}

fn same(a: &Secret, b: &Token) -> bool {
    let (x, y) = (Token::new(a.expose()).hash(), b.hash());
    // Constant time: the time taken does not say how much of the hash matched.
    x.iter()
        .zip(y.iter())
        .fold(0u8, |acc, (a, b)| acc | (a ^ b))
        == 0
}

impl Access {
    /// True when reads need no token.
    pub fn reads_open(&self) -> bool {
        self.reader.is_none() && self.operator.is_none()
    }

    /// True when `bearer` may do what `need` asks.
    pub fn allows(&self, need: Need, bearer: Option<&Token>) -> bool {
        let is = |s: &Option<Secret>| s.as_ref().zip(bearer).is_some_and(|(s, b)| same(s, b));
        match need {
            Need::Change => is(&self.operator),
            Need::Read => self.reads_open() || is(&self.reader) || is(&self.operator),
            Need::Metrics => {
                (self.reads_open() && self.metrics.is_none())
                    || is(&self.metrics)
                    || is(&self.reader)
                    || is(&self.operator)
            }
        }
    }

    /// The configured token `given` is, of those that may sign in to the status page (reader
    /// first): a session is keyed by it.
    pub fn sign_in(&self, given: &Token) -> Option<&Secret> {
        [&self.reader, &self.operator]
            .into_iter()
            .flatten()
            .find(|s| same(s, given))
    }

    /// The tokens a session may have been signed in with.
    pub fn session_keys(&self) -> impl Iterator<Item = &Secret> {
        [&self.reader, &self.operator].into_iter().flatten()
    }

    /// Refuses what must not start: a short or empty token, one token in two roles, or open
    /// reads off loopback without `public_reads`.
    pub fn check(&self, listen: SocketAddr) -> Result<(), String> {
        let named = [
            ("reader", &self.reader),
            ("operator", &self.operator),
            ("metrics", &self.metrics),
        ];
        for (role, token) in named {
            if let Some(t) = token
                && t.expose().trim().len() < MIN_TOKEN_BYTES
            {
                return Err(format!(
                    "the {role} token is {} bytes; at least {MIN_TOKEN_BYTES} are needed (e.g. `openssl rand -base64 32 > {role}.token`)",
                    t.expose().trim().len()
                ));
            }
        }
        for (i, (a, ta)) in named.iter().enumerate() {
            for (b, tb) in &named[i + 1..] {
                if let (Some(x), Some(y)) = (ta, tb)
                    && same(x, &Token::new(y.expose()))
                {
                    return Err(format!(
                        "the {a} and {b} tokens are the same; each role needs its own token"
                    ));
                }
            }
        }
        if self.reads_open() && !self.public_reads && !listen.ip().is_loopback() {
            return Err(format!(
                "the coordinator would listen on {listen}, off loopback, with its reads open to anyone: set a reader token (`[api] reader_token_file`) or an operator token (`[api] token_file`), or say the reads are meant to be public with `[api] public_reads = true` (or `--public-reads`)"
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret(s: &str) -> Option<Secret> {
        Some(Secret::new(s))
    }

    const R: &str = "reader-token-0123456789abcdef-0123456789";
    const O: &str = "operator-token-0123456789abcdef-012345678";
    const M: &str = "metrics-token-0123456789abcdef-0123456789";

    #[test]
    fn each_token_opens_what_its_role_allows() {
        let a = Access {
            reader: secret(R),
            operator: secret(O),
            metrics: secret(M),
            public_reads: false,
        };
        let t = |s: &str| Token::new(s);
        let cases = [
            (Need::Read, None, false),
            (Need::Read, Some(t(R)), true),
            (Need::Read, Some(t(O)), true),
            (Need::Read, Some(t(M)), false),
            (Need::Read, Some(t("wrong")), false),
            (Need::Change, Some(t(R)), false),
            (Need::Change, Some(t(O)), true),
            (Need::Change, Some(t(M)), false),
            (Need::Metrics, None, false),
            (Need::Metrics, Some(t(M)), true),
            (Need::Metrics, Some(t(R)), true),
        ];
        for (need, bearer, want) in cases {
            assert_eq!(
                a.allows(need, bearer.as_ref()),
                want,
                "{need:?} with {:?}",
                bearer.as_ref().map(Token::expose)
            );
        }
        let open = Access::default();
        assert!(open.allows(Need::Read, None));
        assert!(open.allows(Need::Metrics, None));
        assert!(
            !open.allows(Need::Change, Some(&t(O))),
            "no operator token: no changes"
        );
        let metrics_only = Access {
            metrics: secret(M),
            ..Access::default()
        };
        assert!(!metrics_only.allows(Need::Metrics, None));
        assert!(metrics_only.allows(Need::Read, None));
    }

    #[test]
    fn what_must_not_start() {
        let lo: SocketAddr = "127.0.0.1:7470".parse().expect("addr");
        let any: SocketAddr = "0.0.0.0:7470".parse().expect("addr");
        assert!(Access::default().check(lo).is_ok());
        let open = Access::default()
            .check(any)
            .expect_err("open reads off loopback");
        assert!(open.contains("public_reads = true"), "{open}");
        let public = Access {
            public_reads: true,
            ..Access::default()
        };
        assert!(public.check(any).is_ok());
        let short = Access {
            reader: secret("short"),
            ..Access::default()
        };
        let e = short.check(lo).expect_err("short");
        assert!(
            e.contains("the reader token is 5 bytes; at least 32"),
            "{e}"
        );
        let empty = Access {
            operator: secret("   "),
            ..Access::default()
        };
        assert!(empty.check(lo).is_err());
        let twice = Access {
            reader: secret(R),
            operator: secret(R),
            ..Access::default()
        };
        let e = twice.check(any).expect_err("one token, two roles");
        assert!(e.contains("reader and operator tokens are the same"), "{e}");
        let fine = Access {
            reader: secret(R),
            ..Access::default()
        };
        assert!(fine.check(any).is_ok());
    }
}
