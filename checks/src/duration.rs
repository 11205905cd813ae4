//! Duration strings as written in check files: `"500ms"`, `"15s"`, `"2m"`, `"21d"`.

use std::time::Duration;

/// Parses a duration string; a bare number (no unit) is refused so `"500"` is never guessed.
pub fn parse(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    if s.is_empty() {
        return Err("is empty".to_owned());
    }
    if s.chars().all(|c| c.is_ascii_digit() || c == '.') {
        return Err("needs a unit (ms, s, m, h or d)".to_owned());
    }
    humantime::parse_duration(s)
        .map_err(|_| "is not a number followed by a unit (ms, s, m, h or d)".to_owned())
}

/// Formats a duration the way a person would write it in a check file.
pub fn format(d: Duration) -> String {
    humantime::format_duration(d).to_string()
}
