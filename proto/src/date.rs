//! HTTP dates (RFC 9110 §5.6.7): IMF-fixdate rendered for the Date field of responses the
//! gateway makes itself (at most once per second per shard), and all three formats parsed
//! (`Date`, `Expires`, `Last-Modified`, `If-Modified-Since` for the cache).

use std::time::{SystemTime, UNIX_EPOCH};

/// Length of an IMF-fixdate: `Sun, 06 Nov 1994 08:49:37 GMT`.
pub const IMF_FIXDATE_LEN: usize = 29;

/// Renders `secs` since the Unix epoch as an IMF-fixdate.
pub fn imf_fixdate(secs: u64) -> [u8; IMF_FIXDATE_LEN] {
    const DAYS: [&[u8; 3]; 7] = [b"Thu", b"Fri", b"Sat", b"Sun", b"Mon", b"Tue", b"Wed"];
    const MONTHS: [&[u8; 3]; 12] = [
        b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov",
        b"Dec",
    ];
    let days = secs / 86_400;
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    let mut out = *b"Thu, 01 Jan 1970 00:00:00 GMT";
    let put2 = |o: &mut [u8; IMF_FIXDATE_LEN], at: usize, v: u64| {
        if let Some(s) = o.get_mut(at..at + 2) {
            s.copy_from_slice(&[b'0' + (v / 10 % 10) as u8, b'0' + (v % 10) as u8]);
        }
    };
    if let (Some(name), Some(slot)) = (DAYS.get((days % 7) as usize), out.get_mut(0..3)) {
        slot.copy_from_slice(*name);
    }
    put2(&mut out, 5, d);
    if let (Some(name), Some(slot)) = (MONTHS.get(m.saturating_sub(1) as usize), out.get_mut(8..11))
    {
        slot.copy_from_slice(*name);
    }
    put2(&mut out, 12, y / 100);
    put2(&mut out, 14, y % 100);
    put2(&mut out, 17, rem / 3600);
    put2(&mut out, 20, rem / 60 % 60);
    put2(&mut out, 23, rem % 60);
    out
}

/// (year, month 1–12, day 1–31) of a day count since 1970-01-01 (Howard Hinnant's algorithm).
pub fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + u64::from(m <= 2);
    (y, m, d)
}

/// Days since 1970-01-01 of a (year ≥ 1970, month 1–12, day) date; `None` for a day the
/// month does not have.
fn days_from_civil(y: u64, m: u64, d: u64) -> Option<u64> {
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) || y < 1970 {
        return None;
    }
    let y2 = if m <= 2 { y - 1 } else { y };
    let era = y2 / 400;
    let yoe = y2 - era * 400;
    let mp = if m > 2 { m - 3 } else { m + 9 };
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = (era * 146_097 + doe).checked_sub(719_468)?;
    // 31 April and the like come back as another date
    (civil_from_days(days) == (y, m, d)).then_some(days)
}

const MONTH_NAMES: [&[u8; 3]; 12] = [
    b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov", b"Dec",
];

fn month(b: &[u8]) -> Option<u64> {
    MONTH_NAMES
        .iter()
        .position(|m| m.as_slice() == b)
        .map(|i| i as u64 + 1)
}

/// Exactly `n` digits.
fn digits(b: &[u8]) -> Option<u64> {
    if b.is_empty() || !b.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(b.iter().fold(0u64, |n, d| n * 10 + u64::from(d - b'0')))
}

/// `HH:MM:SS` as seconds into the day (a leap second counts as :59).
fn clock(b: &[u8]) -> Option<u64> {
    let [h1, h2, b':', m1, m2, b':', s1, s2] = *b else {
        return None;
    };
    let (h, m, s) = (digits(&[h1, h2])?, digits(&[m1, m2])?, digits(&[s1, s2])?);
    (h < 24 && m < 60 && s <= 60).then_some(h * 3600 + m * 60 + s.min(59))
}

fn seconds(y: u64, m: u64, d: u64, t: u64) -> Option<u64> {
    Some(days_from_civil(y, m, d)? * 86_400 + t)
}

