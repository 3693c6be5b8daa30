//! Model routing: the entries sharing a model name split its requests by weight (in turns,
//! per shard), and an entry's `fallback` names the models tried in turn when its provider
//! fails.

use std::cell::Cell;

use super::config::Model;

/// One model name and its entries.
struct Name {
    name: String,
    /// Indices into the models (their weights say their shares).
    entries: Vec<usize>,
    total: u64,
    turn: Cell<u64>,
}

/// The route's models by name.
pub struct Routing {
    names: Vec<Name>,
}

impl Routing {
    /// Groups `models` by name.
    pub fn new(models: &[Model]) -> Routing {
        let mut names: Vec<Name> = Vec::new();
        for (i, m) in models.iter().enumerate() {
            match names.iter_mut().find(|n| n.name == m.name) {
                Some(n) => {
                    n.entries.push(i);
                    n.total += u64::from(m.weight);
                }
                None => names.push(Name {
                    name: m.name.clone(),
                    entries: vec![i],
                    total: u64::from(m.weight),
                    turn: Cell::new(0),
                }),
            }
        }
        Routing { names }
    }

    /// The entry serving the next request for `name` (weighted turns).
    pub fn pick(&self, name: &str, models: &[Model]) -> Option<usize> {
        let n = self.names.iter().find(|n| n.name == name)?;
        let turn = n.turn.get();
        n.turn.set(turn.wrapping_add(1));
        let mut at = turn % n.total.max(1);
        for &i in &n.entries {
            let w = u64::from(models.get(i)?.weight);
            if at < w {
                return Some(i);
            }
            at -= w;
        }
        n.entries.first().copied()
    }

    /// An entry of `name` not in `tried` (a fallback): the heaviest such one.
    pub fn untried(&self, name: &str, models: &[Model], tried: &[usize]) -> Option<usize> {
        let n = self.names.iter().find(|n| n.name == name)?;
        n.entries
            .iter()
            .copied()
            .filter(|i| !tried.contains(i))
            .max_by_key(|&i| models.get(i).map_or(0, |m| m.weight))
    }

    /// Whether `name` is offered.
    pub fn has(&self, name: &str) -> bool {
        self.names.iter().any(|n| n.name == name)
    }

    /// The names offered, for an error.
    pub fn offered(&self) -> String {
        let names: Vec<&str> = self.names.iter().map(|n| n.name.as_str()).collect();
        names.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn model(name: &str, weight: u32) -> Model {
        Model {
            name: name.into(),
            provider: 0,
            model: name.into(),
            max_tokens: 1,
            weight,
            fallback: Vec::new(),
            price: (0.0, 0.0),
        }
    }

    #[test]
    fn splits_a_name_by_weight() {
        let models = [model("a", 3), model("b", 1), model("a", 1)];
        let r = Routing::new(&models);
        let picks: Vec<_> = (0..8).filter_map(|_| r.pick("a", &models)).collect();
        assert_eq!(picks, vec![0, 0, 0, 2, 0, 0, 0, 2]);
        assert_eq!(r.pick("b", &models), Some(1));
        assert_eq!(r.pick("c", &models), None);
        assert_eq!(r.offered(), "a, b");
        // a fallback takes an entry not tried yet, whatever the turn
        assert_eq!(r.untried("a", &models, &[0]), Some(2));
        assert_eq!(r.untried("a", &models, &[0, 2]), None);
    }
}
