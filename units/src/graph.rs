//! The dependency graph of loaded units, as pure functions: what a start
//! pulls in, what a stop takes down, and in which order (systemd's
//! `transaction.c` semantics, without the job machinery).
//!
//! Semantics:
//! - Names are canonical: an alias (a unit's `aliases`) is mapped to the
//!   unit's name everywhere, in edges and in arguments.
//! - Requirement edges: `Requires=`, `Wants=`, `BindsTo=` pull the named
//!   units into a start; only `Requires=` and `BindsTo=` propagate a stop
//!   back (a unit stops when a unit it requires stops).
//! - Ordering edges: `a After=b` and `b Before=a` are the same edge: b
//!   starts first, and stops last. Ordering only matters between units that
//!   are in the same set (transaction); edges to other units are ignored.
//! - Names that were never loaded (not found, masked, failed) are nodes
//!   without edges of their own; edges to them are kept.

use crate::model::Unit;
use std::collections::{BTreeMap, BTreeSet};

type Edges = BTreeMap<String, BTreeSet<String>>;

#[derive(Debug, Clone, Default)]
pub struct Graph {
    nodes: BTreeSet<String>,
    alias: BTreeMap<String, String>,
    /// Requires ∪ Wants ∪ BindsTo.
    pulls: Edges,
    /// Requires ∪ BindsTo, and its reverse.
    requires: Edges,
    required_by: Edges,
    /// `after[a]` = units that start before a; `before[b]` the reverse.
    after: Edges,
    before: Edges,
    /// Symmetric.
    conflicts: Edges,
}

/// An ordering cycle, each unit ordered before the next and the last
/// before the first.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("ordering cycle: {}", cycle.join(" → "))]
pub struct CycleError {
    pub cycle: Vec<String>,
}

fn add(edges: &mut Edges, from: &str, to: &str) {
    edges
        .entry(from.to_string())
        .or_default()
        .insert(to.to_string());
}

fn get<'a>(edges: &'a Edges, name: &str) -> impl Iterator<Item = &'a String> {
    edges.get(name).into_iter().flatten()
}

