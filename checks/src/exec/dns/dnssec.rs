//! `dnssec = { valid_for = "7d" }`: the RRSIGs over one server's answer, judged by their
//! validity period and, against the signer's DNSKEY set as the same server serves it, by
//! their signature. Pure: the response, the keys and `now` come in, a verdict goes out.
//!
//! Choices worth knowing:
//! - What must be signed: every RRset of the answer section (a CNAME chain's too); for an
//!   empty answer (NXDOMAIN, NODATA), the SOA of the authority section, which is what a
//!   negative answer's proof hangs on. Denial-of-existence records (NSEC, NSEC3) are not
//!   judged.
//! - RRSIG times are 32-bit serial numbers (RFC 4034 §3.1.5): each is read as the instant
//!   nearest to `now` with those low 32 bits (RFC 1982 arithmetic), so signatures keep their
//!   meaning across 2106. A time exactly 2^31 seconds from `now`, which the RFC leaves
//!   undefined, is read as past.
//! - A signature is current when inception ≤ now ≤ expiration (RFC 4035 §5.3.1). An RRset
//!   is judged by its longest-lasting signature: during a key rollover two sign it, and the
//!   new one is what matters.
//! - Signatures are verified against the DNSKEYs the same server serves for the signer's
//!   name (matching key tag and algorithm, zone-key flag set, not revoked), not along a chain
//!   of trust from the root: this catches a broken signer, a corrupted copy and a tampered
//!   record, not a DS record at the parent that no longer matches. A signature whose
//!   algorithm this probe cannot verify (hickory's ring backend: RSA/SHA-1, RSA/SHA-256,
//!   RSA/SHA-512, ECDSA P-256 and P-384, Ed25519) is judged by its times only, and the facts
//!   say it was not verified.
//! - Precedence within one answer, most significant first: `rrsig_missing`,
//!   `dnssec_invalid`, `rrsig_expired`, `rrsig_not_yet_valid`, `rrsig_expires_soon`.

use std::time::Duration;

use hickory_proto::dnssec::rdata::{DNSKEY, DNSSECRData, RRSIG};
use hickory_proto::dnssec::{Algorithm, Verifier};
use hickory_proto::op::Message;
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::answer::name_text;
use crate::result::{FailureKind, RrsigFacts};

/// The instant an RRSIG time field (`serial`, 32-bit seconds) names, read by RFC 1982
/// arithmetic as the one nearest to `now` (Unix seconds): at most 2^31 - 1 seconds ahead,
/// at most 2^31 seconds behind.
pub(crate) fn rrsig_time(serial: u32, now: i64) -> i64 {
    // The truncation is the arithmetic: the low 32 bits of now, and the signed distance.
    #[allow(clippy::cast_possible_truncation)]
    let now_serial = now as u32;
    #[allow(clippy::cast_possible_wrap)]
    let ahead = serial.wrapping_sub(now_serial) as i32;
    now + i64::from(ahead)
}

/// The signer's name of the first RRSIG in the response over what must be signed: the zone
/// whose DNSKEY set verifies it. `None` when nothing is signed.
pub(crate) fn signer(msg: &Message) -> Option<Name> {
    let wanted = must_be_signed(msg);
    signatures(msg)
        .find(|(owner, sig)| {
            wanted
                .iter()
                .any(|(n, t)| n == *owner && *t == sig.input().type_covered)
        })
        .map(|(_, sig)| sig.input().signer_name.clone())
}

/// The DNSKEYs at `signer` in a response to `signer DNSKEY`.
pub(crate) fn dnskeys(msg: &Message, signer: &Name) -> Vec<DNSKEY> {
    msg.answers
        .iter()
        .filter(|r| r.name.eq_ignore_root(signer))
        .filter_map(|r| match &r.data {
            RData::DNSSEC(DNSSECRData::DNSKEY(k)) => Some(k.clone()),
            _ => None,
        })
        .collect()
}

/// What the RRSIGs over one answer came to.
#[derive(Debug, PartialEq)]
pub(crate) struct Judgement {
    /// The most significant problem, with a message naming the signature and its times.
    pub(crate) failure: Option<(FailureKind, String)>,
    /// The signature judged over the first RRset (the question's, usually).
    pub(crate) rrsig: Option<RrsigFacts>,
}

