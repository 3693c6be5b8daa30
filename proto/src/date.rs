//! IMF-fixdate (RFC 9110 §5.6.7) for the Date field of responses the gateway makes itself,
//! rendered at most once per second per shard.

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
fn civil_from_days(days: u64) -> (u64, u64, u64) {
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
        }
    }
}
