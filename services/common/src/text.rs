//! Wording shared by the lines people read (task logs, summaries, the CLI).

/// "1 table", "3 tables": a count with its noun, plural unless exactly one.
pub fn counted(count: u64, noun: &str) -> String {
    if count == 1 {
        format!("1 {noun}")
    } else {
        format!("{count} {noun}s")
    }
}

#[cfg(test)]
mod tests {
    use super::counted;

    #[test]
    fn one_is_singular_and_every_other_count_plural() {
        assert_eq!(counted(0, "table"), "0 tables");
        assert_eq!(counted(1, "table"), "1 table");
        assert_eq!(counted(2, "statement"), "2 statements");
    }
}
