//! Which upstream group a route's request goes to: the first `[[route.when]]` whose header or
//! cookie matches, else the weighted split (drawn by smooth weighted round robin, or by a
//! hash of the `split_on` key so a client stays on one side), else the route's `upstream`.
//! Also which requests the route mirrors. Shard-local state.

use std::cell::Cell;

use conf::route_traffic::RouteTraffic;
use policy::Exchange;
use policy::balance::ip_hash::IpHash;
use policy::balance::key::{KeySource, cookie};
use policy::balance::weighted_round_robin::WeightedRoundRobin;
use policy::balance::{TargetState, pick_target};
use proto::RequestHead;

/// One `[[route.when]]`.
struct When {
    header: bool,
    name: Box<[u8]>,
    value: Option<Box<[u8]>>,
    group: usize,
}

/// How a sticky split draws.
enum Draw {
    /// Each request by weight.
    Turns(WeightedRoundRobin),
    /// By a hash of the key.
    Sticky(IpHash, KeySource),
}

/// A route's choice of group.
pub struct GroupChoice {
    fixed: Option<usize>,
    when: Box<[When]>,
    /// The split's groups and their weights as balancer state.
    split: Box<[usize]>,
    shares: Box<[TargetState]>,
    draw: Option<Draw>,
    /// `(group, percent)` of the mirror, and the running share that picks copies.
    mirror: Option<(usize, u8)>,
    mirror_acc: Cell<u32>,
}

impl GroupChoice {
    /// The choice of a route forwarding to `fixed` with `t`'s split and matches.
    pub fn new(fixed: Option<usize>, t: &RouteTraffic) -> GroupChoice {
        let weights: Vec<u32> = t.split.iter().map(|&(_, w)| w).collect();
        let draw = (!t.split.is_empty()).then(|| match &t.split_on {
            None => Draw::Turns(WeightedRoundRobin::new(weights.len())),
            // (validation keeps `param:` out of split_on)
            Some(on) => Draw::Sticky(IpHash::new(&weights), KeySource::from(on)),
        });
        GroupChoice {
            fixed,
            when: t
                .when
                .iter()
                .map(|w| When {
                    header: w.header,
                    name: w.name.as_bytes().into(),
                    value: w.value.as_ref().map(|v| v.as_bytes().into()),
                    group: w.upstream,
                })
                .collect(),
            split: t.split.iter().map(|&(g, _)| g).collect(),
            // a weight of 0 drains its group: never drawn while another is left
            shares: weights
                .iter()
                .map(|&w| TargetState::new(w, w == 0))
                .collect(),
            draw,
            mirror: t.mirror,
            mirror_acc: Cell::new(0),
        }
    }

    /// The group for this request (`None`: the route has none).
    pub fn pick(&self, head: &RequestHead, buf: &[u8], ex: &Exchange) -> Option<usize> {
        for w in self.when.iter() {
            let got = if w.header {
                head.fields
                    .iter()
                    .find(|f| f.name.get(buf).eq_ignore_ascii_case(&w.name))
                    .map(|f| f.value.get(buf))
            } else {
                cookie(head, buf, &w.name)
            };
            if let Some(v) = got
                && w.value
                    .as_deref()
                    .is_none_or(|want| proto::chars::trim_ows(v) == want)
            {
                return Some(w.group);
            }
        }
        let Some(draw) = &self.draw else {
            return self.fixed;
        };
        let share = match draw {
            Draw::Turns(b) => pick_target(b, &self.shares, ex.now, 0, None),
            Draw::Sticky(b, key) => {
                let key = key
                    .key(head, buf, ex)
                    .or_else(|| Some(policy::balance::key::ip_key(ex.client_ip)));
                pick_target(b, &self.shares, ex.now, 0, key)
            }
        };
        share.and_then(|i| self.split.get(i).copied())
    }

    /// The group this request is copied to, if it is one of the mirrored share.
    pub fn mirror(&self) -> Option<usize> {
        let (group, percent) = self.mirror?;
        let acc = self.mirror_acc.get() + u32::from(percent);
        if acc >= 100 {
            self.mirror_acc.set(acc - 100);
            Some(group)
        } else {
            self.mirror_acc.set(acc);
            None
        }
    }
}
