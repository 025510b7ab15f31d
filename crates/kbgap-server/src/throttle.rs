//! Per-(route, application, tenant) token-bucket rate limiting with Defender's documented limits (§3, §8).
//!
//! Each key has a per-minute and a per-hour bucket; a call needs a token in both. State is
//! in memory: each replica of the server counts its own calls, so N replicas allow up to N
//! times the configured rate. The clock is injectable ([`Clock`]) so tests can move time.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A monotonic clock: time elapsed since an arbitrary origin.
pub trait Clock: Send + Sync + 'static {
    /// Elapsed time since the clock's origin.
    fn now(&self) -> Duration;
}

/// The real monotonic clock.
#[derive(Debug)]
pub struct SystemClock(Instant);

impl Default for SystemClock {
    fn default() -> Self {
        Self(Instant::now())
    }
}

impl Clock for SystemClock {
    fn now(&self) -> Duration {
        self.0.elapsed()
    }
}

/// A clock moved by hand (tests).
#[derive(Debug, Default)]
pub struct ManualClock(AtomicU64);

impl ManualClock {
    /// Moves the clock forward.
    pub fn advance(&self, by: Duration) {
        self.0.fetch_add(
            u64::try_from(by.as_millis()).unwrap_or(u64::MAX),
            Ordering::SeqCst,
        );
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Duration {
        Duration::from_millis(self.0.load(Ordering::SeqCst))
    }
}

/// Calls allowed per minute and per hour.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit {
    /// Calls per minute.
    pub per_minute: u32,
    /// Calls per hour.
    pub per_hour: u32,
}

impl Limit {
    /// Defender's default where undocumented: 100/min, 1,500/h.
    pub const DEFAULT: Limit = Limit {
        per_minute: 100,
        per_hour: 1500,
    };
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    last: Duration,
}

impl Bucket {
    fn refill(&mut self, now: Duration, capacity: f64, period: Duration) {
        let dt = now.saturating_sub(self.last).as_secs_f64();
        self.tokens = (self.tokens + dt * capacity / period.as_secs_f64()).min(capacity);
        self.last = now;
    }
    /// Seconds until one token is available.
    fn wait(&self, capacity: f64, period: Duration) -> f64 {
        if self.tokens >= 1.0 || capacity <= 0.0 {
            0.0
        } else {
            (1.0 - self.tokens) * period.as_secs_f64() / capacity
        }
    }
}

/// (route template, app id, tenant id).
type BucketKey = (&'static str, String, String);

/// The rate limiter shared by all requests.
pub struct Throttle {
    clock: Arc<dyn Clock>,
    /// When false, every call is allowed.
    pub enabled: bool,
    /// Multiplies every limit (tests shrink limits; operators may raise them).
    pub scale: f64,
    state: Mutex<HashMap<BucketKey, [Bucket; 2]>>,
}

impl std::fmt::Debug for Throttle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Throttle")
            .field("enabled", &self.enabled)
            .field("scale", &self.scale)
            .finish()
    }
}

impl Default for Throttle {
    fn default() -> Self {
        Self::new(Arc::new(SystemClock::default()))
    }
}

impl Throttle {
    /// An enabled throttle on the given clock.
    pub fn new(clock: Arc<dyn Clock>) -> Self {
        Self {
            clock,
            enabled: true,
            scale: 1.0,
            state: Mutex::new(HashMap::new()),
        }
    }
    /// A throttle that allows everything.
    pub fn disabled() -> Self {
        Self {
            enabled: false,
            ..Self::default()
        }
    }

    /// Takes one call for `(route, app, tenant)`; `Err(retry_after_secs)` when over the limit.
    pub fn check(
        &self,
        route: &'static str,
        limit: Limit,
        app: &str,
        tenant: &str,
    ) -> Result<(), u64> {
        if !self.enabled {
            return Ok(());
        }
        let now = self.clock.now();
        let caps = [
            (
                f64::from(limit.per_minute) * self.scale,
                Duration::from_secs(60),
            ),
            (
                f64::from(limit.per_hour) * self.scale,
                Duration::from_secs(3600),
            ),
        ];
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let buckets = state
            .entry((route, app.to_owned(), tenant.to_owned()))
            .or_insert_with(|| {
                caps.map(|(cap, _)| Bucket {
                    tokens: cap,
                    last: now,
                })
            });
        for (b, (cap, period)) in buckets.iter_mut().zip(caps) {
            b.refill(now, cap, period);
        }
        let wait = buckets
            .iter()
            .zip(caps)
            .map(|(b, (cap, period))| b.wait(cap, period))
            .fold(0.0, f64::max);
        if wait > 0.0 {
            return Err((wait.ceil() as u64).max(1));
        }
        for b in buckets.iter_mut() {
            b.tokens -= 1.0;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_empties_then_refills() {
        let clock = Arc::new(ManualClock::default());
        let t = Throttle::new(clock.clone());
        let lim = Limit {
            per_minute: 2,
            per_hour: 100,
        };
        assert!(t.check("r", lim, "a", "t").is_ok());
        assert!(t.check("r", lim, "a", "t").is_ok());
        let wait = t.check("r", lim, "a", "t").unwrap_err();
        assert_eq!(wait, 30);
        // Other app, other bucket.
        assert!(t.check("r", lim, "b", "t").is_ok());
        clock.advance(Duration::from_secs(30));
        assert!(t.check("r", lim, "a", "t").is_ok());
        assert!(t.check("r", lim, "a", "t").is_err());
    }

    #[test]
    fn hourly_limit_binds() {
        let clock = Arc::new(ManualClock::default());
        let t = Throttle::new(clock.clone());
        let lim = Limit {
            per_minute: 100,
            per_hour: 3,
        };
        for _ in 0..3 {
            assert!(t.check("r", lim, "a", "t").is_ok());
        }
        assert_eq!(t.check("r", lim, "a", "t").unwrap_err(), 1200);
    }
}
