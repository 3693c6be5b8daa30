//! Token limits per key (`consumer` by default): tokens per minute and per day (UTC windows),
//! counted from the provider's usage when each exchange finishes. A request is refused (429,
//! `Retry-After` until the window that is full ends) when the key's window is spent or when
//! the prompt's estimated size (a token per 4 characters) cannot fit in what is left. Each
//! shard enforces its share of the limit (as `rate_limit` does), in an LRU table of
//! `max_keys` keys. Requests in flight are not counted until they finish, so a key can pass
//! its limit by what its concurrent requests use.

use std::cell::RefCell;

use proto::RequestHead;
use serde::Deserialize;

use crate::exchange::Exchange;
use crate::lru::Lru;
use crate::stages::rate_limit::key::Key;

/// `[route.policy.tokens]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokensConf {
    /// What the limit is per, as for `rate_limit`. Default `["consumer"]`.
    #[serde(default = "default_key")]
    pub key: Vec<String>,
    /// Tokens (prompt and completion) per minute. Default none.
    #[serde(default)]
    pub per_minute: Option<u64>,
    /// Tokens per day (UTC). Default none.
    #[serde(default)]
    pub per_day: Option<u64>,
    /// Keys tracked per shard (least recently used forgotten). Default 10000.
    #[serde(default = "default_max_keys")]
    pub max_keys: usize,
}

fn default_key() -> Vec<String> {
    vec!["consumer".to_string()]
}

fn default_max_keys() -> usize {
    10_000
}

/// Tokens used in the current window of each length.
#[derive(Debug, Clone, Copy, Default)]
struct Used {
    minute: (u64, u64),
    day: (u64, u64),
}

/// A refusal: the seconds until the full window ends, and which window it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Spent {
    /// Seconds until it ends.
    pub retry_after: u64,
    /// `"minute"` or `"day"`.
    pub window: &'static str,
}

/// The limits on one shard.
pub struct Tokens {
    key: Key,
    /// (window seconds, this shard's share, name).
    limits: Vec<(u64, u64, &'static str)>,
    table: RefCell<Lru<Used>>,
}

fn seconds(ex: &Exchange) -> u64 {
    ex.wall
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl Used {
    fn slot(&mut self, window: u64) -> &mut (u64, u64) {
        if window == 60 {
            &mut self.minute
        } else {
            &mut self.day
        }
    }
}

impl Tokens {
    /// Checks the table for a gateway of `shards` shards.
    pub fn new(c: &TokensConf, shards: usize) -> Result<Tokens, String> {
        let key = Key::parse(&c.key, false).map_err(|e| format!("tokens: {e}"))?;
        let shards = shards.max(1) as u64;
        let mut limits = Vec::new();
        for (limit, window, name) in [(c.per_minute, 60, "minute"), (c.per_day, 86_400, "day")] {
            match limit {
                Some(0) => return Err(format!("tokens: per_{name} must be at least 1")),
                Some(n) => limits.push((window, n.div_ceil(shards), name)),
                None => {}
            }
        }
        if limits.is_empty() {
            return Err("tokens: give per_minute, per_day or both".into());
        }
        Ok(Tokens {
            key,
            limits,
            table: RefCell::new(Lru::new(c.max_keys.max(1))),
        })
    }

    /// The key of a request.
    pub fn key(&self, head: &RequestHead, buf: &[u8], ex: &Exchange) -> u64 {
        self.key.of(head, buf, ex)
    }

    /// Whether `estimate` more tokens fit for `key` now.
    pub fn admit(&self, key: u64, estimate: u64, ex: &Exchange) -> Result<(), Spent> {
        let now = seconds(ex);
        let mut table = self.table.borrow_mut();
        let mut fresh = Used::default();
        let used = table.get(key).unwrap_or(&mut fresh);
        for &(window, limit, name) in &self.limits {
            let (start, n) = *used.slot(window);
            let current = now / window * window;
            let n = if start == current { n } else { 0 };
            if n >= limit || n.saturating_add(estimate) > limit {
                return Err(Spent {
                    retry_after: (current + window).saturating_sub(now).max(1),
                    window: name,
                });
            }
        }
        Ok(())
    }

    /// Counts `tokens` used by `key`'s finished exchange.
    pub fn count(&self, key: u64, tokens: u64, ex: &Exchange) {
        let now = seconds(ex);
        let mut table = self.table.borrow_mut();
        let Some(used) = table.get_or_insert_with(key, Used::default) else {
            return;
        };
        for &(window, _, _) in &self.limits {
            let current = now / window * window;
            let slot = used.slot(window);
            if slot.0 != current {
                *slot = (current, 0);
            }
            slot.1 = slot.1.saturating_add(tokens);
        }
    }
}

/// Tokens a prompt of `chars` characters is estimated to take.
pub fn estimate(chars: usize) -> u64 {
    (chars as u64).div_ceil(4)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant, UNIX_EPOCH};

    fn ex_at(secs: u64) -> Exchange {
        let mut ex = Exchange::new(
            "127.0.0.1:1".parse().unwrap_or_else(|_| unreachable!()),
            Instant::now(),
            crate::RouteId(0),
            crate::Params::default(),
        );
        ex.wall = UNIX_EPOCH + Duration::from_secs(secs);
        ex
    }

    #[test]
    fn refuses_a_spent_window_until_it_ends() -> Result<(), String> {
        let conf = TokensConf {
            key: default_key(),
            per_minute: Some(100),
            per_day: Some(150),
            max_keys: 8,
        };
        let t = Tokens::new(&conf, 1)?;
        let t0 = 1_700_000_020; // 40 s into a minute
        assert_eq!(t.admit(1, 10, &ex_at(t0)), Ok(()));
        t.count(1, 95, &ex_at(t0));
        // 95 used: 5 fit, 6 do not
        assert_eq!(t.admit(1, 5, &ex_at(t0)), Ok(()));
        let spent = Spent {
            retry_after: 20,
            window: "minute",
        };
        assert_eq!(t.admit(1, 6, &ex_at(t0)), Err(spent));
        // another key is untouched, but a prompt larger than the limit never fits
        assert_eq!(t.admit(2, 6, &ex_at(t0)), Ok(()));
        assert_eq!(
            t.admit(3, 101, &ex_at(t0)).map_err(|s| s.window),
            Err("minute")
        );
        // the next minute has room, until the day's 150 are spent
        assert_eq!(t.admit(1, 6, &ex_at(t0 + 20)), Ok(()));
        t.count(1, 60, &ex_at(t0 + 20));
        assert_eq!(
            t.admit(1, 1, &ex_at(t0 + 20)).map_err(|s| s.window),
            Err("day")
        );
        Ok(())
    }

    #[test]
    fn shards_share_the_limit_and_a_table_needs_a_limit() {
        let conf = |m| TokensConf {
            key: default_key(),
            per_minute: m,
            per_day: None,
            max_keys: 8,
        };
        assert!(Tokens::new(&conf(None), 1).is_err());
        assert!(Tokens::new(&conf(Some(0)), 1).is_err());
        let t = Tokens::new(&conf(Some(10)), 2).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(t.limits, vec![(60, 5, "minute")]);
    }
}
