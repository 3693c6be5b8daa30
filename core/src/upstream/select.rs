//! Target choice for an upstream group: the group's balancer (`policy::balance`, round robin
//! today) over its targets. Health state and load plug in here (traffic-management issue).

use policy::Exchange;
use policy::balance::{Balance, Balancer, Candidates, round_robin::RoundRobin};

/// Chooses targets of one upstream group on one shard.
pub struct Selector {
    balancer: Balancer,
}

impl Selector {
    /// Round robin, starting at the shard's own offset.
    pub fn round_robin(shard: usize) -> Selector {
        Selector {
            balancer: Balancer::RoundRobin(RoundRobin::starting_at(shard)),
        }
    }

    /// The target for this request among `count`, avoiding `avoid` when another is left.
    #[inline]
    pub fn pick(&self, count: usize, avoid: Option<usize>, ex: &Exchange) -> Option<usize> {
        self.balancer.pick(&Candidates { count, avoid }, ex)
    }
}