/// Judges the RRSIGs of `msg` at `now` (Unix seconds) against `valid_for`, verifying them
/// with `keys` (the signer's DNSKEY set; `None` when the server serves none).
pub(crate) fn judge(
    msg: &Message,
    keys: Option<&[DNSKEY]>,
    now: i64,
    valid_for: Duration,
) -> Judgement {
    let mut problems: Vec<(FailureKind, String)> = Vec::new();
    let mut first_facts = None;
    let wanted = must_be_signed(msg);
    if wanted.is_empty() {
        problems.push((
            FailureKind::RrsigMissing,
            "the answer holds nothing to sign (no answer records, no SOA in the authority \
             section)"
                .to_owned(),
        ));
    }
    for (owner, rtype) in &wanted {
        let (problem, facts) = judge_rrset(msg, owner, *rtype, keys, now, valid_for);
        if first_facts.is_none() {
            first_facts = facts;
        }
        problems.extend(problem);
    }
    problems.sort_by_key(|(kind, _)| rank(*kind));
    Judgement {
        failure: problems.into_iter().next(),
        rrsig: first_facts,
    }
}

/// Lower is more significant (see the module docs).
fn rank(kind: FailureKind) -> u8 {
    match kind {
        FailureKind::RrsigMissing => 0,
        FailureKind::DnssecInvalid => 1,
        FailureKind::RrsigExpired => 2,
        FailureKind::RrsigNotYetValid => 3,
        _ => 4,
    }
}

/// The RRsets that must carry a signature, as (owner, type), in the order they appear.
fn must_be_signed(msg: &Message) -> Vec<(Name, RecordType)> {
    let mut out: Vec<(Name, RecordType)> = Vec::new();
    let from = |records: &[Record], only: Option<RecordType>, out: &mut Vec<(Name, RecordType)>| {
        for r in records {
            let t = r.record_type();
            if matches!(t, RecordType::RRSIG | RecordType::OPT) || only.is_some_and(|o| o != t) {
                continue;
            }
            if !out.iter().any(|(n, ot)| *ot == t && *n == r.name) {
                out.push((r.name.clone(), t));
            }
        }
    };
    from(&msg.answers, None, &mut out);
    if out.is_empty() {
        from(&msg.authorities, Some(RecordType::SOA), &mut out);
    }
    out
}

/// Every RRSIG of the answer and authority sections, with its owner.
fn signatures(msg: &Message) -> impl Iterator<Item = (&Name, &RRSIG)> {
    msg.answers
        .iter()
        .chain(&msg.authorities)
        .filter_map(|r| match &r.data {
            RData::DNSSEC(DNSSECRData::RRSIG(sig)) => Some((&r.name, sig)),
            _ => None,
        })
}

/// One signature over an RRset, with its times read against now.
struct Sig<'a> {
    sig: &'a RRSIG,
    inception: i64,
    expiration: i64,
    /// `Some(true)` verified, `Some(false)` did not, `None` could not be tried.
    verified: Option<bool>,
    /// Why it did not verify.
    why: Option<String>,
}

