//! Retry schedules, pure: no I/O, no clock, no randomness of its own. `now` and the
//! jitter draw are passed in, so every edge is unit-tested. The schedule itself lives in
//! the database (`next_poll_at_ms`, `next_attempt_at_ms`); this module only computes it.
//!
//! Used by the reconciler (status polls) and the forwarder (deliveries).

use std::time::Duration;

/// The longest `Retry-After` honoured. A peer asking for more (or sending nonsense like a
/// date next year) must not park work indefinitely; past the cap the regular schedule
/// resumes.
pub const RETRY_AFTER_MAX: Duration = Duration::from_secs(3600);

/// Exponential backoff with a cap, jitter, and an overall horizon.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryPolicy {
    /// Delay after the first failure.
    pub first: Duration,
    /// Largest delay between two attempts.
    pub max_interval: Duration,
    /// Growth per attempt (2 doubles).
    pub factor: u32,
    /// Fraction of the delay that is randomised, 0.0..=1.0: the delay is drawn from
    /// `[base * (1 - jitter), base]`, so retries from many clients spread out.
    pub jitter: f64,
    /// After this long since the first attempt, give up (dead letter / review).
    pub horizon: Duration,
}

impl RetryPolicy {
    /// The delay after `failures` consecutive failures (1 for the first), before jitter:
    /// `first * factor^(failures-1)`, capped at `max_interval`.
    ///
    /// ```
    /// use payhook::retry::RetryPolicy;
    /// use std::time::Duration;
    /// let p = RetryPolicy { first: Duration::from_secs(5), max_interval: Duration::from_secs(60),
    ///                       factor: 2, jitter: 0.0, horizon: Duration::from_secs(3600) };
    /// assert_eq!(p.base_delay(1), Duration::from_secs(5));
    /// assert_eq!(p.base_delay(3), Duration::from_secs(20));
    /// assert_eq!(p.base_delay(30), Duration::from_secs(60));
    /// ```
    pub fn base_delay(&self, failures: u32) -> Duration {
        let exp = failures.saturating_sub(1).min(32);
        let mult = u64::from(self.factor.max(1)).saturating_pow(exp);
        let ms = u64::try_from(self.first.as_millis())
            .unwrap_or(u64::MAX)
            .saturating_mul(mult);
        Duration::from_millis(ms).min(self.max_interval)
    }

    /// The delay after `failures` failures, jittered by `draw` (uniform in 0.0..1.0), and
    /// at least what the peer asked for with `Retry-After` (capped at [`RETRY_AFTER_MAX`]).
    pub fn next_delay(&self, failures: u32, retry_after: Option<Duration>, draw: f64) -> Duration {
        let base = self.base_delay(failures);
        let jitter = self.jitter.clamp(0.0, 1.0) * draw.clamp(0.0, 1.0);
        let jittered = base.mul_f64(1.0 - jitter);
        match retry_after {
            Some(asked) => jittered.max(asked.min(RETRY_AFTER_MAX)),
            None => jittered,
        }
    }

    /// True when an attempt scheduled `delay` from `now_ms` would fall past the horizon
    /// counted from `first_attempt_at_ms`: stop retrying.
    pub fn exhausted(&self, first_attempt_at_ms: i64, now_ms: i64, delay: Duration) -> bool {
        let next = now_ms.saturating_add(crate::clock::ms(delay));
        let horizon = crate::clock::ms(self.horizon);
        next.saturating_sub(first_attempt_at_ms) > horizon
    }
}

/// Parses a `Retry-After` value: delta-seconds (`120`) or an IMF-fixdate
/// (`Wed, 21 Oct 2015 07:28:00 GMT`), relative to `now_ms`. A date in the past is zero.
///
/// ```
/// use payhook::retry::parse_retry_after;
/// use std::time::Duration;
/// assert_eq!(parse_retry_after("120", 0), Some(Duration::from_secs(120)));
/// assert_eq!(parse_retry_after("Thu, 01 Jan 1970 00:01:40 GMT", 40_000), Some(Duration::from_secs(60)));
/// assert_eq!(parse_retry_after("soon", 0), None);
/// ```
pub fn parse_retry_after(value: &str, now_ms: i64) -> Option<Duration> {
    let v = value.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at_ms = parse_imf_fixdate(v)?;
    Some(Duration::from_millis(
        u64::try_from(at_ms.saturating_sub(now_ms)).unwrap_or(0),
    ))
}

