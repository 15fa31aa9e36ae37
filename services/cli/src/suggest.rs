//! "Did you mean": the closest existing names to a misspelt one.

/// Up to three names within a small edit distance of `wanted` (case-insensitive), closest first:
/// a typo, a swapped pair, a wrong case. Empty when nothing is close.
pub fn closest<'a>(wanted: &str, names: impl IntoIterator<Item = &'a str>) -> Vec<String> {
    let wanted = wanted.to_lowercase();
    // A third of the name, at least one and at most three edits: `ordrs` finds `orders`, `a`
    // does not find every one-letter name.
    let limit = (wanted.chars().count() / 3).clamp(1, 3);
    let mut scored: Vec<(usize, String)> = names
        .into_iter()
        .filter_map(|name| {
            let distance = edit_distance(&wanted, &name.to_lowercase());
            (distance <= limit).then(|| (distance, name.to_string()))
        })
        .collect();
    scored.sort();
    scored.dedup();
    scored.into_iter().take(3).map(|(_, name)| name).collect()
}

/// `; did you mean `a` or `b`?`, or nothing.
pub fn hint(candidates: &[String]) -> String {
    match candidates {
        [] => String::new(),
        [one] => format!("; did you mean `{one}`?"),
        [first @ .., last] => format!(
            "; did you mean {} or `{last}`?",
            first
                .iter()
                .map(|name| format!("`{name}`"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// Optimal string alignment distance: insertions, deletions, substitutions and adjacent
/// transpositions each cost one.
fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut rows = vec![vec![0_usize; b.len() + 1]; a.len() + 1];
    for (i, row) in rows.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in rows[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let substitution = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (rows[i - 1][j] + 1)
                .min(rows[i][j - 1] + 1)
                .min(rows[i - 1][j - 1] + substitution);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(rows[i - 2][j - 2] + 1);
            }
            rows[i][j] = best;
        }
    }
    rows[a.len()][b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typos_transpositions_and_case_find_the_name() {
        let names = ["orders", "order_items", "customers", "Local"];
        assert_eq!(closest("ordrs", names), ["orders"]);
        assert_eq!(closest("cusotmers", names), ["customers"]);
        assert_eq!(closest("local", names), ["Local"]);
        assert!(closest("inventory", names).is_empty());
        assert!(closest("x", ["y", "orders"]).len() <= 1);
    }

    #[test]
    fn hints_read_as_a_sentence() {
        assert_eq!(hint(&[]), "");
        assert_eq!(hint(&["orders".into()]), "; did you mean `orders`?");
        assert_eq!(
            hint(&["a".into(), "b".into(), "c".into()]),
            "; did you mean `a`, `b` or `c`?"
        );
    }
}
