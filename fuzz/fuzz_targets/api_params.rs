//! Query parameters and times of the read API: the query string as the router splits it,
//! the raw results' `since`/`until` (`parse_time`), the reports' `from`/`to`
//! (`parse_instant`) and the window they make, and `YYYY-MM` months.
//!
//! Invariants: no panic (an overflow is one); the two time parsers agree; a window that is
//! made lies between 1970 and 9999, ends after it starts and is at most `MAX_WINDOW` long;
//! an instant in that range prints as RFC 3339 and parses back to itself.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vantage_coordinator::alert::rfc3339;
use vantage_coordinator::fuzzing::{parse_time, query};
use vantage_coordinator::report::{DEFAULT_WINDOW, MAX_WINDOW, Window, parse_instant};

const MAX_MS: i64 = 253_402_300_799_999;
/// 2026-12-01T00:00:00Z.
const NOW_MS: i64 = 1_796_083_200_000;

fn check_window(w: Window) {
    assert!(
        0 <= w.from_ms && w.from_ms < w.to_ms && w.to_ms <= MAX_MS,
        "{w:?}"
    );
    assert!(
        w.to_ms - w.from_ms <= MAX_WINDOW.as_millis() as i64,
        "{w:?}"
    );
}

fuzz_target!(|q: &str| {
    let Ok(req) = http::Request::get(format!("/api/v1/reports/sla?{q}")).body(()) else {
        return;
    };
    let params = query(&req);
    for v in params.values() {
        let t = parse_time(v);
        assert_eq!(
            t,
            parse_instant(v),
            "the API's two time parsers disagree on {v:?}"
        );
        if let Some(ms) = t.filter(|ms| (0..=MAX_MS).contains(ms)) {
            let text = rfc3339(ms);
            assert_eq!(parse_instant(&text), Some(ms), "{ms} prints as {text:?}");
        }
        if let Ok(w) = Window::month(v) {
            check_window(w);
        }
    }
    // As `GET /api/v1/reports/sla` makes its window.
    let from = params.get("from").map(|v| parse_instant(v));
    let to = params.get("to").map(|v| parse_instant(v));
    if let (Some(None), _) | (_, Some(None)) = (from, to) {
        return;
    }
    let to = to.flatten().unwrap_or(NOW_MS);
    let window = match from.flatten() {
        Some(from) => Window::new(from, to),
        None => Window::before(to, DEFAULT_WINDOW),
    };
    if let Ok(w) = window {
        check_window(w);
    }
    if let Some(limit) = params.get("limit") {
        let _ = limit.parse::<u32>();
    }
});
