//! A check file, through the loader (`parse_str`): TOML, then validation into the checks the
//! probe runs.
//!
//! Invariants: no panic; a file that loads loads the same again from its own re-encoding
//! (the resolved checks, as the coordinator serves them to probes, round-trip through JSON).
#![no_main]

use libfuzzer_sys::fuzz_target;
use vantage_checks::config::parse_str;
use vantage_checks::model::Check;

fuzz_target!(|text: &str| {
    let Ok(set) = parse_str(text) else {
        return;
    };
    for check in &set.checks {
        // The coordinator serves each check as JSON and the probe decodes it into a `Check`.
        let json = serde_json::to_string(check).expect("a check encodes");
        let back: Check = serde_json::from_str(&json)
            .unwrap_or_else(|e| panic!("a loaded check does not decode again: {e}\n{json}"));
        let again = serde_json::to_string(&back).expect("a check encodes");
        assert_eq!(json, again, "a check changed on its way to the probe");
    }
});
