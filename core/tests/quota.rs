//! `quota` on a real Redis: the window script follows the UTC calendar (hours, days, months
//! with leap years, the turn of a year) and never grants beyond the limit; two gateway nodes
//! share one count that is never exceeded, unspent tokens go back so none is lost, and the
//! count outlives a restart; a `rate_limit` and a `quota` on one route report on one
//! `RateLimit-Policy` and one `RateLimit` line; a Redis that went away makes each
//! `on_redis_down` mode do what it says. Skips, saying why, without `redis-server`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    clippy::disallowed_types,
    clippy::zombie_processes
)]

mod support;

use std::time::{SystemTime, UNIX_EPOCH};

use support::redis::Redis;
use support::{Gateway, request};

/// Runs the quota script once at `now_s` (seconds since the epoch); {granted, ms to the
/// window's end, left, window start in ms}.
fn lease(
    conn: &mut redis::Connection,
    key: &str,
    limit: u64,
    want: u32,
    period: &str,
    now_s: u64,
) -> (i64, i64, i64, i64) {
    redis::Script::new(shardgate::broker::scripts::QUOTA)
        .key(key)
        .arg(limit)
        .arg(want)
        .arg(1)
        .arg(period)
        .arg(now_s * 1000)
        .invoke(conn)
        .unwrap()
}

#[test]
fn quota_windows_follow_the_utc_calendar_and_never_grant_beyond_the_limit() {
    let Some(redis) = Redis::start() else { return };
    let client = redis::Client::open(format!("redis://127.0.0.1:{}/", redis.port)).unwrap();
    let mut c = client.get_connection().unwrap();
    // (now, period, window start, window end), from `date -u -d … +%s`
    let table: &[(u64, &str, u64, u64, &str)] = &[
        // 2026-12-02T20:46:10Z
        (
            1796244370,
            "hour",
            1796241600,
            1796245200,
            "an hour from minute 0",
        ),
        (
            1796244370,
            "day",
            1796169600,
            1796256000,
            "a day from midnight UTC",
        ),
        (1796244370, "month", 1796083200, 1798761600, "December 2026"),
        // 2028-02-29T12:00Z: a leap day, February 2028 ends on 1 March
        (
            1835438400,
            "month",
            1832976000,
            1835481600,
            "a leap February",
        ),
        // 2100-02-15: not a leap year (divisible by 100, not 400)
        (4106332800, "month", 4105123200, 4107542400, "February 2100"),
        // 2000-02-10: a leap year (divisible by 400)
        (950140800, "month", 949363200, 951868800, "February 2000"),
        // 2026-12-31T23:59:59Z: the month ends at the turn of the year
        (
            1798761599,
            "month",
            1796083200,
            1798761600,
            "the last second of 2026",
        ),
        (1798761600, "month", 1798761600, 1801440000, "January 2027"),
    ];
    for (i, &(now, period, start, end, what)) in table.iter().enumerate() {
        let (granted, to_end, left, window) = lease(&mut c, &format!("t:{i}"), 10, 3, period, now);
        assert_eq!(
            (window, to_end),
            ((start * 1000) as i64, ((end - now) * 1000) as i64),
            "{what}"
        );
        // at most what is left over twice the copies (10 / 2 = 5), at most what was asked
        assert_eq!((granted, left), (3, 7), "{what}");
    }
    // one count: grants until the limit, then none; 10 in all whatever was asked
    let now = 1796244370;
    let mut total = 0;
    for want in [4, 4, 4, 4, 4, 4] {
        total += lease(&mut c, "t:spent", 10, want, "day", now).0;
    }
    assert_eq!(total, 10);
    let (granted, to_end, left, _) = lease(&mut c, "t:spent", 10, 1, "day", now + 60);
    assert_eq!(
        (granted, to_end, left),
        (0, ((1796256000 - now - 60) * 1000) as i64, 0)
    );
    // tokens handed back count again in their window, not in another
    let back = |c: &mut redis::Connection, tokens: u32, window: u64| -> i64 {
        redis::Script::new(shardgate::broker::scripts::GIVE_BACK)
            .key("t:spent")
            .arg(tokens)
            .arg(window)
            .invoke(c)
            .unwrap()
    };
    assert_eq!(back(&mut c, 2, 1796083200 * 1000), 0, "the day before");
    assert_eq!(lease(&mut c, "t:spent", 10, 5, "day", now).0, 0);
    assert_eq!(back(&mut c, 2, 1796169600 * 1000), 1);
    assert_eq!(lease(&mut c, "t:spent", 10, 5, "day", now).0, 1);
    assert_eq!(lease(&mut c, "t:spent", 10, 5, "day", now).0, 1);
    assert_eq!(lease(&mut c, "t:spent", 10, 5, "day", now).0, 0);
    // the next day starts from nothing
    assert_eq!(lease(&mut c, "t:spent", 10, 4, "day", 1796256000).0, 4);
}

/// A route `/q` with a quota of `limit` a day per `X-Tenant`.
fn node(port: u16, shards: u32, limit: u64, down: &str) -> Gateway {
    let text = format!(
        "[redis]\naddress = \"127.0.0.1:{port}\"\nnodes = 2\nlease_ttl = \"200ms\"\ncommand_timeout = \"200ms\"\n\n[[route]]\nname = \"q\"\npath = \"/q\"\n[[route.policy]]\nkind = \"quota\"\nlimit = {limit}\nperiod = \"day\"\nkey = [\"header:X-Tenant\"]\nheaders = true\nname = \"daily\"\non_redis_down = \"{down}\"\n[[route.policy]]\nkind = \"respond\"\n"
    );
    Gateway::start("auto", &format!("shards = {shards}"), &text).expect("gateway starts")
}

