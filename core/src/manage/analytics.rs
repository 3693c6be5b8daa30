//! Call analytics in the store: the shards' minute figures resolved to tenant and API (by the
//! catalogue's routes) and added into `minute` rows; older rows rolled up into hours, then
//! days, and the oldest forgotten, as `[management]`'s retention says; and the time-range
//! queries the admin API answers (sums grouped by API, route, consumer, class, time step).

use std::collections::BTreeMap;
use std::collections::hash_map::Entry;

use ahash::AHashMap;
use policy::catalogue::Catalogue;
use serde_json::{Value, json};

use super::store::{Store, StoreError};
use crate::calls::{CallRow, Sums};

/// How long a row covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Period {
    /// A minute.
    Minute,
    /// An hour.
    Hour,
    /// A day (UTC).
    Day,
}

impl Period {
    /// Its name, in the store and in queries.
    pub fn name(self) -> &'static str {
        match self {
            Period::Minute => "minute",
            Period::Hour => "hour",
            Period::Day => "day",
        }
    }

    /// The period named `s`.
    pub fn parse(s: &str) -> Option<Period> {
        [Period::Minute, Period::Hour, Period::Day]
            .into_iter()
            .find(|p| p.name() == s)
    }

    /// Its length in milliseconds.
    pub fn ms(self) -> u64 {
        match self {
            Period::Minute => 60_000,
            Period::Hour => 3_600_000,
            Period::Day => 86_400_000,
        }
    }

    /// The start of the period holding `ms`.
    pub fn floor(self, ms: u64) -> u64 {
        ms - ms % self.ms()
    }
}

/// One stored row: a period's figures for a tenant, API, route, consumer and class.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    /// What it covers.
    pub period: Period,
    /// Its start, in milliseconds since the Unix epoch.
    pub start_ms: u64,
    /// The tenant of the route's API (`""`: the route is in no API).
    pub tenant: String,
    /// The route's API (`""`: none).
    pub api: String,
    /// The route (`""`: never routed).
    pub route: String,
    /// The consumer (`""`: anonymous).
    pub consumer: String,
    /// Status class (0: nothing sent).
    pub class: u8,
    /// The figures.
    pub sums: Sums,
}

type Key = (Period, u64, String, String, String, String, u8);

fn key(s: &Stored) -> Key {
    let (t, a, r, c) = (
        s.tenant.clone(),
        s.api.clone(),
        s.route.clone(),
        s.consumer.clone(),
    );
    (s.period, s.start_ms, t, a, r, c, s.class)
}

/// Rows with the same key made one.
pub fn merge(rows: Vec<Stored>) -> Vec<Stored> {
    let mut by: AHashMap<Key, Stored> = AHashMap::with_capacity(rows.len());
    for r in rows {
        match by.entry(key(&r)) {
            Entry::Occupied(mut have) => have.get_mut().sums.add(&r.sums),
            Entry::Vacant(v) => {
                v.insert(r);
            }
        }
    }
    by.into_values().collect()
}

/// The shards' rows as minute rows, each route's tenant and API from the catalogue.
pub fn resolve(c: &Catalogue, rows: Vec<CallRow>) -> Vec<Stored> {
    let tenants: ahash::AHashSet<&str> = c.tenants.iter().map(|t| t.name.as_str()).collect();
    let mut api_of: AHashMap<&str, (&str, &str)> = AHashMap::new();
    for a in &c.apis {
        for r in &a.routes {
            api_of.insert(r.as_str(), (a.tenant.as_str(), a.name.as_str()));
        }
    }
    let rows = rows.into_iter().map(|r| {
        let (tenant, api) = api_of.get(r.route.as_str()).copied().unwrap_or(("", ""));
        // another tenant's consumer calling this one's API is not named to it
        let theirs = r
            .consumer
            .split_once('/')
            .is_some_and(|(t, _)| t != tenant && tenants.contains(t));
        let consumer = if theirs {
            "(another tenant)".to_string()
        } else {
            r.consumer
        };
        Stored {
            period: Period::Minute,
            start_ms: r.minute_ms,
            tenant: tenant.into(),
            api: api.into(),
            route: r.route,
            consumer,
            class: r.class,
            sums: r.sums,
        }
    });
    merge(rows.collect())
}

