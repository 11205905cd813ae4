//! HTTP body decoding (`Content-Encoding`: gzip, deflate, br, in layers) under its cap.
//!
//! Invariants: a decoded body never exceeds its cap; a body with no coding comes back as is;
//! a body refused as too large really is larger than the cap when decoded without one.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vantage_checks::fuzzing::{DecodeError, decode_body};

/// `layers:u8 coding:u8{layers} cap:u16le body…`: each coding indexes `CODINGS`; the layers
/// are listed in the order applied, so `[0, 3]` is `gzip, br` (brotli undone first).
struct Input<'a> {
    codings: Vec<u8>,
    cap: u16,
    body: &'a [u8],
}

impl<'a> Input<'a> {
    fn parse(data: &'a [u8]) -> Option<Self> {
        let (&layers, rest) = data.split_first()?;
        let layers = usize::from(layers % 5);
        let codings = rest.get(..layers)?.to_vec();
        let rest = &rest[layers..];
        let cap = u16::from_le_bytes([*rest.first()?, *rest.get(1)?]);
        Some(Self {
            codings,
            cap,
            body: &rest[2..],
        })
    }
}

const CODINGS: [&str; 7] = [
    "gzip", "x-gzip", "deflate", "br", "identity", " GZIP ", "zstd",
];

fuzz_target!(|data: &[u8]| {
    let Some(input) = Input::parse(data) else {
        return;
    };
    let header = input
        .codings
        .iter()
        .take(4)
        .map(|&c| CODINGS[usize::from(c) % CODINGS.len()])
        .collect::<Vec<_>>()
        .join(",");
    let header = (!input.codings.is_empty()).then_some(header.as_str());
    let cap = u64::from(input.cap);
    match decode_body(input.body, header, cap) {
        Ok(body) => {
            if header.is_none_or(|h| h.split(',').all(|c| c.trim() == "identity")) {
                assert_eq!(&*body, input.body, "an identity body is not changed");
            } else {
                assert!(
                    body.len() as u64 <= cap,
                    "{} bytes decoded past a cap of {cap}",
                    body.len()
                );
            }
        }
        Err(DecodeError::TooLarge { .. }) => {
            // With one layer, the same body under a larger cap decodes to more than `cap`
            // bytes (or fails later in its stream). With several, an inner layer may be the
            // one too large.
            let layers = header.map_or(0, |h| {
                h.split(',').filter(|c| c.trim() != "identity").count()
            });
            if layers != 1 {
                return;
            }
            if let Ok(full) = decode_body(input.body, header, 1 << 20) {
                assert!(
                    full.len() as u64 > cap,
                    "refused as too large, yet {} <= {cap}",
                    full.len()
                );
            }
        }
        Err(DecodeError::Corrupt(_) | DecodeError::Unsupported(_)) => {}
    }
});
