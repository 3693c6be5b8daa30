//! The analytics the admin API answers: `GET /analytics` and `GET /tenants/{t}/analytics`
//! (sums over a time range, grouped), and the trend pages (`/trends`, `/tenants/{t}/trends`).
//! Each first takes the shards' figures, so an answer counts every exchange finished before it.

use serde_json::json;

use super::analytics::{Query, Stored};
use super::api::{Answer, Call, Refusal, param, refuse};
use super::{Manager, now_ms, trends};

impl Manager {
    /// The rows of `tenant` (all with `None`) starting in `from..to`, the store's and those
    /// waiting for it.
    fn rows(&mut self, tenant: Option<&str>, from: u64, to: u64) -> Result<Vec<Stored>, Refusal> {
        self.collect();
        let mut rows = match self.store.calls(tenant, from, to, None) {
            Ok(r) => r,
            Err(e) => return refuse(503, format!("the store failed: {e}")),
        };
        let waiting = self
            .pending
            .iter()
            .filter(|r| tenant.is_none_or(|t| r.tenant == t));
        rows.extend(waiting.cloned());
        Ok(rows)
    }

    /// `GET …/analytics?last=1h&by=consumer,class&step=minute` (or `from=MS&to=MS`).
    pub(super) fn analytics(&mut self, tenant: Option<&str>, call: &Call) -> Answer {
        let q = Query::parse(&call.query, now_ms()).or_else(|e| refuse(400, e))?;
        let rows = self.rows(tenant, q.from_ms, q.to_ms)?;
        Ok((
            200,
            json!({
                "tenant": tenant,
                "from_ms": q.from_ms,
                "to_ms": q.to_ms,
                "rows": q.answer(&rows),
                // a gateway-wide figure: the admin's only
                "dropped": if tenant.is_none() { Some(self.dropped) } else { None },
            }),
        ))
    }

    /// `GET …/trends?window=hour|day|week&by=api|consumer`: the HTML page.
    pub(super) fn trends(&mut self, tenant: Option<&str>, call: &Call) -> Result<String, Refusal> {
        let Some(w) = trends::window(param(&call.query, "window")) else {
            return refuse(400, "window: use hour, day or week");
        };
        let by = match param(&call.query, "by").unwrap_or("api") {
            b @ ("api" | "consumer") => b,
            other => return refuse(400, format!("by={other}: use api or consumer")),
        };
        let now = now_ms();
        let rows = self.rows(tenant, now.saturating_sub(w.ms + w.step.ms()), now + 1)?;
        let (scope, base) = match tenant {
            Some(t) => (format!("tenant {t}"), format!("/tenants/{t}/trends")),
            None => ("all tenants".to_string(), "/trends".to_string()),
        };
        Ok(trends::render(&scope, &base, w, by, &rows, now))
    }
}