fn judge_rrset(
    msg: &Message,
    owner: &Name,
    rtype: RecordType,
    keys: Option<&[DNSKEY]>,
    now: i64,
    valid_for: Duration,
) -> (Option<(FailureKind, String)>, Option<RrsigFacts>) {
    let what = format!("`{} {rtype}`", name_text(owner));
    let records: Vec<&Record> = msg
        .answers
        .iter()
        .chain(&msg.authorities)
        .filter(|r| r.record_type() == rtype && r.name == *owner)
        .collect();
    let sigs: Vec<Sig<'_>> = signatures(msg)
        .filter(|(n, sig)| *n == owner && sig.input().type_covered == rtype)
        .map(|(_, sig)| {
            let (verified, why) = verify(owner, sig, &records, keys);
            Sig {
                sig,
                inception: rrsig_time(sig.input().sig_inception.get(), now),
                expiration: rrsig_time(sig.input().sig_expiration.get(), now),
                verified,
                why,
            }
        })
        .collect();
    if sigs.is_empty() {
        return (
            Some((
                FailureKind::RrsigMissing,
                format!(
                    "no RRSIG over {what}: the answer is unsigned (an unsigned zone, or a \
                     server that ignores the DO bit)"
                ),
            )),
            None,
        );
    }
    // Only signatures that verify (or that could not be tried) count.
    let counted: Vec<&Sig<'_>> = sigs.iter().filter(|s| s.verified != Some(false)).collect();
    if counted.is_empty() {
        let why: Vec<String> = sigs
            .iter()
            .map(|s| format!("{}: {}", describe(s.sig), s.why.as_deref().unwrap_or("")))
            .collect();
        let best = longest(sigs.iter());
        let signer = best.map_or_else(String::new, |b| name_text(&b.sig.input().signer_name));
        return (
            Some((
                FailureKind::DnssecInvalid,
                format!(
                    "no RRSIG over {what} verifies against the DNSKEY set of `{signer}` this \
                     server serves: {}",
                    why.join("; ")
                ),
            )),
            best.map(|b| facts(b, rtype)),
        );
    }
    let current = counted
        .iter()
        .copied()
        .filter(|s| s.inception <= now && now <= s.expiration);
    let (problem, judged) = match longest(current) {
        Some(s) => {
            let left = u64::try_from(s.expiration - now).unwrap_or(0);
            let problem = (left < valid_for.as_secs()).then(|| {
                (
                    FailureKind::RrsigExpiresSoon,
                    format!(
                        "{} over {what} expires at {}, in {}, within valid_for of {}",
                        describe(s.sig),
                        rfc3339(s.expiration),
                        crate::duration::format(Duration::from_secs(left)),
                        crate::duration::format(valid_for)
                    ),
                )
            });
            (problem, s)
        }
        None => {
            let future = counted
                .iter()
                .copied()
                .filter(|s| s.inception > now && now <= s.expiration);
            match longest(future) {
                Some(s) => (
                    Some((
                        FailureKind::RrsigNotYetValid,
                        format!(
                            "{} over {what} is not valid before {}, in {} (it expires at {})",
                            describe(s.sig),
                            rfc3339(s.inception),
                            ago(s.inception - now),
                            rfc3339(s.expiration)
                        ),
                    )),
                    s,
                ),
                None => {
                    let Some(s) = longest(counted.iter().copied()) else {
                        return (None, None);
                    };
                    (
                        Some((
                            FailureKind::RrsigExpired,
                            format!(
                                "{} over {what} expired at {}, {} ago",
                                describe(s.sig),
                                rfc3339(s.expiration),
                                ago(now - s.expiration)
                            ),
                        )),
                        s,
                    )
                }
            }
        }
    };
    (problem, Some(facts(judged, rtype)))
}

/// The signature that expires last.
fn longest<'s, 'a: 's>(sigs: impl Iterator<Item = &'s Sig<'a>>) -> Option<&'s Sig<'a>> {
    sigs.max_by_key(|s| s.expiration)
}

/// Verifies `sig` over `records` with the matching keys of `keys`.
fn verify(
    owner: &Name,
    sig: &RRSIG,
    records: &[&Record],
    keys: Option<&[DNSKEY]>,
) -> (Option<bool>, Option<String>) {
    let input = sig.input();
    // hickory asserts support before decoding a key: ask first.
    if !input.algorithm.is_supported() {
        return (None, None);
    }
    let Some(keys) = keys else {
        return (
            Some(false),
            Some(format!(
                "the server serves no DNSKEY for `{}`",
                name_text(&input.signer_name)
            )),
        );
    };
    let matching: Vec<&DNSKEY> = keys
        .iter()
        .filter(|k| {
            k.zone_key()
                && !k.revoke()
                && Verifier::algorithm(*k) == input.algorithm
                && k.calculate_key_tag().ok() == Some(input.key_tag)
        })
        .collect();
    if matching.is_empty() {
        return (
            Some(false),
            Some(format!(
                "no DNSKEY of `{}` has key tag {} and algorithm {}",
                name_text(&input.signer_name),
                input.key_tag,
                algorithm_number(input.algorithm)
            )),
        );
    }
    let class = records.first().map_or(DNSClass::IN, |r| r.dns_class);
    let mut why = String::new();
    for key in matching {
        match key.verify_rrsig(owner, class, sig, records.iter().copied()) {
            Ok(()) => return (Some(true), None),
            Err(e) => why = format!("the signature does not verify ({e})"),
        }
    }
    (Some(false), Some(why))
}

