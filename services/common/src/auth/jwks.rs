//! JSON Web Key Sets (RFC 7517) of RS256 signature keys: reading the ones that verify tokens, and
//! writing the one `shadowsync credentials generate` publishes.
//!
//! Reading is deliberately narrow. A key verifies tokens only if it is an RSA key (`kty: RSA`)
//! with a `kid`, and, when it says so, meant for signatures (`use: sig`) with RS256 (`alg:
//! RS256`) and allowed to verify (`key_ops` holding `verify`); every other key in the set is
//! skipped, never used for something its publisher did not intend. A set is bounded in keys so
//! a hostile document cannot make every verification slow.

use std::collections::BTreeMap;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::DecodingKey;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

/// The most keys a set may hold; identity providers publish two or three.
pub const MAX_KEYS: usize = 64;

/// Why a JWK Set could not be read.
#[derive(Debug, thiserror::Error)]
pub enum JwksError {
    #[error("not a JWK Set: {0}")]
    Format(String),
    #[error("the JWK Set holds more than {MAX_KEYS} keys")]
    TooManyKeys,
}

/// The public half of an RSA key as a JWK, ready to publish.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RsaJwk {
    pub kty: String,
    #[serde(rename = "use")]
    pub use_: String,
    pub alg: String,
    pub kid: String,
    pub n: String,
    pub e: String,
}

impl RsaJwk {
    /// The signature-verification JWK of the RSA key with big-endian `modulus` and `exponent`;
    /// its `kid` is the RFC 7638 thumbprint, so the same key always has the same id.
    pub fn rs256(modulus: &[u8], exponent: &[u8]) -> Self {
        let n = URL_SAFE_NO_PAD.encode(strip_leading_zeros(modulus));
        let e = URL_SAFE_NO_PAD.encode(strip_leading_zeros(exponent));
        Self {
            kid: rsa_thumbprint(&n, &e),
            kty: "RSA".into(),
            use_: "sig".into(),
            alg: "RS256".into(),
            n,
            e,
        }
    }
}

/// The RFC 7638 thumbprint of an RSA JWK: SHA-256 over the required members in lexicographic
/// order with no whitespace, base64url without padding.
pub fn rsa_thumbprint(n: &str, e: &str) -> String {
    // `n` and `e` are base64url, which needs no JSON escaping.
    let canonical = format!(r#"{{"e":"{e}","kty":"RSA","n":"{n}"}}"#);
    URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes()))
}

fn strip_leading_zeros(bytes: &[u8]) -> &[u8] {
    let first = bytes
        .iter()
        .position(|b| *b != 0)
        .unwrap_or(bytes.len().saturating_sub(1));
    &bytes[first..]
}

/// A JWK Set document with `keys` kept as written, so a set can be extended without losing
/// members this code does not know.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct JwkSetDocument {
    pub keys: Vec<serde_json::Value>,
}

impl JwkSetDocument {
    /// Parses a document; fails when it is not an object with a `keys` array.
    pub fn parse(bytes: &[u8]) -> Result<Self, JwksError> {
        serde_json::from_slice(bytes).map_err(|e| JwksError::Format(e.to_string()))
    }

    /// Adds `key` unless a key with its `kid` is already there.
    pub fn add(&mut self, key: &RsaJwk) {
        let present = self
            .keys
            .iter()
            .any(|k| k.get("kid").and_then(|v| v.as_str()) == Some(key.kid.as_str()));
        if !present {
            // Serialising a struct of strings cannot fail.
            self.keys
                .push(serde_json::to_value(key).unwrap_or_default());
        }
    }

    /// Pretty JSON with a final newline.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_default() + "\n"
    }
}

/// The verification keys of a set, by `kid`.
#[derive(Clone, Default)]
pub struct VerificationKeys {
    keys: BTreeMap<String, DecodingKey>,
}

impl std::fmt::Debug for VerificationKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.keys.keys()).finish()
    }
}

/// One member as published; every field optional so one odd key never spoils the set.
#[derive(Deserialize)]
struct Member {
    kty: Option<String>,
    #[serde(rename = "use")]
    use_: Option<String>,
    alg: Option<String>,
    key_ops: Option<Vec<String>>,
    kid: Option<String>,
    n: Option<String>,
    e: Option<String>,
}

impl VerificationKeys {
    /// The RS256 signature keys of a JWK Set document (see the module documentation for which
    /// keys count). Fails when the document is not a JWK Set or holds more than [`MAX_KEYS`].
    /// When two usable keys share a `kid`, neither is used: which one a token meant is unknown.
    pub fn from_jwks(bytes: &[u8]) -> Result<Self, JwksError> {
        let document = JwkSetDocument::parse(bytes)?;
        if document.keys.len() > MAX_KEYS {
            return Err(JwksError::TooManyKeys);
        }
        let mut keys = BTreeMap::new();
        let mut ambiguous = Vec::new();
        for value in document.keys {
            let Ok(member) = serde_json::from_value::<Member>(value) else {
                continue;
            };
            let Some((kid, key)) = usable(member) else {
                continue;
            };
            if keys.insert(kid.clone(), key).is_some() {
                ambiguous.push(kid);
            }
        }
        for kid in ambiguous {
            keys.remove(&kid);
        }
        Ok(Self { keys })
    }