/// Seconds since the Unix epoch of an HTTP date in any of its three formats (RFC 9110
/// §5.6.7): `Sun, 06 Nov 1994 08:49:37 GMT`, `Sunday, 06-Nov-94 08:49:37 GMT` (a two-digit
/// year more than 50 years after `now` is taken from the century before) and `Sun Nov  6
/// 08:49:37 1994`. `None` for anything else, a date before 1970 included; the weekday name is
/// not checked against the date.
pub fn parse_http_date(v: &[u8], now: u64) -> Option<u64> {
    let v = v.trim_ascii();
    if let Some(comma) = v.iter().position(|&c| c == b',') {
        let rest = v.get(comma + 1..)?;
        let day_name = v.get(..comma)?;
        if !day_name.iter().all(u8::is_ascii_alphabetic) {
            return None;
        }
        // IMF-fixdate: " 06 Nov 1994 08:49:37 GMT"
        if comma == 3 && rest.len() == 25 {
            let (d, mo, y) = (rest.get(1..3)?, rest.get(4..7)?, rest.get(8..12)?);
            if rest.get(..1)? != b" " || rest.get(3..4)? != b" " || rest.get(7..8)? != b" " {
                return None;
            }
            if rest.get(12..13)? != b" " || rest.get(21..)? != b" GMT" {
                return None;
            }
            return seconds(
                digits(y)?,
                month(mo)?,
                digits(d)?,
                clock(rest.get(13..21)?)?,
            );
        }
        // RFC 850: " 06-Nov-94 08:49:37 GMT"
        if rest.len() == 23 {
            if rest.get(..1)? != b" " || rest.get(3..4)? != b"-" || rest.get(7..8)? != b"-" {
                return None;
            }
            if rest.get(10..11)? != b" " || rest.get(19..)? != b" GMT" {
                return None;
            }
            let yy = digits(rest.get(8..10)?)?;
            let (now_year, _, _) = civil_from_days(now / 86_400);
            let mut y = now_year - now_year % 100 + yy;
            if y > now_year + 50 {
                y -= 100;
            }
            let (d, mo) = (digits(rest.get(1..3)?)?, month(rest.get(4..7)?)?);
            return seconds(y, mo, d, clock(rest.get(11..19)?)?);
        }
        return None;
    }
    // asctime: "Sun Nov  6 08:49:37 1994"
    if v.len() != 24 || v.get(3..4)? != b" " || v.get(7..8)? != b" " || v.get(10..11)? != b" " {
        return None;
    }
    if v.get(19..20)? != b" " || !v.get(..3)?.iter().all(u8::is_ascii_alphabetic) {
        return None;
    }
    let d = match v.get(8..10)? {
        [b' ', d] => digits(&[*d])?,
        dd => digits(dd)?,
    };
    seconds(
        digits(v.get(20..)?)?,
        month(v.get(4..7)?)?,
        d,
        clock(v.get(11..19)?)?,
    )
}

/// Length of a whole `Date: <IMF-fixdate>\r\n` field line.
pub const DATE_FIELD_LEN: usize = 8 + IMF_FIXDATE_LEN;

/// The current date, re-rendered only when the second changes. One per shard.
#[derive(Debug, Default)]
pub struct DateCache {
    secs: std::cell::Cell<u64>,
    text: std::cell::Cell<[u8; IMF_FIXDATE_LEN]>,
}

impl DateCache {
    /// The IMF-fixdate of now.
    pub fn now(&self) -> [u8; IMF_FIXDATE_LEN] {
        let secs = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        if secs != self.secs.get() || self.secs.get() == 0 {
            self.secs.set(secs);
            self.text.set(imf_fixdate(secs));
        }
        self.text.get()
    }

    /// `Date: <IMF-fixdate of now>\r\n`, the field a gateway-made answer carries (RFC 9110
    /// §6.6.1).
    pub fn field(&self) -> [u8; DATE_FIELD_LEN] {
        let mut f = *b"Date: Thu, 01 Jan 1970 00:00:00 GMT\r\n";
        if let Some(slot) = f.get_mut(6..6 + IMF_FIXDATE_LEN) {
            slot.copy_from_slice(&self.now());
        }
        f
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_known_dates() {
        let table: &[(u64, &str)] = &[
            (0, "Thu, 01 Jan 1970 00:00:00 GMT"),
            (784_111_777, "Sun, 06 Nov 1994 08:49:37 GMT"),
            (951_782_400, "Tue, 29 Feb 2000 00:00:00 GMT"),
            (1_795_700_000, "Thu, 26 Nov 2026 13:33:20 GMT"),
            (4_102_444_799, "Thu, 31 Dec 2099 23:59:59 GMT"),
        ];
        for (secs, want) in table {
            assert_eq!(
                String::from_utf8_lossy(&imf_fixdate(*secs)),
                *want,
                "{secs}"
            );
            assert_eq!(parse_http_date(want.as_bytes(), 0), Some(*secs), "{want}");
        }
    }

    #[test]
    fn parses_the_three_formats_and_refuses_the_rest() {
        // "now" in 2026: 94 is 1994, 30 is 2030, 80 is 1980
        let now = 1_795_700_000;
        let table: &[(&str, Option<u64>)] = &[
            ("Sun, 06 Nov 1994 08:49:37 GMT", Some(784_111_777)),
            ("Sunday, 06-Nov-94 08:49:37 GMT", Some(784_111_777)),
            ("Sun Nov  6 08:49:37 1994", Some(784_111_777)),
            ("Sun Nov 16 08:49:37 1994", Some(784_111_777 + 10 * 86_400)),
            ("  Sun, 06 Nov 1994 08:49:37 GMT ", Some(784_111_777)),
            ("Tuesday, 01-Jan-30 00:00:00 GMT", Some(1_893_456_000)),
            ("Tuesday, 01-Jan-80 00:00:00 GMT", Some(315_532_800)),
            ("Thu, 31 Dec 2099 23:59:60 GMT", Some(4_102_444_799)),
            ("Sun, 06 Nov 1994 08:49:37 UTC", None),
            ("Sun, 6 Nov 1994 08:49:37 GMT", None),
            ("Sun, 06 nov 1994 08:49:37 GMT", None),
            ("Sun, 31 Apr 1994 08:49:37 GMT", None),
            ("Sun, 29 Feb 1995 08:49:37 GMT", None),
            ("Sun, 06 Nov 1994 24:00:00 GMT", None),
            ("Sun, 06 Nov 1969 08:49:37 GMT", None),
            ("Sun, 06 Nov 1994 08:49 GMT", None),
            ("0", None),
            ("-1", None),
            ("", None),
            ("Sun Nov  6 08:49:37 94", None),
            ("1994-11-06T08:49:37Z", None),
        ];
        for (text, want) in table {
            assert_eq!(parse_http_date(text.as_bytes(), now), *want, "{text}");
        }
    }
}