/// `RRSIG (key 12345, algorithm 13, signer example.com)`.
fn describe(sig: &RRSIG) -> String {
    let input = sig.input();
    format!(
        "RRSIG (key {}, algorithm {}, signer {})",
        input.key_tag,
        algorithm_number(input.algorithm),
        name_text(&input.signer_name)
    )
}

fn facts(s: &Sig<'_>, covers: RecordType) -> RrsigFacts {
    let input = s.sig.input();
    RrsigFacts {
        covers: covers.to_string(),
        signer: name_text(&input.signer_name),
        algorithm: algorithm_number(input.algorithm),
        key_tag: input.key_tag,
        inception: rfc3339(s.inception),
        expiration: rfc3339(s.expiration),
        verified: s.verified == Some(true),
    }
}

fn algorithm_number(a: Algorithm) -> u8 {
    u8::from(a)
}

/// Unix seconds as RFC 3339 (UTC), or the number itself outside what `time` represents.
fn rfc3339(unix: i64) -> String {
    OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_else(|| format!("{unix} (Unix seconds)"))
}

/// A span of seconds as people write it (`2days 3h`); negative spans as zero.
fn ago(secs: i64) -> String {
    crate::duration::format(Duration::from_secs(u64::try_from(secs).unwrap_or(0)))
}

#[cfg(test)]
pub(crate) mod tests {
    use std::net::Ipv4Addr;
    use std::str::FromStr;

    use hickory_proto::dnssec::crypto::Ed25519SigningKey;
    use hickory_proto::dnssec::rdata::SigInput;
    use hickory_proto::dnssec::{PublicKey, SigningKey, TBS};
    use hickory_proto::op::{MessageType, OpCode};
    use hickory_proto::rr::SerialNumber;
    use hickory_proto::rr::rdata::{A, SOA};

    use super::*;

    /// A fixed `now`: 2026-01-01T00:00:00Z.
    const NOW: i64 = 1_767_225_600;
    const DAY: i64 = 86_400;
    const WEEK: Duration = Duration::from_secs(7 * 86_400);

    pub(crate) fn name(s: &str) -> Name {
        Name::from_str(s).expect("test name")
    }

    /// A zone's signing key (Ed25519), and its DNSKEY.
    pub(crate) struct Signer {
        zone: Name,
        key: Ed25519SigningKey,
        pub(crate) dnskey: DNSKEY,
    }

    impl Signer {
        pub(crate) fn new(zone: &str) -> Self {
            let pkcs8 = Ed25519SigningKey::generate_pkcs8().expect("generate a key");
            let key = Ed25519SigningKey::from_pkcs8(&pkcs8).expect("read the key");
            let public = key.to_public_key().expect("public key");
            Self {
                zone: name(zone),
                dnskey: DNSKEY::from_key(&public as &dyn PublicKey),
                key,
            }
        }

        pub(crate) fn key_tag(&self) -> u16 {
            self.dnskey.calculate_key_tag().expect("key tag")
        }

        /// An RRSIG over `rrset` (one owner, one type) with these time fields.
        pub(crate) fn sign(&self, rrset: &[Record], inception: u32, expiration: u32) -> Record {
            let first = &rrset[0];
            let input = SigInput {
                type_covered: first.record_type(),
                algorithm: Algorithm::ED25519,
                num_labels: first.name.num_labels(),
                original_ttl: first.ttl,
                sig_expiration: SerialNumber::new(expiration),
                sig_inception: SerialNumber::new(inception),
                key_tag: self.key_tag(),
                signer_name: self.zone.clone(),
            };
            let tbs = TBS::from_input(&first.name, DNSClass::IN, &input, rrset.iter())
                .expect("to be signed");
            let sig = self.key.sign(&tbs).expect("sign");
            Record::from_rdata(
                first.name.clone(),
                first.ttl,
                RData::DNSSEC(DNSSECRData::RRSIG(RRSIG::from_sig(input, sig))),
            )
        }
    }

    /// Unix seconds as an RRSIG time field: the low 32 bits.
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    pub(crate) fn field(unix: i64) -> u32 {
        unix as u32
    }

    fn www() -> Vec<Record> {
        [10, 11]
            .map(|last| {
                Record::from_rdata(
                    name("www.example.test."),
                    300,
                    RData::A(A(Ipv4Addr::new(192, 0, 2, last))),
                )
            })
            .to_vec()
    }

