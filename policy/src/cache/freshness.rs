//! Whether a response may be stored by a shared cache (RFC 9111 §3, §3.5), how long it is
//! fresh (§4.2.1, heuristics §4.2.2), how old a stored one is (§4.2.3), and what may be done
//! with it for a request (§4.2.4, §4.3, RFC 5861). Times are whole seconds since the Unix
//! epoch, given by the caller; nothing here reads a clock.

use super::directives::{RequestDirectives, ResponseDirectives, Seconds};

/// Longest heuristic freshness (§4.2.2 suggests a fraction of the time since Last-Modified;
/// common practice caps it).
pub const HEURISTIC_MAX: u64 = 24 * 3600;

/// What a cache knows of a response it received.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ResponseFacts {
    /// Its status.
    pub status: u16,
    /// Its `Cache-Control`.
    pub cc: ResponseDirectives,
    /// `Date` (`None`: absent or unreadable; the time it was received stands in, §6.6.1 of
    /// RFC 9110).
    pub date: Option<u64>,
    /// `Expires`: `Some(None)` present but unreadable (already expired, §5.3).
    pub expires: Option<Option<u64>>,
    /// `Last-Modified`.
    pub last_modified: Option<u64>,
    /// `Age` (unreadable ones are ignored).
    pub age: Option<u64>,
    /// It carries `Set-Cookie`.
    pub set_cookie: bool,
    /// Its `Vary` lists `*`.
    pub vary_star: bool,
    /// When the request that got it was sent, and when it arrived.
    pub request_time: u64,
    /// When the response arrived.
    pub response_time: u64,
}

/// What a cache knows of the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RequestFacts {
    /// GET (HEAD is answered from a GET's entry; nothing else is stored).
    pub get: bool,
    /// It carries `Authorization`.
    pub authorization: bool,
    /// Its `Cache-Control`.
    pub cc: RequestDirectives,
}

/// Why a response was not stored (for `Cache-Status: …; detail=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotStored {
    /// Only GET responses are stored.
    Method,
    /// The request said `no-store`.
    RequestNoStore,
    /// The response said `no-store`.
    NoStore,
    /// `private`: not for a shared cache.
    Private,
    /// The request had `Authorization` and the response does not allow sharing it (§3.5).
    Authorization,
    /// Not a final status a cache may store (1xx, 206 partial content).
    Status,
    /// No explicit freshness, and the status is not cacheable by heuristics.
    NoFreshness,
    /// `Set-Cookie` (stored only when the route allows it).
    SetCookie,
    /// `Vary: *` never matches a later request.
    VaryStar,
}

impl NotStored {
    /// The reason as a short token.
    pub fn as_str(self) -> &'static str {
        match self {
            NotStored::Method => "method",
            NotStored::RequestNoStore => "request-no-store",
            NotStored::NoStore => "no-store",
            NotStored::Private => "private",
            NotStored::Authorization => "authorization",
            NotStored::Status => "status",
            NotStored::NoFreshness => "no-freshness",
            NotStored::SetCookie => "set-cookie",
            NotStored::VaryStar => "vary-star",
        }
    }
}

/// Statuses cacheable by heuristics (RFC 9110 §15.1).
pub fn heuristically_cacheable(status: u16) -> bool {
    matches!(
        status,
        200 | 203 | 204 | 206 | 300 | 301 | 308 | 404 | 405 | 410 | 414 | 501
    )
}

impl ResponseFacts {
    /// The explicit freshness it gives, if any: s-maxage, max-age, Expires − Date.
    fn explicit(&self) -> Option<u64> {
        // an unreadable or conflicting max-age or s-maxage makes it stale
        match (self.cc.s_maxage, self.cc.max_age) {
            (Seconds::Is(n), _) => return Some(u64::from(n)),
            (Seconds::Invalid, _) => return Some(0),
            (Seconds::Absent, Seconds::Is(n)) => return Some(u64::from(n)),
            (Seconds::Absent, Seconds::Invalid) => return Some(0),
            (Seconds::Absent, Seconds::Absent) => {}
        }
        let expires = self.expires?;
        let date = self.date.unwrap_or(self.response_time);
        Some(expires.map_or(0, |e| e.saturating_sub(date)))
    }

