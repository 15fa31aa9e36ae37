//! Constraint names for shadows, and the dependency order of tables.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use sha2::{Digest, Sha256};

use crate::naming::{IDENTIFIER_LIMIT, ShadowNaming};

/// Hands out constraint names that carry the affix, fit the identifier limit and are unique
/// among the names already in use (compared case-insensitively, as the servers do).
pub struct NameAllocator {
    used: HashSet<String>,
}

impl NameAllocator {
    pub fn new(used: impl IntoIterator<Item = String>) -> Self {
        Self {
            used: used.into_iter().map(|n| n.to_lowercase()).collect(),
        }
    }

    /// The shadow's name for a source constraint called `source_name`. When the affixed name is
    /// too long or taken, it is shortened and given a hash of the full name, so it stays
    /// deterministic and never silently collides.
    pub fn allocate(&mut self, naming: &ShadowNaming, source_name: &str) -> String {
        let base = naming.apply(source_name);
        if base.chars().count() <= IDENTIFIER_LIMIT && self.used.insert(base.to_lowercase()) {
            return base;
        }
        let stem: String = base.chars().take(IDENTIFIER_LIMIT - 9).collect();
        for attempt in 0u32.. {
            let digest = Sha256::digest(format!("{base}\u{0}{attempt}").as_bytes());
            let candidate = format!("{stem}_{}", &hex::encode(digest)[..8]);
            if self.used.insert(candidate.to_lowercase()) {
                return candidate;
            }
        }
        base
    }
}

/// Orders tables so that each comes after the tables it depends on. `edges[t]` are the tables
/// `t` depends on. Edges closing a cycle are ignored (those foreign keys are added later), and
/// ties are broken by name, so the order is deterministic.
pub fn dependency_order(edges: &BTreeMap<String, BTreeSet<String>>) -> Vec<String> {
    // A node is marked when first visited; an edge to a marked node is either done (fine) or
    // on the current path (a cycle, ignored).
    let mut marks: BTreeSet<&str> = BTreeSet::new();
    let mut order = Vec::new();
    for start in edges.keys() {
        if marks.contains(start.as_str()) {
            continue;
        }
        // Iterative depth-first search: (node, index of the next dependency to visit).
        let mut stack: Vec<(&str, Vec<&str>, usize)> = vec![(
            start.as_str(),
            edges[start].iter().map(String::as_str).collect(),
            0,
        )];
        marks.insert(start.as_str());
        while let Some((node, deps, next)) = stack.last_mut() {
            if let Some(dep) = deps.get(*next).copied() {
                *next += 1;
                if marks.contains(dep) || !edges.contains_key(dep) {
                    continue;
                }
                marks.insert(dep);
                let dep_edges = edges
                    .get(dep)
                    .map(|d| d.iter().map(String::as_str).collect())
                    .unwrap_or_default();
                stack.push((dep, dep_edges, 0));
            } else {
                order.push((*node).to_owned());
                stack.pop();
            }
        }
    }
    order
}

#[cfg(test)]
mod tests {
    use super::*;

    fn edges(pairs: &[(&str, &[&str])]) -> BTreeMap<String, BTreeSet<String>> {
        pairs
            .iter()
            .map(|(t, deps)| {
                (
                    (*t).to_owned(),
                    deps.iter().map(|d| (*d).to_owned()).collect(),
                )
            })
            .collect()
    }

    #[test]
    fn parents_come_first_and_cycles_terminate() {
        let order = dependency_order(&edges(&[("a", &["b"]), ("b", &["c"]), ("c", &[])]));
        assert_eq!(order, vec!["c", "b", "a"]);
        let order = dependency_order(&edges(&[("a", &["b"]), ("b", &["a"])]));
        assert_eq!(order.len(), 2);
    }

    #[test]
    fn names_are_unique_and_short() {
        let naming = ShadowNaming::prefix(None).unwrap();
        let mut names = NameAllocator::new(vec!["_test_fk".to_owned()]);
        let first = names.allocate(&naming, "fk");
        assert_ne!(first, "_test_fk");
        let long = names.allocate(&naming, &"x".repeat(64));
        assert!(long.len() <= 64);
        assert!(long.starts_with("_test_x"));
    }
}
