//! Usage per consumer, model and provider on one shard: requests, prompt and completion
//! tokens, and the estimated cost, as figures labelled `consumer`, `model`, `provider`
//! (`shardgate_stage_total{name="usage_prompt_tokens",…}`). At most `MAX_CONSUMERS` consumers
//! are told apart per model; the rest are summed as consumer `(other)`.

use std::cell::RefCell;
use std::rc::Rc;

use crate::stage::Figure;

/// Consumers told apart per shard.
pub const MAX_CONSUMERS: usize = 1000;

/// One row's counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tally {
    /// Requests sent to a provider.
    pub requests: u64,
    /// Prompt tokens.
    pub prompt: u64,
    /// Completion tokens.
    pub completion: u64,
    /// Estimated cost, millionths of a dollar.
    pub cost_microusd: u64,
}

/// The table: (consumer, model entry) → counts.
#[derive(Default)]
pub struct Usage {
    rows: RefCell<ahash::AHashMap<(Rc<str>, usize), Tally>>,
    other: Rc<str>,
}

impl Usage {
    /// An empty table.
    pub fn new() -> Usage {
        Usage {
            rows: RefCell::default(),
            other: Rc::from("(other)"),
        }
    }

    /// Adds one exchange.
    pub fn add(&self, consumer: &str, model: usize, t: Tally) {
        let mut rows = self.rows.borrow_mut();
        let fits = rows.len() < MAX_CONSUMERS || rows.keys().any(|(c, _)| &**c == consumer);
        let consumer: Rc<str> = if fits {
            Rc::from(consumer)
        } else {
            self.other.clone()
        };
        let row = rows.entry((consumer, model)).or_default();
        row.requests = row.requests.saturating_add(t.requests);
        row.prompt = row.prompt.saturating_add(t.prompt);
        row.completion = row.completion.saturating_add(t.completion);
        row.cost_microusd = row.cost_microusd.saturating_add(t.cost_microusd);
    }

    /// The figures, labelled by `names(model entry)` = (model, provider).
    pub fn figures(&self, names: &dyn Fn(usize) -> (String, String)) -> Vec<Figure> {
        let rows = self.rows.borrow();
        let mut out = Vec::with_capacity(rows.len() * 4);
        for ((consumer, model), t) in rows.iter() {
            let (m, p) = names(*model);
            let labels = [
                ("consumer", &**consumer),
                ("model", m.as_str()),
                ("provider", p.as_str()),
            ];
            for (name, v) in [
                ("usage_requests", t.requests),
                ("usage_prompt_tokens", t.prompt),
                ("usage_completion_tokens", t.completion),
                ("usage_cost_microusd", t.cost_microusd),
            ] {
                out.push(Figure::labelled(name, v, &labels));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_per_consumer_and_model_with_their_labels() {
        let u = Usage::new();
        let t = Tally {
            requests: 1,
            prompt: 10,
            completion: 5,
            cost_microusd: 7,
        };
        u.add("ann", 0, t);
        u.add("ann", 0, t);
        u.add("b\"ob", 1, t);
        let names = |m: usize| (format!("m{m}"), "p".to_string());
        let figs = u.figures(&names);
        assert_eq!(figs.len(), 8);
        let ann = figs
            .iter()
            .find(|f| f.name == "usage_prompt_tokens" && f.labels.iter().any(|(_, v)| v == "ann"));
        let labels = |f: &Figure| {
            f.labels
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(",")
        };
        assert_eq!(
            ann.map(|f| (f.value, labels(f))),
            Some((20, "consumer=ann,model=m0,provider=p".to_string()))
        );
        // escaped where the exposition is written (core's metrics)
        assert!(figs.iter().any(|f| labels(f).starts_with("consumer=b\"ob")));
    }
}
