//! The request path's clock: `Instant`s (and wall times) for deadlines and timestamps from
//! `CLOCK_MONOTONIC_COARSE`, a few nanoseconds a read instead of ≈ 30 for a precise one, at
//! most one timer tick (1–10 ms) off. Each thread anchors the coarse clock to one precise
//! reading (and the wall clock) once a second; what it returns never goes backwards.

use std::cell::Cell;
use std::time::{Duration, Instant, SystemTime};

/// A precise instant, the wall time then, and the coarse clock's reading then.
#[derive(Clone, Copy)]
struct Anchor {
    at: Instant,
    wall: SystemTime,
    coarse: Duration,
}

/// How often a thread takes a new anchor.
const REANCHOR: Duration = Duration::from_secs(1);

thread_local! {
    static ANCHOR: Cell<Option<Anchor>> = const { Cell::new(None) };
    static LAST: Cell<Option<Instant>> = const { Cell::new(None) };
}

fn anchor(coarse: Duration) -> Anchor {
    Anchor {
        at: Instant::now(),
        wall: SystemTime::now(),
        coarse,
    }
}

/// Now, to within a timer tick, and the wall time with it.
pub fn now_and_wall() -> (Instant, SystemTime) {
    let coarse = crate::sys::coarse_monotonic();
    let a = ANCHOR.with(|cell| match cell.get() {
        Some(a) if coarse.saturating_sub(a.coarse) < REANCHOR => a,
        _ => {
            let a = anchor(coarse);
            cell.set(Some(a));
            a
        }
    });
    let since = coarse.saturating_sub(a.coarse);
    let at = a.at + since;
    let at = LAST.with(|last| {
        let at = last.get().map_or(at, |l| l.max(at));
        last.set(Some(at));
        at
    });
    (at, a.wall + since)
}

/// The wall time, to within a timer tick (for logs and `Date`, never for durations).
pub fn wall() -> SystemTime {
    now_and_wall().1
}

/// Now, to within a timer tick (deadlines; never for latency figures).
pub fn now() -> Instant {
    now_and_wall().0
}

/// `future`, bounded by `limit` from now (monoio's `timeout` with this clock).
pub fn timeout<F: std::future::Future>(limit: Duration, future: F) -> monoio::time::Timeout<F> {
    match now().checked_add(limit) {
        Some(deadline) => monoio::time::timeout_at(deadline.into(), future),
        None => monoio::time::timeout(limit, future),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_coarse_clock_keeps_to_the_precise_one_within_a_tick_and_never_goes_back() {
        let mut last = now();
        for _ in 0..100_000 {
            let (t, wall) = now_and_wall();
            assert!(t >= last);
            last = t;
            let precise = Instant::now();
            let off = if t > precise {
                t - precise
            } else {
                precise - t
            };
            assert!(off < Duration::from_millis(25), "{off:?}");
            let wall_off = match SystemTime::now().duration_since(wall) {
                Ok(d) => d,
                Err(e) => e.duration(),
            };
            assert!(wall_off < Duration::from_millis(25), "{wall_off:?}");
        }
    }
}