impl Graph {
    pub fn new<'a>(units: impl IntoIterator<Item = &'a Unit>) -> Graph {
        let units: Vec<&Unit> = units.into_iter().collect();
        let mut g = Graph::default();
        for u in &units {
            g.nodes.insert(u.name.clone());
        }
        for u in &units {
            for a in &u.aliases {
                if !g.nodes.contains(a) {
                    g.alias.entry(a.clone()).or_insert_with(|| u.name.clone());
                }
            }
        }
        for u in &units {
            let me = u.name.as_str();
            let s = &u.unit;
            for (list, hard) in [(&s.requires, true), (&s.binds_to, true), (&s.wants, false)] {
                for other in list {
                    let other = g.canonical(other);
                    g.nodes.insert(other.clone());
                    add(&mut g.pulls, me, &other);
                    if hard {
                        add(&mut g.requires, me, &other);
                        add(&mut g.required_by, &other, me);
                    }
                }
            }
            for other in &s.after {
                let other = g.canonical(other);
                g.order(&other, me);
            }
            for other in &s.before {
                let other = g.canonical(other);
                g.order(me, &other);
            }
            for other in &s.conflicts {
                let other = g.canonical(other);
                g.nodes.insert(other.clone());
                add(&mut g.conflicts, me, &other);
                add(&mut g.conflicts, &other, me);
            }
        }
        g
    }

    /// `first` starts before `then`.
    fn order(&mut self, first: &str, then: &str) {
        if first == then {
            return;
        }
        self.nodes.insert(first.to_string());
        self.nodes.insert(then.to_string());
        add(&mut self.after, then, first);
        add(&mut self.before, first, then);
    }

    /// The unit name an alias stands for (the name itself otherwise).
    pub fn canonical(&self, name: &str) -> String {
        self.alias
            .get(name)
            .cloned()
            .unwrap_or_else(|| name.to_string())
    }

    /// Every name the graph knows: loaded units and the names they refer to.
    pub fn names(&self) -> &BTreeSet<String> {
        &self.nodes
    }

    /// The roots and everything they pull in through Requires=, Wants=
    /// and BindsTo=, transitively (including names that are not loaded).
    pub fn start_closure<S: AsRef<str>>(
        &self,
        roots: impl IntoIterator<Item = S>,
    ) -> BTreeSet<String> {
        let roots: Vec<String> = roots
            .into_iter()
            .map(|r| self.canonical(r.as_ref()))
            .collect();
        self.reach(roots, &self.pulls, true)
    }

    /// The units that stop when `name` stops: those that Requires= or
    /// BindsTo= it, transitively (not `name` itself).
    pub fn stop_propagation(&self, name: &str) -> BTreeSet<String> {
        let name = self.canonical(name);
        let mut set = self.reach(vec![name.clone()], &self.required_by, false);
        set.remove(&name);
        set
    }

    fn reach(&self, roots: Vec<String>, edges: &Edges, include_roots: bool) -> BTreeSet<String> {
        let mut seen: BTreeSet<String> = BTreeSet::new();
        let mut stack = roots.clone();
        if include_roots {
            seen.extend(roots);
        }
        while let Some(n) = stack.pop() {
            for m in get(edges, &n) {
                if seen.insert(m.clone()) {
                    stack.push(m.clone());
                }
            }
        }
        seen
    }

    /// Units with a direct Requires= or BindsTo= on `name`.
    pub fn requirers(&self, name: &str) -> BTreeSet<String> {
        get(&self.required_by, &self.canonical(name))
            .cloned()
            .collect()
    }

    /// Units `name` pulls in directly (Requires=, Wants=, BindsTo=).
    pub fn dependencies(&self, name: &str) -> BTreeSet<String> {
        get(&self.pulls, &self.canonical(name)).cloned().collect()
    }

    /// Units ordered before `name` (it must start after them), sorted.
    pub fn must_start_after(&self, name: &str) -> Vec<String> {
        get(&self.after, &self.canonical(name)).cloned().collect()
    }

    /// Units that conflict with `name` (either side declared it).
    pub fn conflicts(&self, name: &str) -> BTreeSet<String> {
        get(&self.conflicts, &self.canonical(name))
            .cloned()
            .collect()
    }

    /// A cycle among the ordering edges between members of `set`, if any:
    /// each name is ordered before the next, the last before the first.
    pub fn ordering_cycle(&self, set: &BTreeSet<String>) -> Option<Vec<String>> {
        // Iterative DFS along "starts before" edges; a grey node reached
        // again closes a cycle.
        #[derive(Clone, Copy, PartialEq)]
        enum Mark {
            Grey,
            Black,
        }
        let mut mark: BTreeMap<&str, Mark> = BTreeMap::new();
        for root in set {
            if mark.contains_key(root.as_str()) {
                continue;
            }
            let mut path: Vec<&str> = vec![root];
            let mut iters = vec![self.successors(root, set)];
            mark.insert(root, Mark::Grey);
            while let Some(it) = iters.last_mut() {
                match it.next() {
                    Some(next) => match mark.get(next) {
                        Some(Mark::Grey) => {
                            let start = path.iter().position(|p| *p == next).unwrap_or(0);
                            return Some(path[start..].iter().map(|s| s.to_string()).collect());
                        }
                        Some(Mark::Black) => {}
                        None => {
                            mark.insert(next, Mark::Grey);
                            path.push(next);
                            iters.push(self.successors(next, set));
                        }
                    },
                    None => {
                        iters.pop();
                        if let Some(done) = path.pop() {
                            mark.insert(done, Mark::Black);
                        }
                    }
                }
            }
        }
        None
    }

    /// Units in `set` ordered after `name` (they start after it).
    fn successors<'a>(
        &'a self,
        name: &str,
        set: &'a BTreeSet<String>,
    ) -> impl Iterator<Item = &'a str> {
        get(&self.before, name)
            .filter(move |n| set.contains(*n))
            .map(String::as_str)
    }

    /// Groups `set` into layers: every unit starts after all units of the
    /// earlier layers it is ordered after, and units within one layer may
    /// start in parallel. Layers are sorted by name.
    pub fn start_layers(&self, set: &BTreeSet<String>) -> Result<Vec<Vec<String>>, CycleError> {
        let (layers, rest) = self.layers(set);
        if rest.is_empty() {
            return Ok(layers);
        }
        let cycle = self
            .ordering_cycle(&rest)
            .unwrap_or_else(|| rest.into_iter().collect());
        Err(CycleError { cycle })
    }

    /// Kahn's algorithm; returns the layers and what a cycle left over.
    fn layers(&self, set: &BTreeSet<String>) -> (Vec<Vec<String>>, BTreeSet<String>) {
        let mut pending: BTreeMap<&str, usize> = set
            .iter()
            .map(|n| {
                (
                    n.as_str(),
                    get(&self.after, n).filter(|m| set.contains(*m)).count(),
                )
            })
            .collect();
        let mut layers = Vec::new();
        loop {
            let ready: Vec<&str> = pending
                .iter()
                .filter(|(_, d)| **d == 0)
                .map(|(n, _)| *n)
                .collect();
            if ready.is_empty() {
                break;
            }
            for n in &ready {
                pending.remove(n);
                for m in self.successors(n, set) {
                    if let Some(d) = pending.get_mut(m) {
                        *d = d.saturating_sub(1);
                    }
                }
            }
            layers.push(ready.into_iter().map(str::to_string).collect());
        }
        (layers, pending.into_keys().map(str::to_string).collect())
    }

    /// The order to stop `set` in: the reverse of the start order (a unit
    /// stops before the units it was started after). Units caught in an
    /// ordering cycle stop first, by name, so a cycle never blocks a stop.
    pub fn stop_order(&self, set: &BTreeSet<String>) -> Vec<String> {
        let (layers, rest) = self.layers(set);
        let mut order: Vec<String> = rest.into_iter().collect();
        for layer in layers.into_iter().rev() {
            order.extend(layer.into_iter().rev());
        }
        order
    }
}

#[cfg(test)]
mod tests;
