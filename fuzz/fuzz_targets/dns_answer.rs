//! DNS response checking: any bytes parsed as a DNS message (as `check_response` does), then
//! what the executor reads from it: the answers of the asked type as text, the NSID, the
//! rcode's label, the SOA serials; then the answer expectations.
//!
//! Invariants: no panic; the answers always satisfy an expectation of exactly themselves and
//! of containing themselves; and each answer, written in a check file as an expected answer,
//! normalises to itself (else a check could never expect what a server answers).
#![no_main]

use arbitrary::Arbitrary;
use hickory_proto::op::Message;
use hickory_proto::rr::{RData, RecordType};
use libfuzzer_sys::fuzz_target;
use vantage_checks::fuzzing::{
    answers_text, check_answers, name_text, newest_serial, normalise_answer, nsid_text,
    rcode_label, serial_cmp,
};
use vantage_checks::model::AnswerExpect;

const TYPES: [RecordType; 12] = [
    RecordType::A,
    RecordType::AAAA,
    RecordType::CNAME,
    RecordType::NS,
    RecordType::MX,
    RecordType::TXT,
    RecordType::SOA,
    RecordType::SRV,
    RecordType::PTR,
    RecordType::CAA,
    RecordType::DS,
    RecordType::ANY,
];

#[derive(Arbitrary, Debug)]
struct Input<'a> {
    qtype: u8,
    message: &'a [u8],
}

fuzz_target!(|input: Input<'_>| {
    let Ok(msg) = Message::from_vec(input.message) else {
        return;
    };
    let qtype = TYPES[usize::from(input.qtype) % TYPES.len()];
    let _ = rcode_label(msg.metadata.response_code);
    let _ = nsid_text(&msg);
    for q in &msg.queries {
        let _ = name_text(q.name());
    }
    let answers = answers_text(&msg.answers, qtype);
    assert!(check_answers(&AnswerExpect::Exact(answers.clone()), &answers).is_ok());
    assert!(check_answers(&AnswerExpect::Contains(answers.clone()), &answers).is_ok());
    let _ = check_answers(&AnswerExpect::Exact(vec!["192.0.2.1".into()]), &answers);
    if qtype != RecordType::ANY && qtype != RecordType::TXT {
        for a in &answers {
            assert_eq!(
                normalise_answer(a, Some(qtype)).as_deref(),
                Ok(a.as_str()),
                "a {qtype} answer that no check file can expect"
            );
        }
    }
    let mut serials: Vec<u32> = msg
        .answers
        .iter()
        .chain(&msg.authorities)
        .filter_map(|r| match &r.data {
            RData::SOA(soa) => Some(soa.serial),
            _ => None,
        })
        .collect();
    // RFC 1982 order is not transitive over three or more serials: judge pairs.
    serials.truncate(2);
    if let Some(newest) = newest_serial(&serials) {
        assert!(serials.contains(&newest));
        for &s in &serials {
            assert_ne!(
                serial_cmp(s, newest),
                Some(std::cmp::Ordering::Greater),
                "{s} newer than the newest {newest}"
            );
        }
    }
});
