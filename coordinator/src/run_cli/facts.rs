//! The facts of a result that a person compares between two runs, flattened out of the
//! per-kind [`Facts`]: the table shows them, the diff compares them and the JUnit report
//! lists them, so all three speak of the same things by the same names.

use vantage_checks::result::{CheckResult, Facts, TlsFacts};

/// A compared fact, by name: the diff's `aspect`, and a line of the JUnit body.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fact {
    /// The final HTTP status code.
    HttpStatus,
    /// The DNS response codes, the distinct ones of every server, sorted.
    Rcode,
    /// The DNS answers, the distinct ones of every server, sorted.
    Answers,
    /// The normalised cache status (`hit`, `miss`, …).
    Cache,
    /// The `Age` header.
    Age,
    /// The `Cache-Control` header.
    CacheControl,
    /// The `Content-Encoding` header.
    ContentEncoding,
    /// The negotiated HTTP version.
    HttpVersion,
    /// The negotiated TLS version.
    TlsVersion,
    /// The CDN that served the object, as its headers tell.
    ServedBy,
}

impl Fact {
    /// Every fact, in the order shown.
    pub const ALL: [Fact; 10] = [
        Fact::HttpStatus,
        Fact::Rcode,
        Fact::Answers,
        Fact::Cache,
        Fact::Age,
        Fact::CacheControl,
        Fact::ContentEncoding,
        Fact::HttpVersion,
        Fact::TlsVersion,
        Fact::ServedBy,
    ];

    /// The stable snake_case label.
    pub fn as_label(self) -> &'static str {
        match self {
            Self::HttpStatus => "http_status",
            Self::Rcode => "rcode",
            Self::Answers => "answers",
            Self::Cache => "cache",
            Self::Age => "age",
            Self::CacheControl => "cache_control",
            Self::ContentEncoding => "content_encoding",
            Self::HttpVersion => "http_version",
            Self::TlsVersion => "tls_version",
            Self::ServedBy => "served_by",
        }
    }
}

/// The compared facts of one result, as text; a fact the result's kind does not have, or
/// that the run did not observe, is `None`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(super) struct Facets {
    values: [Option<String>; Fact::ALL.len()],
    /// The HTTP status and cache status of each extra request (warm-up, cache key, error
    /// page), by purpose, in the order made.
    pub(super) extra: Vec<(&'static str, String)>,
}

impl Facets {
    /// Reads the compared facts out of a result.
    pub(super) fn of(result: &CheckResult) -> Self {
        let mut f = Facets::default();
        match &result.facts {
            Facts::Http(h) => {
                f.set(Fact::HttpStatus, h.status.map(|s| s.to_string()));
                f.set(Fact::Cache, Some(h.cache.as_label().to_owned()));
                f.set(Fact::Age, h.age.map(|a| a.to_string()));
                f.set(Fact::CacheControl, h.cache_control.clone());
                f.set(Fact::ContentEncoding, h.content_encoding.clone());
                f.set(Fact::HttpVersion, h.http_version.clone());
                f.set(Fact::TlsVersion, h.tls.as_ref().and_then(tls_version));
                f.set(Fact::ServedBy, h.served_by.clone());
                f.extra = h
                    .extra_requests
                    .iter()
                    .map(|x| {
                        let status = x.status.map_or_else(
                            || x.failure.map_or("no answer", |k| k.as_label()).to_owned(),
                            |s| s.to_string(),
                        );
                        (
                            x.purpose.as_label(),
                            format!("{status} {}", x.cache.as_label()),
                        )
                    })
                    .collect();
            }
            Facts::Dns(d) => {
                let mut rcodes: Vec<&str> = d
                    .servers
                    .iter()
                    .filter_map(|s| s.rcode.as_deref())
                    .collect();
                rcodes.sort_unstable();
                rcodes.dedup();
                if !rcodes.is_empty() {
                    f.set(Fact::Rcode, Some(rcodes.join(",")));
                }
                let mut answers: Vec<&str> = d
                    .servers
                    .iter()
                    .flat_map(|s| s.answers.iter().map(String::as_str))
                    .collect();
                answers.sort_unstable();
                answers.dedup();
                if !answers.is_empty() {
                    f.set(Fact::Answers, Some(answers.join(" | ")));
                }
            }
            Facts::Tls(t) => f.set(Fact::TlsVersion, tls_version(t)),
            Facts::Tcp(_) | Facts::None => {}
        }
        f
    }

    fn set(&mut self, fact: Fact, value: Option<String>) {
        self.values[fact as usize] = value;
    }

    /// One fact's value.
    pub(super) fn get(&self, fact: Fact) -> Option<&str> {
        self.values[fact as usize].as_deref()
    }
}

fn tls_version(t: &TlsFacts) -> Option<String> {
    t.protocol.clone()
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::{dns, http, result};
    use super::*;
    use vantage_checks::result::{CacheStatus, Status};

    #[test]
    fn http_facts_are_read_with_their_labels_and_dns_answers_are_a_sorted_set() {
        let mut h = http(200, CacheStatus::Hit);
        h.age = Some(30);
        h.cache_control = Some("max-age=60".into());
        let f = Facets::of(&result("c", "p", Status::Ok, None, 10.0, Facts::Http(h)));
        let shown: Vec<(&str, Option<&str>)> = Fact::ALL
            .iter()
            .map(|k| (k.as_label(), f.get(*k)))
            .collect();
        assert_eq!(
            shown,
            vec![
                ("http_status", Some("200")),
                ("rcode", None),
                ("answers", None),
                ("cache", Some("hit")),
                ("age", Some("30")),
                ("cache_control", Some("max-age=60")),
                ("content_encoding", Some("br")),
                ("http_version", Some("HTTP/2")),
                ("tls_version", Some("TLSv1_3")),
                ("served_by", Some("fastcdn")),
            ]
        );
        let d = Facets::of(&result(
            "c",
            "p",
            Status::Ok,
            None,
            10.0,
            dns("NOERROR", &["192.0.2.2", "192.0.2.1"]),
        ));
        assert_eq!(d.get(Fact::Rcode), Some("NOERROR"));
        assert_eq!(d.get(Fact::Answers), Some("192.0.2.1 | 192.0.2.2"));
        let none = Facets::of(&result("c", "p", Status::Fail, None, 1.0, Facts::None));
        assert!(Fact::ALL.iter().all(|k| none.get(*k).is_none()) && none.extra.is_empty());
    }
}
