//! When each check runs: on a grid of its interval anchored to the Unix epoch, shifted by a
//! phase offset that is stable per (probe, check). Probes of a region thus spread evenly over
//! the interval instead of firing together, and nothing drifts: each run time is computed from
//! the grid, never from the previous run.

use std::time::Duration;

/// A stable 64-bit FNV-1a hash; stable across builds and platforms, unlike `DefaultHasher`.
fn fnv1a(parts: &[&str]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for b in part.bytes().chain(std::iter::once(0xff)) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    h
}

/// The phase offset of `check` on `probe` within `interval`.
pub fn phase_offset(probe_id: &str, check_id: &str, interval: Duration) -> Duration {
    let period = interval.as_millis().max(1) as u64;
    Duration::from_millis(fnv1a(&[probe_id, check_id]) % period)
}

/// The first run time strictly after `now_ms` (Unix milliseconds) on the grid
/// `offset + k·interval`.
pub fn next_run_ms(now_ms: i64, interval: Duration, offset: Duration) -> i64 {
    let period = interval.as_millis().max(1) as i64;
    let offset = offset.as_millis() as i64 % period;
    let since = now_ms - offset;
    let k = since.div_euclid(period) + 1;
    offset + k * period
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_are_stable_and_within_the_interval() {
        let i = Duration::from_secs(10);
        let a = phase_offset("fra-1", "www-a", i);
        assert_eq!(a, phase_offset("fra-1", "www-a", i));
        assert!(a < i);
        assert_ne!(
            a,
            phase_offset("fra-2", "www-a", i),
            "two probes should rarely share a phase"
        );
        // Golden value: the offset must not change between releases, or probes would bunch
        // up for one interval after an upgrade.
        assert_eq!(fnv1a(&["fra-1", "www-a"]), 14_605_757_863_779_857_421);
        assert_eq!(a, Duration::from_millis(7_421));
    }

    #[test]
    fn offsets_spread_probes_over_the_interval() {
        let i = Duration::from_secs(10);
        let mut buckets = [0u32; 10];
        for p in 0..1000 {
            let o = phase_offset(&format!("probe-{p}"), "check", i);
            buckets[(o.as_millis() / 1000) as usize] += 1;
        }
        // 100 expected per one-second bucket; a hash this poor would fail the check at ±50%.
        assert!(
            buckets.iter().all(|&b| (50..=150).contains(&b)),
            "{buckets:?}"
        );
    }

    #[test]
    fn next_run_is_on_the_grid_and_strictly_later() {
        let i = Duration::from_secs(10);
        let o = Duration::from_millis(2_500);
        assert_eq!(next_run_ms(0, i, o), 2_500);
        assert_eq!(next_run_ms(2_499, i, o), 2_500);
        assert_eq!(next_run_ms(2_500, i, o), 12_500);
        assert_eq!(next_run_ms(1_700_000_003_000, i, o), 1_700_000_012_500);
        // No drift: a run that starts late still schedules the next on the grid.
        let mut t = 0;
        for _ in 0..10_000 {
            t = next_run_ms(t + 37, i, o);
        }
        assert_eq!((t - 2_500) % 10_000, 0);
    }
}