/// How long rows of each period are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// Minute rows, then rolled up into hours (ms).
    pub minutes_ms: u64,
    /// Hour rows, then rolled up into days (ms).
    pub hours_ms: u64,
    /// Day rows, then forgotten (ms).
    pub days_ms: u64,
}

/// Rolls rows past their retention up into the next period (whole periods only), and
/// forgets day rows past theirs; each step one transaction in the store.
pub fn roll_up(store: &mut dyn Store, now_ms: u64, r: &Retention) -> Result<(), StoreError> {
    for (from, into, keep) in [
        (Period::Minute, Period::Hour, r.minutes_ms),
        (Period::Hour, Period::Day, r.hours_ms),
    ] {
        store.roll_calls(from, Some(into), into.floor(now_ms.saturating_sub(keep)))?;
    }
    store.roll_calls(Period::Day, None, now_ms.saturating_sub(r.days_ms))
}

/// What a query groups by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dim {
    /// The tenant.
    Tenant,
    /// The API.
    Api,
    /// The route.
    Route,
    /// The consumer.
    Consumer,
    /// The status class.
    Class,
}

impl Dim {
    fn parse(s: &str) -> Option<Dim> {
        Some(match s {
            "tenant" => Dim::Tenant,
            "api" => Dim::Api,
            "route" => Dim::Route,
            "consumer" => Dim::Consumer,
            "class" => Dim::Class,
            _ => return None,
        })
    }

    fn name(self) -> &'static str {
        match self {
            Dim::Tenant => "tenant",
            Dim::Api => "api",
            Dim::Route => "route",
            Dim::Consumer => "consumer",
            Dim::Class => "class",
        }
    }

    fn of(self, s: &Stored) -> Value {
        match self {
            Dim::Tenant => json!(s.tenant),
            Dim::Api => json!(s.api),
            Dim::Route => json!(s.route),
            Dim::Consumer => json!(s.consumer),
            Dim::Class => json!(s.class),
        }
    }
}

/// A query group's place in the answer: its step's start, then its dimensions as text.
type GroupKey = (Option<u64>, Vec<String>);

/// A time-range query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Query {
    /// From (inclusive), ms since the Unix epoch.
    pub from_ms: u64,
    /// To (exclusive).
    pub to_ms: u64,
    /// Grouped by these.
    pub by: Vec<Dim>,
    /// And by the start of each of these periods, when given.
    pub step: Option<Period>,
}

impl Query {
    /// From a query string: `last=1h` (or `from=MS&to=MS`), `by=consumer,class`,
    /// `step=minute|hour|day`; the time of the query is `now_ms`.
    pub fn parse(q: &str, now_ms: u64) -> Result<Query, String> {
        let get = |name: &str| super::api::param(q, name);
        let to_ms = match get("to") {
            Some(t) => t
                .parse()
                .map_err(|_| format!("to={t}: milliseconds since the epoch"))?,
            None => now_ms + 1,
        };
        let from_ms = match (get("from"), get("last")) {
            (Some(f), None) => f
                .parse()
                .map_err(|_| format!("from={f}: milliseconds since the epoch"))?,
            (None, last) => {
                let span = conf::Duration::parse(last.unwrap_or("1h"))
                    .map_err(|e| format!("last: {e}"))?;
                to_ms.saturating_sub(u64::try_from(span.0.as_millis()).unwrap_or(u64::MAX))
            }
            (Some(_), Some(_)) => return Err("give from= or last=, not both".into()),
        };
        if from_ms >= to_ms {
            return Err("the range is empty: from must be before to".into());
        }
        let mut by = Vec::new();
        for d in get("by")
            .unwrap_or_default()
            .split(',')
            .filter(|d| !d.is_empty())
        {
            by.push(
                Dim::parse(d)
                    .ok_or_else(|| format!("by={d}: use tenant, api, route, consumer or class"))?,
            );
        }
        let step = match get("step") {
            None => None,
            Some(s) => {
                Some(Period::parse(s).ok_or_else(|| format!("step={s}: use minute, hour or day"))?)
            }
        };
        Ok(Query {
            from_ms,
            to_ms,
            by,
            step,
        })
    }