    fn answer(records: Vec<Record>) -> Message {
        let mut m = Message::new(1, MessageType::Response, OpCode::Query);
        for r in records {
            m.add_answer(r);
        }
        m
    }

    /// `www A`, signed by `signer` from `inception` to `expiration` (Unix seconds).
    fn signed_www(signer: &Signer, inception: i64, expiration: i64) -> Message {
        let rrset = www();
        let sig = signer.sign(&rrset, field(inception), field(expiration));
        let mut records = rrset;
        records.push(sig);
        answer(records)
    }

    fn verdict(msg: &Message, signer: &Signer, now: i64, valid_for: Duration) -> Judgement {
        judge(
            msg,
            Some(std::slice::from_ref(&signer.dnskey)),
            now,
            valid_for,
        )
    }

    fn kind(j: &Judgement) -> Option<FailureKind> {
        j.failure.as_ref().map(|(k, _)| *k)
    }

    #[test]
    fn rrsig_times_follow_serial_arithmetic() {
        let near_wrap = (1_i64 << 32) - 100; // 2106-02-07, just before the 32-bit wrap
        let table: &[(u32, i64, i64)] = &[
            (field(NOW), NOW, NOW),
            (field(NOW + DAY), NOW, NOW + DAY),
            (field(NOW - DAY), NOW, NOW - DAY),
            // Past the wrap: a small field is the near future, not 1970.
            (200, near_wrap, (1 << 32) + 200),
            // Before the wrap, read from after it: a large field is the near past.
            (u32::MAX - 50, (1 << 32) + 10, (1 << 32) - 51),
            // The farthest ahead and behind that can be told apart.
            (
                field(NOW + i64::from(i32::MAX)),
                NOW,
                NOW + i64::from(i32::MAX),
            ),
            (
                field(NOW - i64::from(i32::MAX)),
                NOW,
                NOW - i64::from(i32::MAX),
            ),
            // Exactly 2^31 away, undefined by RFC 1982: read as past.
            (field(NOW + (1 << 31)), NOW, NOW - (1 << 31)),
        ];
        for &(serial, now, want) in table {
            assert_eq!(rrsig_time(serial, now), want, "rrsig_time({serial}, {now})");
        }
    }

    #[test]
    fn a_current_signature_that_lasts_passes_and_is_verified() {
        let s = Signer::new("example.test.");
        let msg = signed_www(&s, NOW - DAY, NOW + 30 * DAY);
        let j = verdict(&msg, &s, NOW, WEEK);
        assert_eq!(j.failure, None);
        let facts = j.rrsig.expect("facts");
        assert!(facts.verified);
        assert_eq!(facts.covers, "A");
        assert_eq!(facts.signer, "example.test");
        assert_eq!(facts.key_tag, s.key_tag());
        assert_eq!(facts.algorithm, 15);
        assert_eq!(facts.expiration, "2026-01-31T00:00:00Z");
        assert_eq!(facts.inception, "2025-12-31T00:00:00Z");
    }

    #[test]
    fn expiry_boundaries() {
        let s = Signer::new("example.test.");
        let week = 7 * DAY;
        // (expiration, valid_for, expected)
        let table: &[(i64, Duration, Option<FailureKind>)] = &[
            // Exactly valid_for left: not within it.
            (NOW + week, WEEK, None),
            (NOW + week - 1, WEEK, Some(FailureKind::RrsigExpiresSoon)),
            // Expiring this very second is still valid (RFC 4035 §5.3.1), and soon.
            (NOW, WEEK, Some(FailureKind::RrsigExpiresSoon)),
            (NOW, Duration::ZERO, None),
            (NOW - 1, Duration::ZERO, Some(FailureKind::RrsigExpired)),
            (NOW - 1, WEEK, Some(FailureKind::RrsigExpired)),
        ];
        for &(expiration, valid_for, want) in table {
            let msg = signed_www(&s, NOW - 30 * DAY, expiration);
            let j = verdict(&msg, &s, NOW, valid_for);
            assert_eq!(
                kind(&j),
                want,
                "expiration {expiration}, valid_for {valid_for:?}"
            );
        }
    }