/// Seconds until midnight UTC.
fn to_midnight() -> u64 {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    86_400 - now % 86_400
}

fn ask(g: &Gateway, tenant: &str) -> support::Response {
    request(g.addr, "GET", "/q", &format!("X-Tenant: {tenant}\r\n"), b"")
}

#[test]
fn two_nodes_share_one_count_that_is_never_exceeded_loses_nothing_and_outlives_a_restart() {
    let Some(redis) = Redis::start() else { return };
    let a = node(redis.port, 2, 20, "deny");
    let b = node(redis.port, 2, 20, "deny");
    let mut admitted = 0;
    for _ in 0..12 {
        let r = ask(&a, "t1");
        assert_eq!(r.status, 200);
        assert_eq!(r.header("ratelimit-policy"), Some("\"daily\";q=20;w=86400"));
        admitted += 1;
    }
    // the other node sees the same count: never more than the 8 left, whatever the first
    // node's shards still hold
    for _ in 0..20 {
        match ask(&b, "t1").status {
            200 => admitted += 1,
            429 => {}
            other => panic!("status {other}"),
        }
    }
    println!("admitted by both nodes before hand-backs: {admitted}");
    assert!((12..=20).contains(&admitted), "{admitted}");
    // what the first node's shards held unspent goes back after a lease: all 20 get through
    assert!(
        support::eventually(|| {
            if ask(&b, "t1").status == 200 {
                admitted += 1;
            }
            admitted == 20
        }),
        "{admitted} of 20 admitted"
    );
    // and then nothing more, on either node, with the window's end in the answer
    for g in [&a, &b, &a, &b] {
        let r = ask(g, "t1");
        assert_eq!(r.status, 429);
        assert_eq!(r.header("content-type"), Some("application/problem+json"));
        let retry: u64 = r.header("retry-after").unwrap().parse().unwrap();
        assert!(retry.abs_diff(to_midnight()) <= 2, "{retry}");
        assert_eq!(
            r.header("ratelimit"),
            Some(format!("\"daily\";r=0;t={retry}").as_str())
        );
    }
    // another tenant has its own count
    assert_eq!(ask(&a, "t2").status, 200);
    // a node started again finds the count where it was
    drop(a);
    let a = node(redis.port, 2, 20, "deny");
    assert_eq!(ask(&a, "t1").status, 429);
    assert_eq!(ask(&a, "t2").status, 200);
}

#[test]
fn rate_limit_and_quota_answer_on_one_line_each_and_the_quota_refuses_when_spent() {
    let Some(redis) = Redis::start() else { return };
    let text = format!(
        "[redis]\naddress = \"127.0.0.1:{}\"\n\n[[route]]\nname = \"r\"\npath = \"/r\"\n[[route.policy]]\nkind = \"rate_limit\"\nrate = 1000\nburst = 1000\nheaders = true\nname = \"burst\"\n[[route.policy]]\nkind = \"quota\"\nlimit = 3\nperiod = \"hour\"\nkey = [\"route\"]\nheaders = true\nname = \"hourly\"\n[[route.policy]]\nkind = \"respond\"\n",
        redis.port
    );
    let g = Gateway::start("auto", "shards = 1", &text).expect("gateway starts");
    let r = request(g.addr, "GET", "/r", "", b"");
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header_all("ratelimit-policy"),
        ["\"burst\";q=1000;w=1, \"hourly\";q=3;w=3600"]
    );
    let limit = r.header_all("ratelimit");
    assert_eq!(limit.len(), 1, "{limit:?}");
    let (burst, hourly) = limit[0].split_once(", ").unwrap();
    assert!(burst.starts_with("\"burst\";r="), "{burst}");
    // the quota's t: seconds until the hour ends
    let t: u64 = hourly.rsplit("t=").next().unwrap().parse().unwrap();
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert!(t.abs_diff(3600 - now % 3600) <= 2, "{hourly}");
    assert!(hourly.starts_with("\"hourly\";r="), "{hourly}");
    assert_eq!(request(g.addr, "GET", "/r", "", b"").status, 200);
    assert_eq!(request(g.addr, "GET", "/r", "", b"").status, 200);
    let r = request(g.addr, "GET", "/r", "", b"");
    assert_eq!(r.status, 429);
    assert!(String::from_utf8_lossy(&r.body).contains("quota exhausted"));
}

#[test]
fn with_redis_away_deny_refuses_and_allow_admits_and_counting_resumes_when_it_is_back() {
    let Some(mut redis) = Redis::start() else {
        return;
    };
    let deny = node(redis.port, 1, 1000, "deny");
    let allow = node(redis.port, 1, 2, "allow");
    assert_eq!(ask(&deny, "x").status, 200);
    redis.stop();
    // once the leases held expire (200 ms), every request is answered at once with 503
    assert!(
        support::eventually(|| (0..5).all(|_| ask(&deny, "x").status == 503)),
        "deny never refused"
    );
    let r = ask(&deny, "x");
    assert_eq!((r.status, r.header("retry-after")), (503, Some("1")));
    // a quota of 2 admits everything while it cannot be counted
    assert!((0..10).all(|_| ask(&allow, "y").status == 200));
    redis.restart();
    assert!(
        support::eventually(|| ask(&deny, "x").status == 200),
        "counting did not resume"
    );
    // a fresh Redis: the quota of 2 counts again
    assert!(support::eventually(|| ask(&allow, "y").status == 429));
}
