//! Partition maintenance without re-partitioning: when the partitioning function, its columns
//! and its subpartitioning are unchanged, `ADD`, `DROP`, `REORGANIZE` or `COALESCE PARTITION`
//! touch only the partitions that differ instead of copying the whole table.

use crate::model::{PartitionBound, PartitionMethod, Partitioning};
use crate::render::{self, quote_identifier};

/// The clause that takes `current` to `desired` partitioning (both `Some`, and different), or
/// `None` when only a full `PARTITION BY` can do it.
pub(super) fn maintenance(current: &Partitioning, desired: &Partitioning) -> Option<String> {
    let same_function = current.method == desired.method
        && current.linear == desired.linear
        && current.expression == desired.expression
        && current.key_algorithm == desired.key_algorithm
        && current.subpartitioning.is_none()
        && desired.subpartitioning.is_none();
    if !same_function {
        return None;
    }
    match current.method {
        PartitionMethod::Hash | PartitionMethod::Key => hash_count(current, desired),
        PartitionMethod::Range
        | PartitionMethod::RangeColumns
        | PartitionMethod::List
        | PartitionMethod::ListColumns => listed(current, desired),
        PartitionMethod::SystemTime => None,
    }
}

/// `PARTITIONS n` of HASH/KEY: `ADD PARTITION PARTITIONS k` or `COALESCE PARTITION k`.
fn hash_count(current: &Partitioning, desired: &Partitioning) -> Option<String> {
    if !current.partitions.is_empty() || !desired.partitions.is_empty() {
        return None;
    }
    let (from, to) = (current.count.unwrap_or(1), desired.count.unwrap_or(1));
    match to.cmp(&from) {
        std::cmp::Ordering::Greater => Some(format!("ADD PARTITION PARTITIONS {}", to - from)),
        std::cmp::Ordering::Less => Some(format!("COALESCE PARTITION {}", from - to)),
        std::cmp::Ordering::Equal => None,
    }
}

/// RANGE/LIST partitions listed one by one.
fn listed(current: &Partitioning, desired: &Partitioning) -> Option<String> {
    if current.count.is_some() || desired.count.is_some() {
        return None;
    }
    let (old, new) = (&current.partitions, &desired.partitions);
    if old.is_empty() || new.is_empty() {
        return None;
    }
    let prefix = old.iter().zip(new).take_while(|(a, b)| a == b).count();
    if prefix == old.len() {
        // Only appended partitions.
        let added: Vec<String> = new[prefix..].iter().map(render::partition).collect();
        return Some(format!("ADD PARTITION ({})", added.join(", ")));
    }
    // Only removed partitions: every desired one is an old one, in order.
    let mut remaining = new.iter().peekable();
    let mut dropped = Vec::new();
    for partition in old {
        if remaining.peek() == Some(&partition) {
            remaining.next();
        } else {
            dropped.push(quote_identifier(&partition.name));
        }
    }
    if remaining.peek().is_none() && !dropped.is_empty() && dropped.len() < old.len() {
        return Some(format!("DROP PARTITION {}", dropped.join(", ")));
    }
    // Otherwise rewrite the changed run of partitions between a common prefix and suffix.
    let max_suffix = old.len().min(new.len()) - prefix;
    let mut suffix = old
        .iter()
        .rev()
        .zip(new.iter().rev())
        .take(max_suffix)
        .take_while(|(a, b)| a == b)
        .count();
    let mut start = prefix;
    if old.len() - suffix == start {
        // Nothing old in the run (a partition inserted): split the partition after it, whose
        // range the new one takes a part of (or, at the end, the one before).
        if suffix > 0 {
            suffix -= 1;
        } else {
            start -= 1;
        }
    }
    let old_run = &old[start..old.len() - suffix];
    let new_run = &new[start..new.len() - suffix];
    if new_run.is_empty() {
        return None;
    }
    let ranged = matches!(
        current.method,
        PartitionMethod::Range | PartitionMethod::RangeColumns
    );
    // A RANGE reorganization must cover the same range, except that the last partitions may
    // extend it; anything the text cannot prove is left to a full re-partition.
    if ranged {
        let upper = |run: &[crate::model::Partition]| run.last().map(|p| p.bound.clone());
        let (old_upper, new_upper) = (upper(old_run), upper(new_run));
        if old_upper != new_upper && (suffix > 0 || !extends(old_upper, new_upper)) {
            return None;
        }
    }
    // Reorganized partitions may be renamed, but a name may not stay in use elsewhere.
    let names: Vec<String> = old_run.iter().map(|p| quote_identifier(&p.name)).collect();
    let definitions: Vec<String> = new_run.iter().map(render::partition).collect();
    Some(format!(
        "REORGANIZE PARTITION {} INTO ({})",
        names.join(", "),
        definitions.join(", ")
    ))
}