    #[test]
    fn inception_boundaries() {
        let s = Signer::new("example.test.");
        for (inception, want) in [
            (NOW, None),
            (NOW + 1, Some(FailureKind::RrsigNotYetValid)),
            (NOW + DAY, Some(FailureKind::RrsigNotYetValid)),
        ] {
            let msg = signed_www(&s, inception, NOW + 30 * DAY);
            assert_eq!(
                kind(&verdict(&msg, &s, NOW, WEEK)),
                want,
                "inception {inception}"
            );
        }
    }

    #[test]
    fn messages_name_the_signature_and_its_times() {
        let s = Signer::new("example.test.");
        let tag = s.key_tag();
        let soon = verdict(&signed_www(&s, NOW - DAY, NOW + 2 * DAY), &s, NOW, WEEK);
        let (_, why) = soon.failure.expect("expires soon");
        assert_eq!(
            why,
            format!(
                "RRSIG (key {tag}, algorithm 15, signer example.test) over `www.example.test A` \
                 expires at 2026-01-03T00:00:00Z, in 2days, within valid_for of 7days"
            )
        );
        let expired = verdict(&signed_www(&s, NOW - 9 * DAY, NOW - 3600), &s, NOW, WEEK);
        let (_, why) = expired.failure.expect("expired");
        assert!(
            why.ends_with("expired at 2025-12-31T23:00:00Z, 1h ago"),
            "{why}"
        );
        let early = verdict(&signed_www(&s, NOW + 60, NOW + 9 * DAY), &s, NOW, WEEK);
        let (_, why) = early.failure.expect("not yet valid");
        assert!(
            why.ends_with(
                "is not valid before 2026-01-01T00:01:00Z, in 1m (it expires at \
                 2026-01-10T00:00:00Z)"
            ),
            "{why}"
        );
    }

    #[test]
    fn signatures_keep_their_meaning_across_2106() {
        let s = Signer::new("example.test.");
        // Signed just before the 32-bit wrap, to expire just after it: the expiration field
        // is a small number, which a plain comparison would read as 1970.
        let now = (1_i64 << 32) - 100;
        let msg = signed_www(&s, now - DAY, now + 30 * DAY);
        assert_eq!(verdict(&msg, &s, now, WEEK).failure, None);
        let soon = signed_www(&s, now - DAY, now + DAY);
        assert_eq!(
            kind(&verdict(&soon, &s, now, WEEK)),
            Some(FailureKind::RrsigExpiresSoon)
        );
        let (_, why) = verdict(&soon, &s, now, WEEK).failure.expect("soon");
        assert!(why.contains("expires at 2106-02-08T06:26:36Z"), "{why}");
        // And after the wrap, a signature made before it has expired.
        let later = (1_i64 << 32) + 40 * DAY;
        assert_eq!(
            kind(&verdict(&msg, &s, later, WEEK)),
            Some(FailureKind::RrsigExpired)
        );
    }

    #[test]
    fn an_unsigned_answer_is_missing_its_rrsig() {
        let s = Signer::new("example.test.");
        let j = verdict(&answer(www()), &s, NOW, WEEK);
        assert_eq!(kind(&j), Some(FailureKind::RrsigMissing));
        assert_eq!(j.rrsig, None);
        let (_, why) = j.failure.expect("missing");
        assert!(
            why.starts_with("no RRSIG over `www.example.test A`"),
            "{why}"
        );
        // A signature over another type does not count.
        let mut other = www();
        let soa = Record::from_rdata(
            name("www.example.test."),
            300,
            RData::SOA(SOA::new(name("a."), name("b."), 1, 2, 3, 4, 5)),
        );
        other.push(s.sign(&[soa], field(NOW - DAY), field(NOW + 30 * DAY)));
        assert_eq!(
            kind(&verdict(&answer(other), &s, NOW, WEEK)),
            Some(FailureKind::RrsigMissing)
        );
    }