    /// The freshness lifetime (§4.2.1): explicit, else heuristic where allowed (a tenth of
    /// the time since Last-Modified, at most `HEURISTIC_MAX`), else 0.
    pub fn lifetime(&self) -> u64 {
        if let Some(n) = self.explicit() {
            return n;
        }
        if !(heuristically_cacheable(self.status) || self.cc.public) {
            return 0;
        }
        let date = self.date.unwrap_or(self.response_time);
        self.last_modified
            .map_or(0, |lm| (date.saturating_sub(lm) / 10).min(HEURISTIC_MAX))
    }

    /// Its age at `now` (§4.2.3).
    pub fn age(&self, now: u64) -> u64 {
        let date = self.date.unwrap_or(self.response_time);
        let apparent = self.response_time.saturating_sub(date);
        let delay = self.response_time.saturating_sub(self.request_time);
        let corrected = self.age.unwrap_or(0).saturating_add(delay);
        let initial = apparent.max(corrected);
        initial.saturating_add(now.saturating_sub(self.response_time))
    }

    /// Whether a shared cache may store it as the answer to `req` (§3); `store_cookies`: the
    /// route allows storing `Set-Cookie` responses.
    pub fn storable(&self, req: &RequestFacts, store_cookies: bool) -> Result<(), NotStored> {
        let cc = &self.cc;
        if !req.get {
            return Err(NotStored::Method);
        }
        if req.cc.no_store {
            return Err(NotStored::RequestNoStore);
        }
        if cc.no_store {
            return Err(NotStored::NoStore);
        }
        if cc.private {
            return Err(NotStored::Private);
        }
        if req.authorization && !(cc.must_revalidate || cc.public || cc.s_maxage.present()) {
            return Err(NotStored::Authorization);
        }
        if self.status < 200 || self.status == 206 || self.status > 599 {
            return Err(NotStored::Status);
        }
        if self.vary_star {
            return Err(NotStored::VaryStar);
        }
        if self.set_cookie && !store_cookies {
            return Err(NotStored::SetCookie);
        }
        let explicit = self.explicit().is_some();
        if !(explicit || cc.public || cc.no_cache || heuristically_cacheable(self.status)) {
            return Err(NotStored::NoFreshness);
        }
        Ok(())
    }

    /// What a request may get from this stored response at `now` (§4.2.4, §4.3, RFC 5861).
    pub fn reuse(&self, req: &RequestDirectives, now: u64) -> Reuse {
        let (life, age) = (self.lifetime(), self.age(now));
        if self.cc.no_cache || req.no_cache {
            return Reuse::Revalidate;
        }
        let age_ok = req.max_age.get().is_none_or(|m| age <= u64::from(m))
            && req.max_age != Seconds::Invalid;
        let left = life.saturating_sub(age);
        if life > age && age_ok && req.min_fresh.is_none_or(|m| left >= u64::from(m)) {
            return Reuse::Fresh { ttl: left };
        }
        // fresh, but not as fresh as the client asks; or stale and not to be served so
        if life > age || self.cc.must_revalidate || !age_ok {
            return Reuse::Revalidate;
        }
        let stale = age.saturating_sub(life);
        let allowed = |n: Option<u32>| n.is_some_and(|n| stale <= u64::from(n));
        if let Some(limit) = req.max_stale
            && limit.is_none_or(|n| stale <= u64::from(n))
        {
            return Reuse::Stale { revalidate: false };
        }
        if allowed(self.cc.stale_while_revalidate) {
            return Reuse::Stale { revalidate: true };
        }
        Reuse::StaleIfError {
            allowed: allowed(self.cc.stale_if_error),
        }
    }
}

