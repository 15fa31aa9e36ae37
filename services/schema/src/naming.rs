//! Shadow naming rules: prefix or suffix, and the identifier limit.

use serde::{Deserialize, Serialize};

use crate::error::{Result, SchemaError};

/// MySQL-family identifier limit (characters) for tables and constraints.
pub const IDENTIFIER_LIMIT: usize = 64;

/// A validated affix: 1–32 characters of `[A-Za-z0-9_]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Affix(String);

impl Affix {
    /// Validates `affix`.
    ///
    /// Fails with [`SchemaError::InvalidAffix`] when it is empty, longer than 32 characters or
    /// contains anything outside `[A-Za-z0-9_]`.
    pub fn new(affix: &str) -> Result<Self> {
        let invalid = |reason: &str| SchemaError::InvalidAffix {
            affix: affix.to_owned(),
            reason: reason.to_owned(),
        };
        if affix.is_empty() {
            return Err(invalid("must not be empty"));
        }
        if affix.chars().count() > 32 {
            return Err(invalid("must be at most 32 characters"));
        }
        if !affix.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(invalid("may only contain A-Z, a-z, 0-9 and _"));
        }
        Ok(Self(affix.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Affix {
    type Error = SchemaError;
    fn try_from(value: String) -> Result<Self> {
        Self::new(&value)
    }
}

impl From<Affix> for String {
    fn from(affix: Affix) -> Self {
        affix.0
    }
}

/// How a shadow table's name derives from its source's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ShadowNaming {
    Prefix(Affix),
    Suffix(Affix),
}

impl Default for ShadowNaming {
    /// Prefix `_test_`.
    fn default() -> Self {
        Self::Prefix(Affix("_test_".into()))
    }
}

impl ShadowNaming {
    /// Prefix naming; `None` means the default `_test_`.
    pub fn prefix(affix: Option<&str>) -> Result<Self> {
        Ok(Self::Prefix(Affix::new(affix.unwrap_or("_test_"))?))
    }

    /// Suffix naming; `None` means the default `_t`.
    pub fn suffix(affix: Option<&str>) -> Result<Self> {
        Ok(Self::Suffix(Affix::new(affix.unwrap_or("_t"))?))
    }

    /// The name with the affix applied, whatever its length.
    pub fn apply(&self, name: &str) -> String {
        match self {
            Self::Prefix(affix) => format!("{}{name}", affix.as_str()),
            Self::Suffix(affix) => format!("{name}{}", affix.as_str()),
        }
    }

    /// The shadow table's name, or why there can be none.
    pub fn shadow_name(&self, source: &str) -> std::result::Result<String, String> {
        let shadow = self.apply(source);
        let length = shadow.chars().count();
        if length > IDENTIFIER_LIMIT {
            Err(format!(
                "shadow table name {shadow:?} would be {length} characters, over the limit of {IDENTIFIER_LIMIT}"
            ))
        } else {
            Ok(shadow)
        }
    }

    /// The source name `name` would be the shadow of, if it carries the affix. `fold` maps
    /// names to comparison keys (lower-casing when the server ignores case).
    pub fn source_of(&self, name: &str, fold: impl Fn(&str) -> String) -> Option<String> {
        let key = fold(name);
        let stripped = match self {
            Self::Prefix(affix) => key.strip_prefix(&fold(affix.as_str())),
            Self::Suffix(affix) => key.strip_suffix(&fold(affix.as_str())),
        };
        stripped.filter(|s| !s.is_empty()).map(str::to_owned)
    }

    /// `name` without the affix, spelt as in `name`, when it carries the affix under `fold`
    /// (see [`Self::source_of`]).
    pub fn strip_affix<'n>(&self, name: &'n str, fold: impl Fn(&str) -> String) -> Option<&'n str> {
        self.source_of(name, fold)?;
        // The affix is ASCII and `fold` only changes case, so its length in bytes is the same.
        match self {
            Self::Prefix(affix) => name.get(affix.as_str().len()..),
            Self::Suffix(affix) => name.get(..name.len().checked_sub(affix.as_str().len())?),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn affix_validation() {
        assert!(Affix::new("_test_").is_ok());
        assert!(Affix::new("").is_err());
        assert!(Affix::new(&"a".repeat(33)).is_err());
        assert!(Affix::new(&"a".repeat(32)).is_ok());
        assert!(Affix::new("a-b").is_err());
        assert!(Affix::new("a`b").is_err());
    }

    #[test]
    fn names_apply_and_strip() {
        let prefix = ShadowNaming::prefix(None).unwrap();
        assert_eq!(prefix.shadow_name("orders").unwrap(), "_test_orders");
        assert_eq!(
            prefix.source_of("_test_orders", str::to_owned).as_deref(),
            Some("orders")
        );
        let suffix = ShadowNaming::suffix(None).unwrap();
        assert_eq!(suffix.shadow_name("orders").unwrap(), "orders_t");
        assert_eq!(
            suffix.source_of("ORDERS_T", str::to_lowercase).as_deref(),
            Some("orders")
        );
        assert_eq!(
            prefix.strip_affix("_TEST_Big", str::to_lowercase),
            Some("Big")
        );
        assert_eq!(prefix.strip_affix("_TEST_Big", str::to_owned), None);
        assert_eq!(suffix.strip_affix("Big_t", str::to_owned), Some("Big"));
        assert!(prefix.shadow_name(&"x".repeat(59)).is_err());
        assert!(prefix.shadow_name(&"x".repeat(58)).is_ok());
    }
}