    #[test]
    fn a_tampered_record_or_signature_is_invalid() {
        let s = Signer::new("example.test.");
        // The records changed after signing.
        let mut msg = signed_www(&s, NOW - DAY, NOW + 30 * DAY);
        msg.answers[0].data = RData::A(A(Ipv4Addr::new(198, 51, 100, 1)));
        let j = verdict(&msg, &s, NOW, WEEK);
        assert_eq!(kind(&j), Some(FailureKind::DnssecInvalid));
        assert!(!j.rrsig.expect("facts").verified);
        let (_, why) = j.failure.expect("invalid");
        assert!(why.contains("the signature does not verify"), "{why}");
        // Signed by a key the zone does not publish.
        let other = Signer::new("example.test.");
        let msg = signed_www(&other, NOW - DAY, NOW + 30 * DAY);
        let (k, why) = verdict(&msg, &s, NOW, WEEK).failure.expect("invalid");
        assert_eq!(k, FailureKind::DnssecInvalid);
        assert!(
            why.contains(&format!(
                "no DNSKEY of `example.test` has key tag {}",
                other.key_tag()
            )),
            "{why}"
        );
        // No DNSKEY set at all.
        let (k, why) = judge(&msg, None, NOW, WEEK).failure.expect("invalid");
        assert_eq!(k, FailureKind::DnssecInvalid);
        assert!(why.contains("serves no DNSKEY for `example.test`"), "{why}");
    }

    #[test]
    fn an_invalid_signature_outranks_its_expiry() {
        let s = Signer::new("example.test.");
        let mut msg = signed_www(&s, NOW - 9 * DAY, NOW - DAY);
        msg.answers[1].data = RData::A(A(Ipv4Addr::new(198, 51, 100, 1)));
        assert_eq!(
            kind(&verdict(&msg, &s, NOW, WEEK)),
            Some(FailureKind::DnssecInvalid)
        );
    }

    #[test]
    fn during_a_rollover_the_longest_signature_counts() {
        let s = Signer::new("example.test.");
        let rrset = www();
        let mut records = rrset.clone();
        records.push(s.sign(&rrset, field(NOW - 30 * DAY), field(NOW - DAY)));
        records.push(s.sign(&rrset, field(NOW - DAY), field(NOW + DAY)));
        records.push(s.sign(&rrset, field(NOW - DAY), field(NOW + 20 * DAY)));
        let j = verdict(&answer(records), &s, NOW, WEEK);
        assert_eq!(j.failure, None);
        assert_eq!(j.rrsig.expect("facts").expiration, "2026-01-21T00:00:00Z");
        // A forged signature that would last longer does not count.
        let mut records = rrset.clone();
        records.push(s.sign(&rrset, field(NOW - DAY), field(NOW + DAY)));
        let mut forged = s.sign(&rrset, field(NOW - DAY), field(NOW + 90 * DAY));
        if let RData::DNSSEC(DNSSECRData::RRSIG(sig)) = &forged.data {
            let mut bytes = sig.sig().to_vec();
            bytes[0] ^= 0xff;
            forged.data = RData::DNSSEC(DNSSECRData::RRSIG(RRSIG::from_sig(
                sig.input().clone(),
                bytes,
            )));
        }
        records.push(forged);
        assert_eq!(
            kind(&verdict(&answer(records), &s, NOW, WEEK)),
            Some(FailureKind::RrsigExpiresSoon)
        );
    }

    #[test]
    fn a_negative_answer_is_judged_by_its_soa() {
        let s = Signer::new("example.test.");
        let soa = Record::from_rdata(
            name("example.test."),
            300,
            RData::SOA(SOA::new(
                name("ns1.example.test."),
                name("hostmaster.example.test."),
                1,
                3600,
                600,
                86_400,
                300,
            )),
        );
        let mut m = Message::new(1, MessageType::Response, OpCode::Query);
        m.add_authority(soa.clone());
        assert_eq!(
            kind(&verdict(&m, &s, NOW, WEEK)),
            Some(FailureKind::RrsigMissing)
        );
        m.add_authority(s.sign(&[soa], field(NOW - DAY), field(NOW + DAY)));
        let j = verdict(&m, &s, NOW, WEEK);
        assert_eq!(kind(&j), Some(FailureKind::RrsigExpiresSoon));
        assert_eq!(j.rrsig.expect("facts").covers, "SOA");
    }

    #[test]
    fn the_signer_is_found_for_the_dnskey_query() {
        let s = Signer::new("example.test.");
        let msg = signed_www(&s, NOW - DAY, NOW + DAY);
        assert_eq!(signer(&msg), Some(name("example.test.")));
        assert_eq!(signer(&answer(www())), None);
    }
}
