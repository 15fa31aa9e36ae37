//! Table option changes for `ALTER TABLE`.

use crate::model::Table;
use crate::render;

/// Table option clauses, and the options the desired table lacks with the value that resets
/// each to its default.
pub(super) fn option_changes(
    current: &Table,
    desired: &Table,
) -> (Vec<String>, Vec<(String, String)>) {
    let (old, new) = (&current.options, &desired.options);
    let mut clauses = Vec::new();
    if old.engine != new.engine
        && let Some(engine) = &new.engine
    {
        clauses.push(format!("ENGINE={engine}"));
    }
    if old.charset != new.charset || old.collation != new.collation {
        if let Some(charset) = &new.charset {
            clauses.push(format!("DEFAULT CHARSET={charset}"));
        }
        if let Some(collation) = &new.collation {
            clauses.push(format!("COLLATE={collation}"));
        }
    }
    if old.row_format != new.row_format {
        clauses.push(format!(
            "ROW_FORMAT={}",
            new.row_format.as_deref().unwrap_or("DEFAULT")
        ));
    }
    if old.comment != new.comment {
        clauses.push(format!("COMMENT={}", render::quote_string(&new.comment)));
    }
    for (key, value) in &new.other {
        if old.other.get(key) != Some(value) {
            clauses.push(if value.is_empty() {
                key.clone()
            } else {
                format!("{key}={value}")
            });
        }
    }
    let resets = old
        .other
        .keys()
        .filter(|key| !new.other.contains_key(*key))
        .map(|key| (key.clone(), reset_value(key).to_owned()))
        .collect();
    (clauses, resets)
}

/// The value that returns a table option to "not set".
fn reset_value(key: &str) -> &'static str {
    match key {
        "KEY_BLOCK_SIZE" | "MAX_ROWS" | "MIN_ROWS" | "AVG_ROW_LENGTH" | "CHECKSUM"
        | "DELAY_KEY_WRITE" => "0",
        _ => "DEFAULT",
    }
}
