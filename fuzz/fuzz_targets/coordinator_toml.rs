//! `coordinator.toml`, through `CoordinatorConfig::parse` and the cross-setting rules
//! (`check`).
//!
//! Invariants: no panic; every duration it holds prints (as the errors and the docs print
//! them) in a form that parses back to the same duration.
#![no_main]

use std::path::Path;
use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use vantage_checks::duration;
use vantage_coordinator::config::CoordinatorConfig;

fuzz_target!(|text: &str| {
    // Secret files are read at parse time; an absolute path to a device or a kernel file
    // (`/dev/zero`) reads without end, which is the operator's choice, not input to fuzz.
    if text.contains("/dev") || text.contains("/proc") || text.contains("/sys") {
        return;
    }
    let Ok(config) = CoordinatorConfig::parse(text, Path::new("/nonexistent/coordinator.toml"))
    else {
        return;
    };
    let _ = config.check();
    let l = &config.limits;
    let durations: [(&str, Duration); 8] = [
        ("retention.raw", config.retention_raw),
        ("retention.rollups", config.retention_rollups),
        ("retention.rollups_hourly", config.retention_hourly),
        ("retention.rollups_daily", config.retention_daily),
        ("limits.clock_skew", l.clock_skew),
        ("limits.max_result_age", l.max_result_age),
        ("limits.request_timeout", l.request_timeout),
        ("limits.idle_timeout", l.idle_timeout),
    ];
    for (key, d) in durations {
        let text = duration::format(d);
        assert_eq!(
            duration::parse(&text),
            Ok(d),
            "{key}: {d:?} prints as {text:?}"
        );
    }
});