/// True when the `new` upper bound is provably at or above `old`.
fn extends(old: Option<PartitionBound>, new: Option<PartitionBound>) -> bool {
    match (old, new) {
        (_, Some(PartitionBound::MaxValue)) => true,
        (Some(PartitionBound::LessThan(a)), Some(PartitionBound::LessThan(b))) => {
            match (a.trim().parse::<i128>(), b.trim().parse::<i128>()) {
                (Ok(a), Ok(b)) => b >= a,
                _ => false,
            }
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Partition;

    fn range(bounds: &[(&str, Option<i64>)]) -> Partitioning {
        Partitioning {
            method: PartitionMethod::Range,
            linear: false,
            expression: "`y`".into(),
            key_algorithm: None,
            count: None,
            subpartitioning: None,
            partitions: bounds
                .iter()
                .map(|(name, bound)| Partition {
                    name: (*name).into(),
                    bound: bound.map_or(PartitionBound::MaxValue, |b| {
                        PartitionBound::LessThan(b.to_string())
                    }),
                    engine: None,
                    comment: String::new(),
                    extra: Vec::new(),
                    subpartitions: Vec::new(),
                })
                .collect(),
        }
    }

    #[test]
    fn appended_dropped_and_reorganized_range_partitions() {
        let old = range(&[("p0", Some(10)), ("p1", Some(20))]);
        let added = range(&[("p0", Some(10)), ("p1", Some(20)), ("p2", Some(30))]);
        assert_eq!(
            maintenance(&old, &added).as_deref(),
            Some("ADD PARTITION (PARTITION `p2` VALUES LESS THAN (30))")
        );
        assert_eq!(
            maintenance(&added, &old).as_deref(),
            Some("DROP PARTITION `p2`")
        );
        let split = range(&[("p0", Some(10)), ("p1a", Some(15)), ("p1", Some(20))]);
        assert_eq!(
            maintenance(&old, &split).as_deref(),
            Some(
                "REORGANIZE PARTITION `p1` INTO (PARTITION `p1a` VALUES LESS THAN (15), \
                 PARTITION `p1` VALUES LESS THAN (20))"
            )
        );
        // A middle partition whose bound moves leaves a gap or overlap: full re-partition.
        let moved = range(&[("p0", Some(10)), ("p1", Some(25)), ("p2", None)]);
        let base = range(&[("p0", Some(10)), ("p1", Some(20)), ("p2", None)]);
        assert_eq!(maintenance(&base, &moved), None);
        // The last partition may extend the range.
        let extended = range(&[("p0", Some(10)), ("p1", Some(25))]);
        assert!(maintenance(&old, &extended).is_some());
        let shrunk = range(&[("p0", Some(10)), ("p1", Some(15))]);
        assert_eq!(maintenance(&old, &shrunk), None);
    }

    #[test]
    fn hash_partition_counts() {
        let mut old = range(&[]);
        old.method = PartitionMethod::Hash;
        old.count = Some(4);
        let mut new = old.clone();
        new.count = Some(6);
        assert_eq!(
            maintenance(&old, &new).as_deref(),
            Some("ADD PARTITION PARTITIONS 2")
        );
        assert_eq!(
            maintenance(&new, &old).as_deref(),
            Some("COALESCE PARTITION 2")
        );
        new.expression = "`id`".into();
        assert_eq!(maintenance(&old, &new), None);
    }
}
