//! A minimal leveled logger to stderr (`SHARDGATE_LOG=error|warn|info|debug`, default info).

use std::io::Write;
use std::sync::atomic::{AtomicU8, Ordering};

/// Log levels, most severe first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
#[repr(u8)]
pub enum Level {
    /// Something failed.
    Error = 0,
    /// Something degraded.
    Warn = 1,
    /// Lifecycle events.
    Info = 2,
    /// Per-exchange detail.
    Debug = 3,
}

static MAX: AtomicU8 = AtomicU8::new(Level::Info as u8);

/// Reads `SHARDGATE_LOG` once at start.
pub fn init_from_env() {
    let level = match std::env::var("SHARDGATE_LOG").as_deref() {
        Ok("error") => Level::Error,
        Ok("warn") => Level::Warn,
        Ok("debug") => Level::Debug,
        _ => Level::Info,
    };
    MAX.store(level as u8, Ordering::Relaxed);
}

/// Whether `level` is logged.
#[inline]
pub fn enabled(level: Level) -> bool {
    level as u8 <= MAX.load(Ordering::Relaxed)
}

/// Writes one line.
pub fn write(level: Level, args: std::fmt::Arguments<'_>) {
    let tag = match level {
        Level::Error => "error",
        Level::Warn => "warn",
        Level::Info => "info",
        Level::Debug => "debug",
    };
    // a closed stderr (`shardgate 2>&1 | head`) must not panic a shard: the line is dropped
    let _ = writeln!(std::io::stderr().lock(), "shardgate {tag}: {args}");
}

/// Logs at a level: `log!(Info, "listening on {}", addr)`.
#[macro_export]
macro_rules! log {
    ($level:ident, $($arg:tt)*) => {
        if $crate::log::enabled($crate::log::Level::$level) {
            $crate::log::write($crate::log::Level::$level, format_args!($($arg)*));
        }
    };
}

/// At most one line per interval from one call site on one shard; the lines skipped in
/// between are counted and reported with the next one. Shard-local: no lock is taken for a
/// skipped line (stderr's lock is taken only for lines actually written).
pub struct Throttle {
    last: std::cell::Cell<Option<std::time::Instant>>,
    skipped: std::cell::Cell<u64>,
}

impl Throttle {
    /// A throttle that has not logged yet.
    pub const fn new() -> Throttle {
        Throttle {
            last: std::cell::Cell::new(None),
            skipped: std::cell::Cell::new(0),
        }
    }

    /// `Some(lines skipped since the last one)` when a line may be written now.
    pub fn allow(&self, now: std::time::Instant, every: std::time::Duration) -> Option<u64> {
        match self.last.get() {
            Some(t) if now.saturating_duration_since(t) < every => {
                self.skipped.set(self.skipped.get() + 1);
                None
            }
            _ => {
                self.last.set(Some(now));
                Some(self.skipped.replace(0))
            }
        }
    }
}

impl Default for Throttle {
    fn default() -> Throttle {
        Throttle::new()
    }
}

#[cfg(test)]
mod tests {
    use super::Throttle;
    use std::time::{Duration, Instant};

    #[test]
    fn throttle_allows_one_line_per_interval_and_counts_the_rest() {
        let t = Throttle::new();
        let t0 = Instant::now();
        let s = Duration::from_secs(1);
        assert_eq!(t.allow(t0, s), Some(0));
        assert_eq!(t.allow(t0 + Duration::from_millis(10), s), None);
        assert_eq!(t.allow(t0 + Duration::from_millis(500), s), None);
        assert_eq!(t.allow(t0 + Duration::from_millis(1000), s), Some(2));
        assert_eq!(t.allow(t0 + Duration::from_millis(1001), s), None);
    }
}