    /// The groups of `rows` (those in the range), each with its sums, ordered by group.
    pub fn answer(&self, rows: &[Stored]) -> Vec<Value> {
        // ordered by step, then by the dimensions' values
        let mut groups: BTreeMap<GroupKey, (Vec<Value>, Sums)> = BTreeMap::new();
        for r in rows
            .iter()
            .filter(|r| r.start_ms >= self.from_ms && r.start_ms < self.to_ms)
        {
            let dims: Vec<Value> = self.by.iter().map(|d| d.of(r)).collect();
            let step = self.step.map(|p| p.floor(r.start_ms));
            let names = dims.iter().map(Value::to_string).collect();
            let (_, sums) = groups
                .entry((step, names))
                .or_insert_with(|| (dims, Sums::default()));
            sums.add(&r.sums);
        }
        groups
            .into_iter()
            .map(|((step, _), (dims, s))| {
                let mut o = serde_json::Map::new();
                for (d, v) in self.by.iter().zip(dims) {
                    o.insert(d.name().into(), v);
                }
                if let Some(t) = step {
                    o.insert("start_ms".into(), json!(t));
                }
                o.insert("count".into(), json!(s.count));
                o.insert("errors".into(), json!(s.errors));
                o.insert("bytes_in".into(), json!(s.bytes_in));
                o.insert("bytes_out".into(), json!(s.bytes_out));
                o.insert("p50_ms".into(), json!(s.quantile_ms(0.5)));
                o.insert("p99_ms".into(), json!(s.quantile_ms(0.99)));
                Value::Object(o)
            })
            .collect()
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A minute row of acme's API and route orders, with these sums.
    pub(crate) fn sample(start_ms: u64, consumer: &str, class: u8, sums: Sums) -> Stored {
        Stored {
            period: Period::Minute,
            start_ms,
            tenant: "acme".into(),
            api: "orders".into(),
            route: "orders".into(),
            consumer: consumer.into(),
            class,
            sums,
        }
    }

    fn row(start_ms: u64, consumer: &str, class: u8, count: u64) -> Stored {
        let sums = Sums {
            count,
            ..Sums::default()
        };
        sample(start_ms, consumer, class, sums)
    }

    #[test]
    fn a_query_groups_the_rows_in_its_range() -> Result<(), String> {
        let rows = [
            row(0, "a", 2, 3),
            row(60_000, "a", 2, 4),
            row(60_000, "b", 4, 1),
            row(120_000, "a", 2, 9),
        ];
        let q = Query::parse("from=0&to=120000&by=consumer,class", 0)?;
        let got: Vec<(String, u64)> = q
            .answer(&rows)
            .iter()
            .map(|v| {
                (
                    format!("{}/{}", v["consumer"], v["class"]),
                    v["count"].as_u64().unwrap_or(0),
                )
            })
            .collect();
        assert_eq!(
            got,
            [("\"a\"/2".to_string(), 7), ("\"b\"/4".to_string(), 1)]
        );
        let q = Query::parse("last=2m&step=minute", 120_000)?;
        let steps: Vec<u64> = q
            .answer(&rows)
            .iter()
            .map(|v| v["count"].as_u64().unwrap_or(0))
            .collect();
        assert_eq!(steps, [5, 9], "from 60000 (inclusive) to 120001");
        for bad in [
            "from=5&to=5",
            "by=colour",
            "step=week",
            "last=1x",
            "from=1&last=1h",
        ] {
            assert!(Query::parse(bad, 1000).is_err(), "{bad}");
        }
        Ok(())
    }

    #[test]
    fn rows_merge_by_key_and_resolve_to_their_api() {
        let mut c = Catalogue::default();
        c.apis.push(policy::catalogue::Api {
            tenant: "acme".into(),
            name: "orders".into(),
            routes: vec!["orders".into()],
            visibility: policy::catalogue::Visibility::Public,
        });
        let call = |route: &str, count| CallRow {
            minute_ms: 60_000,
            route: route.into(),
            consumer: "a".into(),
            class: 2,
            sums: Sums {
                count,
                ..Sums::default()
            },
        };
        let mut got = resolve(
            &c,
            vec![call("orders", 2), call("orders", 3), call("misc", 1)],
        );
        got.sort_by_key(|s| s.route.clone());
        let brief: Vec<_> = got
            .iter()
            .map(|s| {
                (
                    s.tenant.as_str(),
                    s.api.as_str(),
                    s.route.as_str(),
                    s.sums.count,
                )
            })
            .collect();
        assert_eq!(
            brief,
            [("", "", "misc", 1), ("acme", "orders", "orders", 5)]
        );
    }
}
