//! Opaque page tokens: the next offset, bound to the filters (or preview etag) that produced
//! it, so a token reused with other filters is refused instead of paging the wrong list.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};

use crate::error::{Result, TaskError};

/// A page size: `requested`, or `default` when 0, capped at `max`.
pub fn page_size(requested: i32, default: i64, max: i64) -> i64 {
    match i64::from(requested) {
        n if n <= 0 => default,
        n => n.min(max),
    }
}

fn binding_hash(binding: &str) -> String {
    hex::encode(&Sha256::digest(binding.as_bytes())[..8])
}

/// Encoding and decoding of tokens.
pub struct PageToken;

impl PageToken {
    /// The offset a token names; 0 for an empty token.
    ///
    /// Fails with INVALID_ARGUMENT `page_token` for a malformed token or one bound to other
    /// filters.
    pub fn parse(token: &str, binding: &str) -> Result<i64> {
        if token.is_empty() {
            return Ok(0);
        }
        let invalid = || TaskError::invalid("page_token", "not a token of this listing");
        let bytes = URL_SAFE_NO_PAD.decode(token).map_err(|_| invalid())?;
        let text = String::from_utf8(bytes).map_err(|_| invalid())?;
        let (offset, hash) = text.split_once(':').ok_or_else(invalid)?;
        if hash != binding_hash(binding) {
            return Err(invalid());
        }
        offset.parse().map_err(|_| invalid())
    }

    /// The token of the page at `next`, or empty when `next` is past the end.
    pub fn next(next: i64, total: i64, binding: &str) -> String {
        if next >= total {
            return String::new();
        }
        Self::encode(next, binding)
    }

    pub fn encode(offset: i64, binding: &str) -> String {
        URL_SAFE_NO_PAD.encode(format!("{offset}:{}", binding_hash(binding)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_and_are_bound() {
        let token = PageToken::next(20, 30, "a");
        assert_eq!(PageToken::parse(&token, "a").unwrap(), 20);
        assert!(PageToken::parse(&token, "b").is_err());
        assert!(PageToken::parse("garbage", "a").is_err());
        assert_eq!(PageToken::next(30, 30, "a"), "");
        assert_eq!(page_size(0, 50, 500), 50);
        assert_eq!(page_size(9_999, 50, 500), 500);
    }
}
