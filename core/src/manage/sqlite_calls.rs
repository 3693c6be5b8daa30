//! The `calls` table in SQLite: the portable statements (PostgreSQL takes them as written)
//! and the conversion of rows both ways.

use rusqlite::Row;

use super::analytics::{Period, Stored};
use super::sqlite::{int, uint};
use crate::calls::{BUCKETS, Sums};

/// The call columns after the key, in order.
fn call_columns() -> Vec<String> {
    let mut c: Vec<String> = ["count", "errors", "bytes_in", "bytes_out"]
        .map(String::from)
        .into();
    c.extend((0..BUCKETS).map(|i| format!("l{i}")));
    c
}

const CALL_KEY: &str = "period, start_ms, tenant, api, route, consumer, class";

/// The statement adding one row into `calls` (PostgreSQL takes it as written).
pub fn add_call_sql() -> String {
    let cols = call_columns();
    let n = 7 + cols.len();
    let values: Vec<String> = (1..=n).map(|i| format!("${i}")).collect();
    let sets: Vec<String> = cols
        .iter()
        .map(|c| format!("{c} = calls.{c} + excluded.{c}"))
        .collect();
    format!(
        "INSERT INTO calls ({CALL_KEY}, {}) VALUES ({}) ON CONFLICT ({CALL_KEY}) DO UPDATE SET {}",
        cols.join(", "),
        values.join(", "),
        sets.join(", ")
    )
}

/// The statement reading rows of a range (`$1..$2`, tenant `$3`, period `$4`, either null).
pub fn calls_sql() -> String {
    format!(
        "SELECT {CALL_KEY}, {} FROM calls WHERE start_ms >= $1 AND start_ms < $2 AND ($3 IS NULL OR tenant = $3) AND ($4 IS NULL OR period = $4)",
        call_columns().join(", ")
    )
}

/// A row's values in the order of `add_call_sql`.
fn call_values(r: &Stored) -> Vec<rusqlite::types::Value> {
    use rusqlite::types::Value::{Integer, Text};
    let s = &r.sums;
    let mut v = vec![
        Text(r.period.name().into()),
        Integer(int(r.start_ms)),
        Text(r.tenant.clone()),
        Text(r.api.clone()),
        Text(r.route.clone()),
        Text(r.consumer.clone()),
        Integer(i64::from(r.class)),
    ];
    v.extend([s.count, s.errors, s.bytes_in, s.bytes_out].map(|n| Integer(int(n))));
    v.extend(s.latency.iter().map(|&n| Integer(int(n))));
    v
}

pub(super) fn call_row(r: &Row<'_>) -> rusqlite::Result<Stored> {
    let period: String = r.get(0)?;
    let n = |i: usize| r.get::<_, i64>(i).map(uint);
    let mut latency = [0u64; BUCKETS];
    for (i, l) in latency.iter_mut().enumerate() {
        *l = n(11 + i)?;
    }
    Ok(Stored {
        period: Period::parse(&period).unwrap_or(Period::Day),
        start_ms: n(1)?,
        tenant: r.get(2)?,
        api: r.get(3)?,
        route: r.get(4)?,
        consumer: r.get(5)?,
        class: u8::try_from(r.get::<_, i64>(6)?).unwrap_or(0),
        sums: Sums {
            count: n(7)?,
            errors: n(8)?,
            bytes_in: n(9)?,
            bytes_out: n(10)?,
            latency,
        },
    })
}

pub(super) fn add_calls(tx: &rusqlite::Transaction<'_>, rows: &[Stored]) -> rusqlite::Result<()> {
    let mut st = tx.prepare(&add_call_sql())?;
    for r in rows {
        st.execute(rusqlite::params_from_iter(call_values(r)))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::sqlite::Sqlite;
    use super::super::store::{Store, StoreError};
    use super::*;

    fn temp(name: &str) -> std::path::PathBuf {
        let p = std::env::temp_dir().join(format!("sg-calls-{}-{name}", std::process::id()));
        let _ = std::fs::remove_file(&p);
        p
    }

    #[test]
    fn call_figures_add_up_roll_up_and_are_forgotten() -> Result<(), StoreError> {
        use super::super::analytics::{Retention, roll_up};
        let path = temp("calls");
        let mut s = Sqlite::open(&path)?;
        let row = |start_ms: u64, consumer: &str, count: u64| Stored {
            period: Period::Minute,
            start_ms,
            tenant: "acme".into(),
            api: "orders".into(),
            route: "orders".into(),
            consumer: consumer.into(),
            class: 2,
            sums: Sums {
                count,
                errors: 1,
                bytes_in: 5,
                bytes_out: 7,
                latency: [count; BUCKETS],
            },
        };
        let hour = 3_600_000;
        s.add_calls(&[row(0, "a", 2), row(60_000, "a", 3), row(hour, "b", 1)])?;
        s.add_calls(&[row(0, "a", 5)])?;
        let all = s.calls(None, 0, u64::MAX / 4, None)?;
        let first = all.iter().find(|r| r.start_ms == 0).map(|r| r.sums.clone());
        assert_eq!(
            first.map(|f| (f.count, f.errors, f.latency[13])),
            Some((7, 2, 7)),
            "added into"
        );
        assert_eq!(s.calls(Some("globex"), 0, u64::MAX / 4, None)?.len(), 0);
        assert_eq!(
            s.calls(Some("acme"), 0, hour, Some(Period::Minute))?.len(),
            2
        );
        // two hours on, with minutes kept for an hour: the first hour is rolled up, whole
        let keep = Retention {
            minutes_ms: hour,
            hours_ms: 48 * hour,
            days_ms: 400 * 24 * hour,
        };
        roll_up(&mut s, 2 * hour + 5, &keep)?;
        let mut left: Vec<(Period, u64, u64)> = s
            .calls(None, 0, u64::MAX / 4, None)?
            .iter()
            .map(|r| (r.period, r.start_ms, r.sums.count))
            .collect();
        left.sort_by_key(|l| l.1);
        assert_eq!(left, [(Period::Hour, 0, 10), (Period::Minute, hour, 1)]);
        // far on: everything rolled into days, then forgotten
        roll_up(&mut s, 30 * 24 * hour, &keep)?;
        let mut days: Vec<_> = s
            .calls(None, 0, u64::MAX / 4, None)?
            .iter()
            .map(|r| (r.period, r.start_ms, r.consumer.clone(), r.sums.count))
            .collect();
        days.sort_by_key(|d| d.2.clone());
        // one day row per consumer: a's two minutes and b's one
        let day = |c: &str, n| (Period::Day, 0, c.to_string(), n);
        assert_eq!(days, [day("a", 10), day("b", 1)]);
        roll_up(&mut s, 500 * 24 * hour, &keep)?;
        assert!(s.calls(None, 0, u64::MAX / 4, None)?.is_empty());
        let _ = std::fs::remove_file(&path);
        Ok(())
    }
}
