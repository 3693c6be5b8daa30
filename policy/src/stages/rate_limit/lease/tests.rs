//! The lease state machine of one shard, with the broker played by hand.

use super::*;

fn leases(pool: Pool, max_batch: u32) -> Global {
    let redis: conf::redis::RedisConf =
        match toml::from_str("lease_ttl = \"1s\"\ncommand_timeout = \"100ms\"") {
            Ok(r) => r,
            Err(e) => panic!("{e}"),
        };
    let spec = Spec {
        prefix: "p:".into(),
        pool,
        max_batch,
        down: OnDown::Local,
        address: Address::default(),
        max_keys: 100,
    };
    Global::new(spec, &redis)
}

fn global(burst: f64, copies: f64) -> Global {
    let pool = Pool::Bucket {
        per_ms: 0.1,
        burst,
        keep_ms: 60_000,
    };
    leases(pool, ((burst / (2.0 * copies)).floor() as u32).max(1))
}

fn quota() -> Global {
    let pool = Pool::Quota {
        limit: 100,
        period: Period::Day,
        copies: 2,
    };
    leases(pool, 25)
}

fn given_back() -> Vec<GiveBack> {
    crate::letter::take()
        .into_iter()
        .filter_map(|l| l.body.downcast::<GiveBack>().ok().map(|a| *a))
        .collect()
}

fn granted(hash: u64, tokens: u32, next_ms: u64, left: u64, window: u64) -> Reply {
    Reply::Granted {
        hash,
        tokens,
        next_ms,
        left,
        window,
    }
}

#[test]
fn a_quota_admits_what_it_leased_and_says_what_is_left_and_when_the_window_ends() {
    let q = quota();
    let t0 = Instant::now();
    let ms = |n: u64| t0 + Duration::from_millis(n);
    assert!(matches!(q.decide(3, t0), Decision::Wait(_)));
    let sent = asks();
    assert_eq!(sent.len(), 1);
    assert!(matches!(sent[0].pool, Pool::Quota { limit: 100, .. }));
    // 2 tokens, 8 left in Redis, the window ends in 5 s
    q.answer(granted(3, 2, 5000, 8, 77));
    assert_eq!(
        q.decide(3, ms(10)),
        Decision::Admit(Held {
            tokens: 1.0,
            left: 8,
            resets_in: Some(Duration::from_millis(4990)),
        })
    );
    // the last token held: the next lease is asked for
    assert!(matches!(q.decide(3, ms(20)), Decision::Admit(_)));
    assert_eq!(asks().len(), 1);
    // the count is spent: refused until the window ends, asked again after a lease's time
    q.answer(granted(3, 0, 4980, 0, 77));
    assert_eq!(q.decide(3, ms(30)), Decision::Refuse(5));
    assert_eq!(q.decide(3, ms(1000)), Decision::Refuse(4));
    assert!(asks().is_empty());
    assert!(matches!(q.decide(3, ms(1100)), Decision::Wait(_)));
    assert_eq!(asks().len(), 1);
    // a new window: what was held of the old one is not spent in it
    q.answer(granted(3, 1, 86_400_000, 99, 78));
    assert!(matches!(q.decide(3, ms(1110)), Decision::Admit(_)));
    assert!(matches!(q.decide(3, ms(1120)), Decision::Wait(_)));
}

#[test]
fn unspent_quota_tokens_go_back_after_a_lease_but_not_into_a_window_that_ended() {
    let q = quota();
    let t0 = Instant::now();
    let ms = |n: u64| t0 + Duration::from_millis(n);
    let _ = q.decide(1, t0);
    let _ = q.decide(2, t0);
    let _ = asks();
    // key 1: 5 tokens, the window lasts; key 2: 5 tokens, the window ends in 500 ms
    q.answer(granted(1, 5, 60_000, 50, 9));
    q.answer(granted(2, 5, 500, 50, 9));
    assert!(matches!(q.decide(1, ms(10)), Decision::Admit(_)));
    // nothing is due before the first lease held expires
    assert_eq!(q.sweep(ms(100)), Some(ms(1000)));
    assert!(given_back().is_empty());
    // key 2's window ended: it keeps what it granted; key 1 hands back what it did not spend
    assert_eq!(q.sweep(ms(1000)), None);
    assert_eq!(
        given_back(),
        [GiveBack {
            key: "p:0000000000000001".into(),
            tokens: 4,
            window: 9,
        }]
    );
    assert_eq!(q.counts[5].get(), 4);
    // nothing is held any more: the next request asks again
    assert!(matches!(q.decide(1, ms(1100)), Decision::Wait(_)));
}

