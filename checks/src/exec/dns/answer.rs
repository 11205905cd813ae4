//! Pure helpers: answers as text, answer expectations, RFC 1982 serial arithmetic.

use std::cmp::Ordering;

use hickory_proto::rr::{Name, RData, Record, RecordType};

use crate::model::AnswerExpect;

/// A name as the results print it: lowercase ASCII (IDNs as `xn--`), no trailing dot.
pub fn name_text(name: &Name) -> String {
    let text = name.to_ascii().to_ascii_lowercase();
    match text.trim_end_matches('.') {
        "" => ".".to_owned(),
        trimmed => trimmed.to_owned(),
    }
}

/// One record's data as text, the way `config` normalises expected answers: addresses in
/// canonical form, TXT strings joined, everything else lowercase words without trailing dots.
/// `None` for data that has no text form (OPT, or none at all).
pub fn rdata_text(rdata: &RData) -> Option<String> {
    Some(match rdata {
        RData::A(a) => a.0.to_string(),
        RData::AAAA(a) => a.0.to_string(),
        RData::TXT(txt) => txt
            .txt_data
            .iter()
            .map(|s| String::from_utf8_lossy(s))
            .collect(),
        RData::NS(ns) => name_text(&ns.0),
        RData::CNAME(cname) => name_text(&cname.0),
        RData::PTR(ptr) => name_text(&ptr.0),
        RData::MX(mx) => format!("{} {}", mx.preference, name_text(&mx.exchange)),
        RData::SRV(srv) => format!(
            "{} {} {} {}",
            srv.priority,
            srv.weight,
            srv.port,
            name_text(&srv.target)
        ),
        RData::SOA(soa) => format!(
            "{} {} {} {} {} {} {}",
            name_text(&soa.mname),
            name_text(&soa.rname),
            soa.serial,
            soa.refresh,
            soa.retry,
            soa.expire,
            soa.minimum
        ),
        // An empty record (`Update0`, as hickory reads zero-length data) prints as `update`.
        RData::OPT(_) | RData::Update0(_) => return None,
        other => words(&other.to_string()),
    })
}

/// Lowercase words without trailing dots, single-spaced (the rule `config` applies).
fn words(s: &str) -> String {
    crate::config::dns::words(s)
}

/// The answer records of the asked type, as text. A CNAME chain the server followed is left
/// out (unless CNAME was asked), so `answers = ["192.0.2.10"]` holds behind an alias.
pub fn answers_text(answers: &[Record], qtype: RecordType) -> Vec<String> {
    answers
        .iter()
        .filter(|r| qtype == RecordType::ANY || r.record_type() == qtype)
        .filter_map(|r| rdata_text(&r.data))
        .collect()
}

/// Checks normalised `answers` against the expectation; `Err` says what is wrong.
pub fn check_answers(expect: &AnswerExpect, answers: &[String]) -> Result<(), String> {
    match expect {
        AnswerExpect::Any => Ok(()),
        AnswerExpect::Exact(want) => {
            let mut got: Vec<&str> = answers.iter().map(String::as_str).collect();
            got.sort_unstable();
            got.dedup();
            let mut want: Vec<&str> = want.iter().map(String::as_str).collect();
            want.sort_unstable();
            want.dedup();
            if got == want {
                return Ok(());
            }
            let missing: Vec<&str> = want.iter().filter(|w| !got.contains(w)).copied().collect();
            let extra: Vec<&str> = got.iter().filter(|g| !want.contains(g)).copied().collect();
            Err(format!(
                "answers {} differ from the expected {}{}{}",
                list(&got),
                list(&want),
                if missing.is_empty() {
                    String::new()
                } else {
                    format!("; missing {}", list(&missing))
                },
                if extra.is_empty() {
                    String::new()
                } else {
                    format!("; unexpected {}", list(&extra))
                },
            ))
        }
        AnswerExpect::Contains(want) => {
            let missing: Vec<&str> = want
                .iter()
                .filter(|w| !answers.contains(w))
                .map(String::as_str)
                .collect();
            if missing.is_empty() {
                Ok(())
            } else {
                let got: Vec<&str> = answers.iter().map(String::as_str).collect();
                Err(format!("answers {} lack {}", list(&got), list(&missing)))
            }
        }
        AnswerExpect::Matches(re) => {
            if answers.is_empty() {
                return Err(format!("no answers, expected answers matching `{re}`"));
            }
            let bad: Vec<&str> = answers
                .iter()
                .filter(|a| !re.is_match(a))
                .map(String::as_str)
                .collect();
            if bad.is_empty() {
                Ok(())
            } else {
                Err(format!("answers {} do not match `{re}`", list(&bad)))
            }
        }
    }
}

/// `[a, b]`, or `[]`.
pub(super) fn list<S: AsRef<str>>(items: &[S]) -> String {
    let inner: Vec<&str> = items.iter().map(AsRef::as_ref).collect();
    format!("[{}]", inner.join(", "))
}

/// Compares two SOA serials by RFC 1982 serial number arithmetic (SERIAL_BITS = 32).
/// `None` when the two are exactly 2^31 apart, which the RFC leaves undefined.
pub fn serial_cmp(a: u32, b: u32) -> Option<Ordering> {
    const HALF: u32 = 1 << 31;
    if a == b {
        return Some(Ordering::Equal);
    }
    match a.wrapping_sub(b) {
        HALF => None,
        d if d < HALF => Some(Ordering::Greater),
        _ => Some(Ordering::Less),
    }
}