/// What a stored response may do for a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reuse {
    /// Serve it; fresh for `ttl` more seconds.
    Fresh {
        /// Seconds of freshness left.
        ttl: u64,
    },
    /// Serve it stale (the client allows it, or `stale-while-revalidate`); `revalidate`:
    /// refresh it in the background.
    Stale {
        /// Refresh in the background.
        revalidate: bool,
    },
    /// Ask the origin (conditionally); `allowed`: if it fails or answers 5xx, this may be
    /// served stale instead (`stale-if-error`).
    StaleIfError {
        /// Serving it on an origin error is allowed.
        allowed: bool,
    },
    /// Ask the origin first, conditionally; never serve it unvalidated.
    Revalidate,
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: u64 = 1_000_000;

    fn facts(cc: &str) -> ResponseFacts {
        ResponseFacts {
            status: 200,
            cc: ResponseDirectives::parse([cc.as_bytes()]),
            date: Some(T),
            request_time: T,
            response_time: T,
            ..ResponseFacts::default()
        }
    }

    fn get() -> RequestFacts {
        RequestFacts {
            get: true,
            ..RequestFacts::default()
        }
    }

    #[test]
    fn lifetime_table_rfc9111_4_2_1() {
        let with = |f: &dyn Fn(&mut ResponseFacts)| {
            let mut r = facts("");
            f(&mut r);
            r.lifetime()
        };
        let rows: &[(&str, u64)] = &[
            ("max-age=60", 60),
            ("max-age=60, s-maxage=10", 10), // §5.2.2.10: s-maxage over max-age
            ("max-age=60, max-age=70", 0),   // conflicting: stale
            ("max-age=x", 0),
            ("s-maxage=x, max-age=60", 0),
        ];
        for (cc, want) in rows {
            assert_eq!(facts(cc).lifetime(), *want, "{cc}");
        }
        // Expires − Date; an unreadable Expires is in the past (§5.3)
        assert_eq!(with(&|r| r.expires = Some(Some(T + 300))), 300);
        assert_eq!(with(&|r| r.expires = Some(None)), 0);
        assert_eq!(with(&|r| r.expires = Some(Some(T - 5))), 0);
        // max-age wins over Expires
        assert_eq!(
            with(&|r| {
                r.cc.max_age = Seconds::Is(5);
                r.expires = Some(Some(T + 300));
            }),
            5
        );
        // heuristic: a tenth of the age of Last-Modified, capped, only for cacheable statuses
        assert_eq!(with(&|r| r.last_modified = Some(T - 1000)), 100);
        assert_eq!(with(&|r| r.last_modified = Some(0)), HEURISTIC_MAX);
        assert_eq!(
            with(&|r| {
                r.status = 302;
                r.last_modified = Some(T - 1000);
            }),
            0
        );
        assert_eq!(
            with(&|r| {
                r.status = 302;
                r.cc.public = true;
                r.last_modified = Some(T - 1000);
            }),
            100
        );
    }

    #[test]
    fn age_table_rfc9111_4_2_3() {
        // (date, age field, request sent, response received, now) → current age
        type Row = (Option<u64>, Option<u64>, u64, u64, u64, u64);
        let rows: &[Row] = &[
            (Some(T), None, T, T, T, 0),
            (Some(T), None, T, T, T + 30, 30),      // resident time
            (Some(T - 10), None, T, T, T, 10),      // apparent age (clock skew)
            (Some(T), Some(100), T, T, T + 5, 105), // Age from an upstream cache
            (Some(T), Some(100), T - 2, T, T, 102), // plus the response delay
            (Some(T + 50), None, T, T, T, 0),       // a Date in the future counts as 0
            (None, None, T, T, T + 7, 7),           // no Date: received time
        ];
        for &(date, age, sent, got, now, want) in rows {
            let r = ResponseFacts {
                date,
                age,
                request_time: sent,
                response_time: got,
                ..facts("")
            };
            assert_eq!(r.age(now), want, "{date:?} {age:?} {sent} {got} {now}");
        }
    }

    #[test]
    fn storable_table_rfc9111_3() {
        let auth = RequestFacts {
            authorization: true,
            ..get()
        };
        let post = RequestFacts::default();
        let no_store_req = RequestFacts {
            cc: RequestDirectives::parse([b"no-store".as_slice()], false),
            ..get()
        };
        let rows: &[(&str, u16, &RequestFacts, Result<(), NotStored>)] = &[
            ("max-age=60", 200, &get(), Ok(())),
            ("max-age=60", 200, &post, Err(NotStored::Method)),
            (
                "max-age=60",
                200,
                &no_store_req,
                Err(NotStored::RequestNoStore),
            ),
            ("no-store, max-age=60", 200, &get(), Err(NotStored::NoStore)),
            ("private, max-age=60", 200, &get(), Err(NotStored::Private)),
            ("max-age=60", 200, &auth, Err(NotStored::Authorization)), // §3.5
            ("max-age=60, public", 200, &auth, Ok(())),
            ("s-maxage=60", 200, &auth, Ok(())),
            ("must-revalidate, max-age=60", 200, &auth, Ok(())),
            ("max-age=60", 206, &get(), Err(NotStored::Status)),
            ("max-age=60", 302, &get(), Ok(())), // explicit freshness: any final status
            ("", 302, &get(), Err(NotStored::NoFreshness)),
            ("", 404, &get(), Ok(())),         // heuristically cacheable
            ("no-cache", 302, &get(), Ok(())), // stored, revalidated on each use
        ];
        for (cc, status, req, want) in rows {
            let r = ResponseFacts {
                status: *status,
                ..facts(cc)
            };
            assert_eq!(r.storable(req, false), *want, "{cc} {status}");
        }
        let cookie = ResponseFacts {
            set_cookie: true,
            ..facts("max-age=60")
        };
        assert_eq!(cookie.storable(&get(), false), Err(NotStored::SetCookie));
        assert_eq!(cookie.storable(&get(), true), Ok(()));
        let star = ResponseFacts {
            vary_star: true,
            ..facts("max-age=60")
        };
        assert_eq!(star.storable(&get(), false), Err(NotStored::VaryStar));
    }

    #[test]
    fn reuse_table_rfc9111_4_2_4_and_rfc5861() {
        let req = |cc: &str| RequestDirectives::parse([cc.as_bytes()], false);
        // (response Cache-Control, request Cache-Control, seconds after receipt) → reuse
        let rows: &[(&str, &str, u64, Reuse)] = &[
            ("max-age=60", "", 10, Reuse::Fresh { ttl: 50 }),
            ("max-age=60", "", 60, Reuse::StaleIfError { allowed: false }),
            ("max-age=60, no-cache", "", 10, Reuse::Revalidate),
            ("max-age=60", "no-cache", 10, Reuse::Revalidate),
            ("max-age=60", "max-age=5", 10, Reuse::Revalidate),
            ("max-age=60", "min-fresh=55", 10, Reuse::Revalidate),
            (
                "max-age=60",
                "max-stale",
                1000,
                Reuse::Stale { revalidate: false },
            ),
            (
                "max-age=60",
                "max-stale=5",
                64,
                Reuse::Stale { revalidate: false },
            ),
            (
                "max-age=60",
                "max-stale=5",
                70,
                Reuse::StaleIfError { allowed: false },
            ),
            (
                "max-age=60, must-revalidate",
                "max-stale",
                70,
                Reuse::Revalidate,
            ),
            (
                "max-age=60, stale-while-revalidate=30",
                "",
                80,
                Reuse::Stale { revalidate: true },
            ),
            (
                "max-age=60, stale-while-revalidate=30",
                "",
                91,
                Reuse::StaleIfError { allowed: false },
            ),
            (
                "max-age=60, stale-if-error=100",
                "",
                150,
                Reuse::StaleIfError { allowed: true },
            ),
            (
                "max-age=60, stale-if-error=100",
                "",
                161,
                Reuse::StaleIfError { allowed: false },
            ),
            (
                "max-age=60, must-revalidate, stale-if-error=100",
                "",
                70,
                Reuse::Revalidate,
            ),
        ];
        for (cc, rcc, after, want) in rows {
            let r = facts(cc);
            assert_eq!(
                r.reuse(&req(rcc), T + after),
                *want,
                "{cc} / {rcc} / +{after}s"
            );
        }
    }
}
