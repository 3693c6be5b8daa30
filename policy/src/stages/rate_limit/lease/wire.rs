//! What a shard and its node's lease broker say to each other: a lease request (`Ask`) for
//! a token bucket or a quota's window count, the answer (`Reply`), and unspent quota tokens
//! handed back (`GiveBack`).

/// What a lease draws from.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Pool {
    /// A token bucket refilled on Redis's clock.
    Bucket {
        /// Global tokens per millisecond.
        per_ms: f64,
        /// Global bucket size.
        burst: f64,
        /// How long Redis keeps an idle bucket, in milliseconds.
        keep_ms: u64,
    },
    /// A count of requests per calendar window (UTC, on Redis's clock).
    Quota {
        /// Requests per window.
        limit: u64,
        /// The window.
        period: Period,
        /// Copies of the stage that lease (nodes × shards): a grant is at most what is left
        /// over twice this, so the last tokens are not all held by one shard.
        copies: u32,
    },
}

/// A quota's window: the calendar hour, day or month in UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Period {
    /// From minute 0 of each hour.
    Hour,
    /// From midnight UTC.
    Day,
    /// From the first of each month, midnight UTC.
    Month,
}

impl Period {
    /// From its config name.
    pub fn parse(name: &str) -> Option<Period> {
        match name {
            "hour" => Some(Period::Hour),
            "day" => Some(Period::Day),
            "month" => Some(Period::Month),
            _ => None,
        }
    }

    /// Its name (in config and in the Redis script's arguments).
    pub fn name(self) -> &'static str {
        match self {
            Period::Hour => "hour",
            Period::Day => "day",
            Period::Month => "month",
        }
    }

    /// Its length in seconds as `RateLimit-Policy` states it (a month as 30 days).
    pub fn seconds(self) -> u64 {
        match self {
            Period::Hour => 3600,
            Period::Day => 86_400,
            Period::Month => 30 * 86_400,
        }
    }
}

/// A lease request, from a shard to its node's broker.
#[derive(Debug, Clone, PartialEq)]
pub struct Ask {
    /// The Redis key of the record.
    pub key: String,
    /// The key's hash on the shard (echoed in the answer).
    pub hash: u64,
    /// Tokens wanted.
    pub want: u32,
    /// What they are drawn from.
    pub pool: Pool,
}

/// Unspent quota tokens going back to their window's count (no answer).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GiveBack {
    /// The Redis key of the count.
    pub key: String,
    /// Tokens handed back.
    pub tokens: u32,
    /// The window they were granted in (`Reply::Granted::window`); a count of another
    /// window is left alone.
    pub window: u64,
}

/// The broker's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reply {
    /// `tokens` granted.
    Granted {
        /// The key's hash.
        hash: u64,
        /// Tokens granted (0: none left).
        tokens: u32,
        /// A bucket: with none granted, milliseconds until it holds one. A quota:
        /// milliseconds until its window ends.
        next_ms: u64,
        /// A quota: tokens left in the window after this grant (0 for a bucket).
        left: u64,
        /// A quota: the window's start, in ms since the epoch (0 for a bucket).
        window: u64,
    },
    /// Redis could not be asked (down, slow, refused the script).
    Down {
        /// The key's hash.
        hash: u64,
    },
}
