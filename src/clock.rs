//! Wall-clock time as UTC milliseconds since the Unix epoch, the one time representation
//! of the store, plus RFC 3339 formatting for humans and event payloads.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(ms)
        .unwrap_or(0)
}

/// `d` in whole milliseconds, the store's unit; a span too long for an `i64` saturates.
pub fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// The time from `now_ms` until `at_ms` (zero when `at_ms` has passed).
pub fn until(at_ms: i64, now_ms: i64) -> Duration {
    Duration::from_millis(u64::try_from(at_ms.saturating_sub(now_ms)).unwrap_or(0))
}

/// Formats epoch milliseconds as RFC 3339 UTC, e.g. `2024-07-06T22:48:52.123Z`.
///
/// ```
/// assert_eq!(payhook::clock::rfc3339(0), "1970-01-01T00:00:00.000Z");
/// assert_eq!(payhook::clock::rfc3339(1_720_306_132_123), "2024-07-06T22:48:52.123Z");
/// ```
pub fn rfc3339(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let millis = ms.rem_euclid(1000);
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{millis:03}Z",
        sod / 3600,
        (sod % 3600) / 60,
        sod % 60
    )
}

/// Parses RFC 3339 UTC time (`2024-07-06T22:48:52Z`, fractional seconds allowed, `Z` or
/// `+00:00` only) or a bare date (`2024-07-06`, midnight UTC) into epoch milliseconds.
///
/// ```
/// use payhook::clock::{parse_rfc3339, rfc3339};
/// assert_eq!(parse_rfc3339("2024-07-06T22:48:52.123Z"), Some(1_720_306_132_123));
/// assert_eq!(parse_rfc3339("1970-01-02"), Some(86_400_000));
/// assert_eq!(parse_rfc3339(&rfc3339(951_782_400_000)), Some(951_782_400_000));
/// assert_eq!(parse_rfc3339("2024-02-30T00:00:00Z"), None);
/// assert_eq!(parse_rfc3339("yesterday"), None);
/// ```
pub fn parse_rfc3339(text: &str) -> Option<i64> {
    let t = text.trim();
    let (date, time) = match t.split_once(['T', 't', ' ']) {
        Some((d, rest)) => (d, Some(rest)),
        None => (t, None),
    };
    let mut d = date.split('-');
    let (y, m, day) = (
        d.next()?.parse::<i64>().ok()?,
        d.next()?.parse::<u32>().ok()?,
        d.next()?.parse::<u32>().ok()?,
    );
    if d.next().is_some() || !(1..=12).contains(&m) || day == 0 {
        return None;
    }
    let days = days_from_civil(y, m, day);
    // Reject dates that do not exist (Feb 30 rolls over otherwise).
    if civil_from_days(days) != (y, m, day) {
        return None;
    }
    let mut ms = days * 86_400_000;
    if let Some(time) = time {
        let time = time
            .strip_suffix(['Z', 'z'])
            .or_else(|| time.strip_suffix("+00:00"))?;
        let (hms, frac) = time.split_once('.').unwrap_or((time, ""));
        let mut p = hms.split(':').map(|x| x.parse::<i64>().ok());
        let (h, mi, s) = (p.next()??, p.next()??, p.next()??);
        if p.next().is_some() || h > 23 || mi > 59 || s > 60 {
            return None;
        }
        if !frac.chars().all(|c| c.is_ascii_digit()) {
            return None;
        }
        let millis = format!("{frac:0<3}")[..3].parse::<i64>().ok()?;
        ms += ((h * 60 + mi) * 60 + s) * 1000 + millis;
    }
    Some(ms)
}

/// Howard Hinnant's days-from-civil algorithm, the inverse of [`civil_from_days`].
pub(crate) fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let (m, d) = (i64::from(month), i64::from(day));
    let y = if m <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Howard Hinnant's days-to-civil algorithm (proleptic Gregorian calendar).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_leap_days_and_year_ends() {
        assert_eq!(rfc3339(951_782_400_000), "2000-02-29T00:00:00.000Z");
        assert_eq!(rfc3339(1_704_067_199_999), "2023-12-31T23:59:59.999Z");
    }
}
