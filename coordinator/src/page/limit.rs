//! Sign-in attempts per client address: at most [`TRIES`] a [`WINDOW`], then `429` with
//! `Retry-After` until the oldest attempt leaves the window. Guessing a 32-byte token is
//! hopeless anyway; this keeps a script from turning `/login` into a CPU and log burner.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Attempts allowed per address within [`WINDOW`].
pub(crate) const TRIES: usize = 10;
/// The sliding window.
pub(crate) const WINDOW: Duration = Duration::from_secs(60);
/// Addresses remembered at most: past it, addresses not seen yet are refused until the
/// window lets some go (the memory stays bounded, whoever knocks).
const MAX_ADDRESSES: usize = 100_000;

/// The attempts of each address within the window.
#[derive(Debug, Default)]
pub(crate) struct LoginLimiter {
    tries: Mutex<HashMap<IpAddr, VecDeque<Instant>>>,
}

impl LoginLimiter {
    /// Counts an attempt from `ip` at `now`; `Err(seconds)` to wait when it is one too many.
    pub(crate) fn attempt(&self, ip: IpAddr, now: Instant) -> Result<(), u64> {
        let mut tries = self.tries.lock().unwrap_or_else(|p| p.into_inner());
        let fresh = |t: &Instant| now.saturating_duration_since(*t) < WINDOW;
        if tries.len() >= MAX_ADDRESSES && !tries.contains_key(&ip) {
            tries.retain(|_, q| q.back().is_some_and(fresh));
            if tries.len() >= MAX_ADDRESSES {
                return Err(WINDOW.as_secs());
            }
        }
        let q = tries.entry(ip).or_default();
        while q.front().is_some_and(|t| !fresh(t)) {
            q.pop_front();
        }
        if q.len() >= TRIES {
            let oldest = q.front().copied().unwrap_or(now);
            let wait = WINDOW.saturating_sub(now.saturating_duration_since(oldest));
            return Err(wait.as_secs().max(1));
        }
        q.push_back(now);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ten_tries_a_minute_per_address() {
        let l = LoginLimiter::default();
        let (a, b): (IpAddr, IpAddr) = (
            "192.0.2.1".parse().expect("ip"),
            "192.0.2.2".parse().expect("ip"),
        );
        let t0 = Instant::now();
        for i in 0..TRIES {
            assert!(
                l.attempt(a, t0 + Duration::from_secs(i as u64)).is_ok(),
                "try {i}"
            );
        }
        let wait = l
            .attempt(a, t0 + Duration::from_secs(10))
            .expect_err("the eleventh within a minute");
        assert_eq!(wait, 50, "until the first try leaves the window");
        assert!(
            l.attempt(b, t0 + Duration::from_secs(10)).is_ok(),
            "another address"
        );
        assert!(
            l.attempt(a, t0 + Duration::from_secs(61)).is_ok(),
            "the window moved on"
        );
    }
}