/// How long an answer asks to be left alone: its `Retry-After`, honoured on 429 and 503
/// only, the answers where HTTP gives it that meaning ("later"), as hook0's retry policy
/// does. The caller's policy caps it ([`RETRY_AFTER_MAX`]).
pub fn retry_after(reply: &crate::outbound::Reply, now_ms: i64) -> Option<Duration> {
    matches!(
        reply.status,
        http::StatusCode::TOO_MANY_REQUESTS | http::StatusCode::SERVICE_UNAVAILABLE
    )
    .then(|| reply.headers.get(http::header::RETRY_AFTER))
    .flatten()
    .and_then(|v| v.to_str().ok())
    .and_then(|v| parse_retry_after(v, now_ms))
}

/// `Sun, 06 Nov 1994 08:49:37 GMT` → epoch milliseconds.
fn parse_imf_fixdate(s: &str) -> Option<i64> {
    let rest = s.split_once(", ")?.1;
    let mut parts = rest.split_whitespace();
    let day: i64 = parts.next()?.parse().ok()?;
    let month = match parts.next()? {
        "Jan" => 1,
        "Feb" => 2,
        "Mar" => 3,
        "Apr" => 4,
        "May" => 5,
        "Jun" => 6,
        "Jul" => 7,
        "Aug" => 8,
        "Sep" => 9,
        "Oct" => 10,
        "Nov" => 11,
        "Dec" => 12,
        _ => return None,
    };
    let year: i64 = parts.next()?.parse().ok()?;
    let mut hms = parts.next()?.split(':').map(|x| x.parse::<i64>().ok());
    let (h, m, sec) = (hms.next()??, hms.next()??, hms.next()??);
    if parts.next()? != "GMT" || !(1..=31).contains(&day) || h > 23 || m > 59 || sec > 60 {
        return None;
    }
    let month = u32::try_from(month).ok()?;
    let day = u32::try_from(day).ok()?;
    let days = crate::clock::days_from_civil(year, month, day);
    Some(((days * 86_400) + h * 3600 + m * 60 + sec) * 1000)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> RetryPolicy {
        RetryPolicy {
            first: Duration::from_secs(30),
            max_interval: Duration::from_secs(3600),
            factor: 2,
            jitter: 0.2,
            horizon: Duration::from_secs(3 * 24 * 3600),
        }
    }

    #[test]
    fn grows_exponentially_up_to_the_cap_without_overflow() {
        let p = policy();
        assert_eq!(p.base_delay(1), Duration::from_secs(30));
        assert_eq!(p.base_delay(2), Duration::from_secs(60));
        assert_eq!(p.base_delay(8), Duration::from_secs(3600));
        assert_eq!(p.base_delay(u32::MAX), Duration::from_secs(3600));
        assert_eq!(p.base_delay(0), Duration::from_secs(30));
    }

    #[test]
    fn jitter_only_shortens_within_its_fraction() {
        let p = policy();
        assert_eq!(p.next_delay(2, None, 0.0), Duration::from_secs(60));
        assert_eq!(p.next_delay(2, None, 1.0), Duration::from_secs(48));
        assert_eq!(p.next_delay(2, None, 7.0), Duration::from_secs(48));
    }

    #[test]
    fn retry_after_is_honoured_up_to_the_cap() {
        let p = policy();
        let asked = Some(Duration::from_secs(600));
        assert_eq!(p.next_delay(1, asked, 0.5), Duration::from_secs(600));
        // Shorter than the schedule: the schedule wins.
        assert_eq!(
            p.next_delay(8, Some(Duration::from_secs(1)), 0.0),
            Duration::from_secs(3600)
        );
        assert_eq!(
            p.next_delay(1, Some(Duration::from_secs(999_999)), 0.0),
            RETRY_AFTER_MAX
        );
    }

    #[test]
    fn the_horizon_ends_the_schedule() {
        let p = policy();
        let day = 24 * 3600 * 1000;
        assert!(!p.exhausted(0, 2 * day, Duration::from_secs(3600)));
        assert!(p.exhausted(0, 3 * day, Duration::from_secs(1)));
    }

    #[test]
    fn http_dates_parse_and_nonsense_does_not() {
        assert_eq!(
            parse_imf_fixdate("Sun, 06 Nov 1994 08:49:37 GMT"),
            Some(784_111_777_000)
        );
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", 784_111_787_000),
            Some(Duration::ZERO)
        );
        for bad in [
            "",
            "-1",
            "1.5",
            "Sun, 32 Nov 1994 08:49:37 GMT",
            "Sun, 06 Foo 1994 08:49:37 GMT",
            "Sun, 06 Nov 1994 08:49:37 PST",
        ] {
            assert_eq!(parse_retry_after(bad, 0), None, "{bad:?}");
        }
    }
}
