//! Values that carry their units: sizes ("16KiB") and durations ("250ms"). A value that parses
//! is valid: the data path never re-checks it.

use std::fmt;

use serde::Deserialize;
use serde::de::{self, Deserializer, Visitor};

/// A size in bytes, written `"512"`, `"16KiB"`, `"1MiB"`, `"2GiB"` (or `"16KB"`, powers of
/// 1000), or a bare integer of bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct ByteSize(pub u64);

impl ByteSize {
    /// As a `usize` (saturating).
    pub fn as_usize(self) -> usize {
        usize::try_from(self.0).unwrap_or(usize::MAX)
    }

    /// Parses the string form.
    pub fn parse(s: &str) -> Result<ByteSize, String> {
        let s = s.trim();
        let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
        let (num, unit) = s.split_at(split);
        let n: u64 = num.parse().map_err(|_| {
            format!("invalid size `{s}`: expected a number with a unit, like \"16KiB\"")
        })?;
        let mult: u64 = match unit.trim() {
            "" | "B" => 1,
            "KiB" => 1 << 10,
            "MiB" => 1 << 20,
            "GiB" => 1 << 30,
            "KB" | "kB" => 1_000,
            "MB" => 1_000_000,
            "GB" => 1_000_000_000,
            u => {
                return Err(format!(
                    "unknown size unit `{u}` in `{s}`: expected B, KiB, MiB, GiB, KB, MB or GB"
                ));
            }
        };
        n.checked_mul(mult)
            .map(ByteSize)
            .ok_or_else(|| format!("size `{s}` is too large"))
    }
}

impl fmt::Display for ByteSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.0;
        if n >= 1 << 30 && n.is_multiple_of(1 << 30) {
            write!(f, "{}GiB", n >> 30)
        } else if n >= 1 << 20 && n.is_multiple_of(1 << 20) {
            write!(f, "{}MiB", n >> 20)
        } else if n >= 1 << 10 && n.is_multiple_of(1 << 10) {
            write!(f, "{}KiB", n >> 10)
        } else {
            write!(f, "{n}B")
        }
    }
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = ByteSize;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a size like \"16KiB\" or a number of bytes")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<ByteSize, E> {
                u64::try_from(v)
                    .map(ByteSize)
                    .map_err(|_| E::custom("a size cannot be negative"))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<ByteSize, E> {
                Ok(ByteSize(v))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<ByteSize, E> {
                ByteSize::parse(v).map_err(E::custom)
            }
        }
        d.deserialize_any(V)
    }
}

/// A duration written `"250ms"`, `"10s"`, `"5m"`, `"1h"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Duration(pub std::time::Duration);

impl Duration {
    /// From whole seconds.
    pub const fn secs(s: u64) -> Duration {
        Duration(std::time::Duration::from_secs(s))
    }

    /// From milliseconds.
    pub const fn millis(ms: u64) -> Duration {
        Duration(std::time::Duration::from_millis(ms))
    }

    /// Parses the string form.
    pub fn parse(s: &str) -> Result<Duration, String> {
        let s = s.trim();
        let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
        let (num, unit) = s.split_at(split);
        let n: u64 = num.parse().map_err(|_| {
            format!("invalid duration `{s}`: expected a number with a unit, like \"10s\"")
        })?;
        let ms = match unit {
            "ms" => Some(n),
            "s" => n.checked_mul(1_000),
            "m" => n.checked_mul(60_000),
            "h" => n.checked_mul(3_600_000),
            "d" => n.checked_mul(86_400_000),
            u => {
                return Err(format!(
                    "unknown duration unit `{u}` in `{s}`: expected ms, s, m, h or d"
                ));
            }
        };
        ms.map(Duration::millis)
            .ok_or_else(|| format!("duration `{s}` is too large"))
    }
}

impl fmt::Display for Duration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = self.0.as_millis();
        if ms.is_multiple_of(1000) {
            write!(f, "{}s", ms / 1000)
        } else {
            write!(f, "{ms}ms")
        }
    }
}

impl<'de> Deserialize<'de> for Duration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Duration::parse(&s).map_err(de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(ByteSize::parse("512"), Ok(ByteSize(512)));
        assert_eq!(ByteSize::parse("16KiB"), Ok(ByteSize(16384)));
        assert_eq!(ByteSize::parse("1MiB"), Ok(ByteSize(1 << 20)));
        assert_eq!(ByteSize::parse("2KB"), Ok(ByteSize(2000)));
        assert_eq!(
            ByteSize::parse("16kib"),
            Err(
                "unknown size unit `kib` in `16kib`: expected B, KiB, MiB, GiB, KB, MB or GB"
                    .into()
            )
        );
        assert!(ByteSize::parse("KiB").is_err());
        assert!(ByteSize::parse("99999999999GiB").is_err());
        assert_eq!(ByteSize(16384).to_string(), "16KiB");
    }

    #[test]
    fn durations() {
        assert_eq!(Duration::parse("250ms"), Ok(Duration::millis(250)));
        assert_eq!(Duration::parse("10s"), Ok(Duration::secs(10)));
        assert_eq!(Duration::parse("2m"), Ok(Duration::secs(120)));
        assert_eq!(Duration::parse("1h"), Ok(Duration::secs(3600)));
        assert_eq!(
            Duration::parse("10"),
            Err("unknown duration unit `` in `10`: expected ms, s, m, h or d".into())
        );
        assert_eq!(Duration::secs(10).to_string(), "10s");
    }
}
