//! How an upstream group picks a target for a request: one algorithm per file in this folder
//! and one variant of `Balancer`. Shard-local state, time and inputs passed in.

pub mod round_robin;

use crate::exchange::Exchange;

/// What a balancer chooses among.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Candidates {
    /// Targets in the group (indices `0..count`).
    pub count: usize,
    /// A target not to choose if another is left (the one an attempt just failed on).
    pub avoid: Option<usize>,
}

/// A target-choosing algorithm.
pub trait Balance {
    /// The target for this request, `None` when there is none to choose.
    fn pick(&self, candidates: &Candidates, ex: &Exchange) -> Option<usize>;
}

/// Every algorithm, statically dispatched.
pub enum Balancer {
    /// `round_robin`: each target in turn.
    RoundRobin(round_robin::RoundRobin),
}

impl Balance for Balancer {
    #[inline]
    fn pick(&self, candidates: &Candidates, ex: &Exchange) -> Option<usize> {
        match self {
            Balancer::RoundRobin(b) => b.pick(candidates, ex),
        }
    }
}