#[test]
fn a_quota_dropped_hands_back_what_it_holds() {
    let q = quota();
    let _ = q.decide(4, Instant::now());
    let _ = asks();
    q.answer(granted(4, 3, 60_000, 10, 5));
    drop(q);
    let back = given_back();
    assert_eq!(
        back.iter()
            .map(|g| (g.tokens, g.window))
            .collect::<Vec<_>>(),
        [(3, 5)]
    );
}

fn asks() -> Vec<Ask> {
    crate::letter::take()
        .into_iter()
        .filter_map(|l| l.body.downcast::<Ask>().ok().map(|a| *a))
        .collect()
}

#[test]
fn a_key_waits_for_its_first_lease_then_spends_and_asks_again_before_running_out() {
    let g = global(40.0, 2.0);
    let t0 = Instant::now();
    let Decision::Wait(gate) = g.decide(7, t0) else {
        panic!("no wait");
    };
    // a second request meanwhile waits on the same answer
    assert_eq!(g.decide(7, t0), Decision::Wait(gate.clone()));
    let sent = asks();
    assert_eq!(sent.len(), 1);
    assert_eq!(
        (sent[0].key.as_str(), sent[0].want),
        ("p:0000000000000007", 1)
    );
    g.answer(Reply::Granted {
        hash: 7,
        tokens: 6,
        next_ms: 0,
        left: 0,
        window: 0,
    });
    assert!(gate.is_open());
    for left in [5.0, 4.0, 3.0, 2.0, 1.0, 0.0] {
        assert_eq!(
            g.decide(7, t0),
            Decision::Admit(Held {
                tokens: left,
                left: 0,
                resets_in: None
            })
        );
    }
    // the batch grew with the key's rate here (8 requests seen): 2 tokens, asked below 1
    let again = asks();
    assert_eq!((again.len(), again[0].want), (1, 2));
    g.answer(Reply::Granted {
        hash: 7,
        tokens: 2,
        next_ms: 0,
        left: 0,
        window: 0,
    });
    // the lease expires a second after it was asked for
    assert!(matches!(
        g.decide(7, t0 + Duration::from_millis(1001)),
        Decision::Wait(_)
    ));
}

#[test]
fn an_empty_bucket_refuses_until_redis_said_and_a_silent_broker_means_down() {
    let g = global(40.0, 2.0);
    let t0 = Instant::now();
    let _ = g.decide(1, t0);
    g.answer(Reply::Granted {
        hash: 1,
        tokens: 0,
        next_ms: 2500,
        left: 0,
        window: 0,
    });
    assert_eq!(
        g.decide(1, t0 + Duration::from_millis(10)),
        Decision::Refuse(3)
    );
    assert!(matches!(
        g.decide(1, t0 + Duration::from_millis(2500)),
        Decision::Wait(_)
    ));
    let _ = asks();
    // no answer within command_timeout: down for a second, then asked again
    let late = t0 + Duration::from_millis(2601);
    assert_eq!(g.decide(1, late), Decision::Down);
    assert_eq!(
        g.decide(1, late + Duration::from_millis(500)),
        Decision::Down
    );
    assert!(matches!(
        g.decide(1, late + Duration::from_millis(1000)),
        Decision::Wait(_)
    ));
    // the broker saying Redis is down is the same
    g.answer(Reply::Down { hash: 1 });
    assert_eq!(
        g.decide(1, late + Duration::from_millis(1001)),
        Decision::Down
    );
    assert_eq!(g.counts[3].get(), 2);
}

#[test]
fn batches_are_bounded_by_the_burst_over_every_copy() {
    let g = global(40.0, 4.0);
    assert_eq!((g.batch(0.0), g.batch(10.0), g.batch(1000.0)), (1, 2, 5));
}
