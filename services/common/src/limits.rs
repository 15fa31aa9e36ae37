//! Bounds on the free-text fields of requests, shared by every service so a field means the same
//! length everywhere. A value past its bound is `INVALID_ARGUMENT` naming the field, checked at
//! the edge before anything stores, searches or logs it.

use crate::error::ApiError;

/// Ids given as strings, request ids, lease tokens, executor ids.
pub const ID: usize = 256;
/// Page tokens (opaque, base64 of an offset and a hash).
pub const PAGE_TOKEN: usize = 512;
/// Names: databases, tables, connections, templates, users, roles, host names, option values.
pub const NAME: usize = 256;
/// Search strings (`*_contains`, `search`).
pub const SEARCH: usize = 256;
/// Free text people write: remarks, reasons, descriptions, summaries. (A use case may hold a
/// field to less: task remarks 2,000.)
pub const TEXT: usize = 4096;
/// A decision's comment (the approval service's own bound, so both services agree).
pub const COMMENT: usize = 1024;
/// Messages a database or an executor reports (error messages, log lines).
pub const MESSAGE: usize = 64 * 1024;
/// Entries of a repeated field (table lists, id lists, roles).
pub const LIST: usize = 10_000;

/// `value` has at most `max_chars` characters; otherwise INVALID_ARGUMENT naming `field`.
pub fn bounded(value: &str, field: &str, max_chars: usize) -> Result<(), ApiError> {
    // Bytes bound characters from above: most values are decided without counting.
    if value.len() <= max_chars || value.chars().count() <= max_chars {
        return Ok(());
    }
    Err(ApiError::invalid(
        field,
        format!("at most {max_chars} characters"),
    ))
}

/// At most [`LIST`] values, each [`bounded`]; the error names the entry (`tables[3]`).
pub fn each_bounded<S: AsRef<str>>(
    values: &[S],
    field: &str,
    max_chars: usize,
) -> Result<(), ApiError> {
    if values.len() > LIST {
        return Err(ApiError::invalid(field, format!("at most {LIST} entries")));
    }
    for (index, value) in values.iter().enumerate() {
        if value.as_ref().len() > max_chars {
            bounded(value.as_ref(), &format!("{field}[{index}]"), max_chars)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_past_their_bound_are_refused_naming_the_field() {
        assert!(bounded(&"x".repeat(SEARCH), "search", SEARCH).is_ok());
        let error = bounded(&"x".repeat(60_000), "search", SEARCH).unwrap_err();
        assert_eq!(error.to_string(), "search: at most 256 characters");
        // Characters, not bytes: 256 two-byte characters fit.
        assert!(bounded(&"é".repeat(SEARCH), "search", SEARCH).is_ok());
        assert!(bounded(&"é".repeat(SEARCH + 1), "search", SEARCH).is_err());
    }

    #[test]
    fn lists_name_the_entry() {
        let tables = vec!["a".to_owned(), "b".repeat(NAME + 1)];
        let error = each_bounded(&tables, "tables", NAME).unwrap_err();
        assert!(error.to_string().starts_with("tables[1]: "), "{error}");
        let many = vec![String::new(); LIST + 1];
        assert!(each_bounded(&many, "tables", NAME).is_err());
    }
}