/// The newest serial of a set: the one no other serial is greater than, in RFC 1982 terms.
pub fn newest_serial(serials: &[u32]) -> Option<u32> {
    let mut newest = *serials.first()?;
    for &s in &serials[1..] {
        if serial_cmp(s, newest) == Some(Ordering::Greater) {
            newest = s;
        }
    }
    Some(newest)
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, Ipv6Addr};
    use std::str::FromStr;

    use hickory_proto::rr::rdata::{A, AAAA, CNAME, MX, NS, SOA, TXT};

    use super::*;

    fn name(s: &str) -> Name {
        Name::from_str(s).expect("test name")
    }

    #[test]
    fn serial_comparison_follows_rfc_1982() {
        use Ordering::*;
        let table: &[(u32, u32, Option<Ordering>)] = &[
            (1, 1, Some(Equal)),
            (2, 1, Some(Greater)),
            (1, 2, Some(Less)),
            // Wrap-around: 0 comes after 4294967295.
            (0, u32::MAX, Some(Greater)),
            (u32::MAX, 0, Some(Less)),
            (5, u32::MAX - 5, Some(Greater)),
            // Just under half the space apart: still ordered the plain way.
            (0, (1 << 31) - 1, Some(Less)),
            // Just over half: ordered the wrapped way.
            (0, (1 << 31) + 1, Some(Greater)),
            // Exactly half: undefined.
            (0, 1 << 31, None),
            (1 << 31, 0, None),
            (2_024_010_200, 2_024_010_100, Some(Greater)),
        ];
        for &(a, b, want) in table {
            assert_eq!(serial_cmp(a, b), want, "serial_cmp({a}, {b})");
        }
    }

    #[test]
    fn newest_serial_handles_wrap_around() {
        assert_eq!(newest_serial(&[]), None);
        assert_eq!(newest_serial(&[7]), Some(7));
        assert_eq!(newest_serial(&[3, 9, 5]), Some(9));
        assert_eq!(newest_serial(&[u32::MAX, 2, u32::MAX - 1]), Some(2));
    }

    #[test]
    fn record_data_is_normalised() {
        let txt = TXT::from_bytes(vec![b"v=spf1 ".as_slice(), b"-all".as_slice()]);
        let soa = SOA::new(
            name("NS1.Example.COM."),
            name("hostmaster.example.com."),
            2024,
            3600,
            600,
            86400,
            300,
        );
        let table: Vec<(RData, &str)> = vec![
            (RData::A(A(Ipv4Addr::new(192, 0, 2, 10))), "192.0.2.10"),
            (
                RData::AAAA(AAAA(Ipv6Addr::from_str("2001:DB8::1").expect("v6"))),
                "2001:db8::1",
            ),
            (
                RData::MX(MX::new(10, name("Mail.Example.com."))),
                "10 mail.example.com",
            ),
            (RData::NS(NS(name("ns1.example.com."))), "ns1.example.com"),
            (RData::CNAME(CNAME(name("edge.CDN.net."))), "edge.cdn.net"),
            (RData::TXT(txt), "v=spf1 -all"),
            (
                RData::SOA(soa),
                "ns1.example.com hostmaster.example.com 2024 3600 600 86400 300",
            ),
        ];
        for (rdata, want) in table {
            assert_eq!(rdata_text(&rdata).as_deref(), Some(want), "{rdata:?}");
        }
        assert_eq!(name_text(&Name::root()), ".");
    }

    #[test]
    fn only_records_of_the_asked_type_are_answers() {
        let records = vec![
            Record::from_rdata(
                name("www.example.com."),
                60,
                RData::CNAME(CNAME(name("edge.example.net."))),
            ),
            Record::from_rdata(
                name("edge.example.net."),
                60,
                RData::A(A(Ipv4Addr::new(192, 0, 2, 1))),
            ),
        ];
        assert_eq!(answers_text(&records, RecordType::A), vec!["192.0.2.1"]);
        assert_eq!(
            answers_text(&records, RecordType::CNAME),
            vec!["edge.example.net"]
        );
    }

    #[test]
    fn answer_expectations() {
        let got = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        let exact = AnswerExpect::Exact(got(&["192.0.2.10", "192.0.2.11"]));
        assert!(check_answers(&exact, &got(&["192.0.2.11", "192.0.2.10"])).is_ok());
        let err = check_answers(&exact, &got(&["192.0.2.10", "192.0.2.99"])).expect_err("mismatch");
        assert!(
            err.contains("missing [192.0.2.11]") && err.contains("unexpected [192.0.2.99]"),
            "{err}"
        );
        assert!(check_answers(&exact, &[]).is_err());

        let contains = AnswerExpect::Contains(got(&["192.0.2.10"]));
        assert!(check_answers(&contains, &got(&["192.0.2.10", "192.0.2.11"])).is_ok());
        assert!(check_answers(&contains, &got(&["192.0.2.11"])).is_err());

        let matches = AnswerExpect::Matches(regex::Regex::new(r"^192\.0\.2\.").expect("regex"));
        assert!(check_answers(&matches, &got(&["192.0.2.10", "192.0.2.11"])).is_ok());
        assert!(check_answers(&matches, &got(&["192.0.2.10", "198.51.100.1"])).is_err());
        assert!(
            check_answers(&matches, &[]).is_err(),
            "matches needs at least one answer"
        );

        assert!(check_answers(&AnswerExpect::Any, &[]).is_ok());
    }

    /// Found by the `dns_answer` fuzz target: an A record with empty data (hickory reads it
    /// as `Update0`) was reported as the answer `update`, which no A answer can be.
    #[test]
    fn r12_a_record_without_data_is_no_answer() {
        let empty = Record::from_rdata(name("example.com."), 300, RData::Update0(RecordType::A));
        assert_eq!(rdata_text(&empty.data), None);
        assert!(answers_text(&[empty], RecordType::A).is_empty());
    }
}
