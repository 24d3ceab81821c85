//! RFC 3339 timestamps (`YYYY-MM-DDTHH:MM:SS[.frac](Z|+HH:MM|-HH:MM)`), parsed into an instant for ordering.

/// An instant: seconds since 1970-01-01T00:00:00Z and nanoseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Timestamp {
    pub unix_seconds: i64,
    pub nanos: u32,
}

impl Timestamp {
    /// Parses an RFC 3339 date-time (`T` or `t` separator, `Z`/`z` or a numeric offset; leap second 60 refused).
    pub fn parse(text: &str) -> Result<Timestamp, String> {
        let bad = || format!("{text:?} is not an RFC 3339 date-time (e.g. 2026-11-28T10:00:00Z)");
        let b = text.as_bytes();
        if b.len() < 20 {
            return Err(bad());
        }
        let digits = |range: std::ops::Range<usize>| -> Result<i64, String> {
            let s = &b[range];
            if s.iter().all(u8::is_ascii_digit) {
                Ok(s.iter().fold(0i64, |acc, d| acc * 10 + i64::from(d - b'0')))
            } else {
                Err(bad())
            }
        };
        if b[4] != b'-'
            || b[7] != b'-'
            || !matches!(b[10], b'T' | b't')
            || b[13] != b':'
            || b[16] != b':'
        {
            return Err(bad());
        }
        let (year, month, day) = (digits(0..4)?, digits(5..7)?, digits(8..10)?);
        let (hour, minute, second) = (digits(11..13)?, digits(14..16)?, digits(17..19)?);
        if !(1..=12).contains(&month) || day < 1 || day > days_in_month(year, month) {
            return Err(bad());
        }
        if hour > 23 || minute > 59 || second > 59 {
            return Err(bad());
        }
        let mut i = 19;
        let mut nanos = 0u32;
        if b[i] == b'.' {
            let start = i + 1;
            i = start;
            while i < b.len() && b[i].is_ascii_digit() {
                i += 1;
            }
            let frac = &b[start..i];
            if frac.is_empty() || frac.len() > 9 {
                return Err(bad());
            }
            let mut n = 0u32;
            for k in 0..9 {
                n = n * 10 + frac.get(k).map_or(0, |d| u32::from(d - b'0'));
            }
            nanos = n;
        }
        let offset_seconds = match &b[i..] {
            [b'Z' | b'z'] => 0,
            [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] => {
                let part = |x: &u8, y: &u8| -> Result<i64, String> {
                    if x.is_ascii_digit() && y.is_ascii_digit() {
                        Ok(i64::from(x - b'0') * 10 + i64::from(y - b'0'))
                    } else {
                        Err(bad())
                    }
                };
                let (h, m) = (part(h1, h2)?, part(m1, m2)?);
                if h > 23 || m > 59 {
                    return Err(bad());
                }
                let s = h * 3600 + m * 60;
                if *sign == b'+' {
                    s
                } else {
                    -s
                }
            }
            _ => return Err(bad()),
        };
        let days = days_from_civil(year, month, day);
        let unix_seconds = days * 86_400 + hour * 3600 + minute * 60 + second - offset_seconds;
        Ok(Timestamp {
            unix_seconds,
            nanos,
        })
    }

    /// The instant in UTC as `YYYY-MM-DDTHH:MM:SSZ` (whole seconds).
    pub fn to_rfc3339(&self) -> String {
        let days = self.unix_seconds.div_euclid(86_400);
        let secs = self.unix_seconds.rem_euclid(86_400);
        let (y, m, d) = civil_from_days(days);
        format!(
            "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
            secs / 3600,
            secs % 3600 / 60,
            secs % 60
        )
    }

    /// The current instant.
    pub fn now() -> Timestamp {
        let d = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        Timestamp {
            unix_seconds: d.as_secs() as i64,
            nanos: d.subsec_nanos(),
        }
    }
}

fn is_leap(y: i64) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if is_leap(y) => 29,
        _ => 28,
    }
}

// Howard Hinnant's days_from_civil / civil_from_days.
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_orders() {
        let a = Timestamp::parse("2026-11-28T10:00:00Z").unwrap();
        assert_eq!(a.unix_seconds, 1_795_860_000);
        let b = Timestamp::parse("2026-11-28T11:00:00.5+01:00").unwrap();
        assert_eq!(b.unix_seconds, a.unix_seconds);
        assert_eq!(b.nanos, 500_000_000);
        assert!(b > a);
        assert_eq!(a.to_rfc3339(), "2026-11-28T10:00:00Z");
        assert_eq!(
            Timestamp::parse("1970-01-01T00:00:00Z")
                .unwrap()
                .unix_seconds,
            0
        );
    }

    #[test]
    fn refuses_malformed() {
        for bad in [
            "2026-11-28",
            "2026-11-28 10:00:00Z",
            "2026-13-01T00:00:00Z",
            "2026-02-29T00:00:00Z",
            "2026-11-28T24:00:00Z",
            "2026-11-28T10:00:00",
            "2026-11-28T10:00:00.Z",
            "2026-11-28T10:00:00+0100",
        ] {
            assert!(Timestamp::parse(bad).is_err(), "{bad} accepted");
        }
        assert!(Timestamp::parse("2024-02-29T00:00:00Z").is_ok());
    }
}
