//! Validation of connection fields: what `CreateConnection`, `UpdateConnection` and
//! `TestConnection` accept.

use std::collections::HashMap;

use shadowsync_common::target::TargetOptions;
use shadowsync_proto::common::v1::Dialect;

use crate::error::{Result, TaskError};

/// Driver options a connection may carry (what the analysis service and executors understand).
pub use shadowsync_common::target::KNOWN_OPTIONS;

/// The default environment label.
pub const DEFAULT_ENVIRONMENT: &str = "default";

pub fn name(name: &str, field: &str) -> Result<String> {
    let length = name.chars().count();
    if length == 0 || length > 128 || name.trim() != name {
        return Err(TaskError::invalid(
            field,
            "1–128 characters without leading or trailing spaces",
        ));
    }
    Ok(name.to_owned())
}

/// A dialect the schema engine handles.
pub fn dialect(value: i32, field: &str) -> Result<i32> {
    match Dialect::try_from(value) {
        Ok(Dialect::Mysql | Dialect::Mariadb | Dialect::OceanbaseMysql) => Ok(value),
        Ok(Dialect::Postgresql) => Err(TaskError::Unimplemented(
            "PostgreSQL connections are not supported yet".into(),
        )),
        _ => Err(TaskError::invalid(
            field,
            "MYSQL, MARIADB or OCEANBASE_MYSQL",
        )),
    }
}

pub fn required(value: &str, field: &str) -> Result<String> {
    if value.trim().is_empty() {
        return Err(TaskError::invalid(field, "is required"));
    }
    Ok(value.to_owned())
}

/// 0 means the MySQL family's 3306.
pub fn port(port: u32, field: &str) -> Result<u32> {
    match port {
        0 => Ok(3306),
        1..=65535 => Ok(port),
        _ => Err(TaskError::invalid(field, "must be 1–65535")),
    }
}

/// Lower-case `[a-z0-9_-]{1,32}`; empty means `default`.
pub fn environment(value: &str, field: &str) -> Result<String> {
    if value.is_empty() {
        return Ok(DEFAULT_ENVIRONMENT.to_owned());
    }
    let valid = value.len() <= 32
        && value
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-');
    if !valid {
        return Err(TaskError::invalid(field, "lower-case [a-z0-9_-]{1,32}"));
    }
    Ok(value.to_owned())
}

/// Known options with valid values only (`shadowsync_common::target`), so receivers can trust
/// them; the error names the option (`<field>.<option>`).
pub fn options(
    options: &HashMap<String, String>,
    field: &str,
) -> Result<std::collections::BTreeMap<String, String>> {
    TargetOptions::validated(options)
        .map_err(|error| TaskError::invalid(format!("{field}.{}", error.option), error.reason))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_checked_and_named() {
        assert!(name("", "connection.name").is_err());
        assert!(name(&"x".repeat(129), "connection.name").is_err());
        assert_eq!(port(0, "p").unwrap(), 3306);
        assert_eq!(environment("", "e").unwrap(), "default");
        assert!(environment("Prod", "e").is_err());
        let unknown: HashMap<String, String> = [("sslmode".to_string(), "x".to_string())].into();
        let error = options(&unknown, "connection.options").unwrap_err();
        assert!(error.to_string().starts_with("connection.options.sslmode"));
        let weak: HashMap<String, String> =
            [("ssl-mode".to_string(), "sometimes".to_string())].into();
        let error = options(&weak, "connection.options").unwrap_err();
        assert!(error.to_string().starts_with("connection.options.ssl-mode"));
        assert!(matches!(
            dialect(Dialect::Postgresql as i32, "d"),
            Err(TaskError::Unimplemented(_))
        ));
        assert!(dialect(0, "d").is_err());
    }
}