    pub fn get(&self, kid: &str) -> Option<&DecodingKey> {
        self.keys.get(kid)
    }

    pub fn contains(&self, kid: &str) -> bool {
        self.keys.contains_key(kid)
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The key ids, for logs (a `kid` is public).
    pub fn kids(&self) -> impl Iterator<Item = &str> {
        self.keys.keys().map(String::as_str)
    }
}

fn usable(member: Member) -> Option<(String, DecodingKey)> {
    if member.kty.as_deref() != Some("RSA") {
        return None;
    }
    if member.use_.as_deref().is_some_and(|u| u != "sig") {
        return None;
    }
    if member.alg.as_deref().is_some_and(|a| a != "RS256") {
        return None;
    }
    if member
        .key_ops
        .as_ref()
        .is_some_and(|ops| !ops.iter().any(|op| op == "verify"))
    {
        return None;
    }
    let kid = member.kid.filter(|kid| !kid.is_empty())?;
    let key = DecodingKey::from_rsa_components(&member.n?, &member.e?).ok()?;
    Some((kid, key))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_thumbprint_is_rfc_7638s() {
        // RFC 7638 §3.1's example key and its thumbprint.
        let n = "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw";
        assert_eq!(
            rsa_thumbprint(n, "AQAB"),
            "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
        );
    }

    #[test]
    fn leading_zero_bytes_do_not_change_the_key_id() {
        let plain = RsaJwk::rs256(&[0xc1, 0x02, 0x03], &[1, 0, 1]);
        let padded = RsaJwk::rs256(&[0, 0xc1, 0x02, 0x03], &[0, 1, 0, 1]);
        assert_eq!(plain, padded);
        assert_eq!(plain.e, "AQAB");
    }

    fn member(extra: serde_json::Value) -> serde_json::Value {
        let fixture = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/idp-a.jwks.json"
        );
        let document: serde_json::Value =
            serde_json::from_slice(&std::fs::read(fixture).expect("fixture")).expect("json");
        let mut key = document["keys"][0].clone();
        for (name, value) in extra.as_object().expect("object") {
            if value.is_null() {
                key.as_object_mut().expect("object").remove(name);
            } else {
                key[name] = value.clone();
            }
        }
        key
    }

    fn kids(keys: Vec<serde_json::Value>) -> Vec<String> {
        let document = serde_json::json!({ "keys": keys });
        VerificationKeys::from_jwks(document.to_string().as_bytes())
            .expect("a set")
            .kids()
            .map(str::to_string)
            .collect()
    }

    #[test]
    fn only_rs256_signature_keys_with_an_id_are_kept() {
        let kept = member(serde_json::json!({"kid": "kept"}));
        assert_eq!(kids(vec![kept.clone()]), ["kept"]);
        // No `use`/`alg` at all is an RS256-capable signature key too.
        assert_eq!(
            kids(vec![member(
                serde_json::json!({"kid": "bare", "use": null, "alg": null})
            )]),
            ["bare"]
        );
        for skipped in [
            serde_json::json!({"use": "enc"}),
            serde_json::json!({"alg": "RS512"}),
            serde_json::json!({"alg": "HS256"}),
            serde_json::json!({"alg": "PS256"}),
            serde_json::json!({"kty": "oct"}),
            serde_json::json!({"kty": "EC"}),
            serde_json::json!({"kid": null}),
            serde_json::json!({"kid": ""}),
            serde_json::json!({"kid": 7}),
            serde_json::json!({"n": null}),
            serde_json::json!({"key_ops": ["encrypt"]}),
        ] {
            assert_eq!(
                kids(vec![kept.clone(), member(skipped.clone())]),
                ["kept"],
                "{skipped}"
            );
        }
    }

    #[test]
    fn a_kid_published_twice_names_no_key() {
        let one = member(serde_json::json!({"kid": "same"}));
        assert!(kids(vec![one.clone(), one]).is_empty());
    }

    #[test]
    fn documents_that_are_not_sets_or_too_big_are_refused() {
        for bad in [&b"[]"[..], b"{}", b"{\"keys\": 7}", b"not json"] {
            assert!(VerificationKeys::from_jwks(bad).is_err());
        }
        let many: Vec<_> = (0..=MAX_KEYS)
            .map(|i| member(serde_json::json!({"kid": format!("k{i}")})))
            .collect();
        let document = serde_json::json!({ "keys": many }).to_string();
        assert!(matches!(
            VerificationKeys::from_jwks(document.as_bytes()),
            Err(JwksError::TooManyKeys)
        ));
    }

    #[test]
    fn adding_a_key_keeps_the_others_and_never_duplicates() {
        let mut document =
            JwkSetDocument::parse(br#"{"keys":[{"kty":"EC","kid":"other","crv":"P-256"}]}"#)
                .expect("set");
        let key = RsaJwk::rs256(&[0xc1; 256], &[1, 0, 1]);
        document.add(&key);
        document.add(&key);
        assert_eq!(document.keys.len(), 2);
        assert_eq!(document.keys[0]["crv"], "P-256", "unknown members survive");
        assert_eq!(document.keys[1]["kid"], key.kid.as_str());
    }
}
