//! Minting tokens: HS256 from the shared secret (the embedded mode, `shadowctl token`, services
//! sharing a secret, tests) and RS256 from a private key (`shadowsync credentials`).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, EncodingKey, Header};

use super::Identity;
use super::verify::{Audience, Claims};
use crate::secret::Secret;

/// Why a token could not be minted.
#[derive(Debug, thiserror::Error)]
pub enum IssueError {
    #[error("not an RSA private key in PEM (PKCS#1 or PKCS#8)")]
    Key,
    #[error("cannot sign the token")]
    Sign,
}

/// Mints tokens for one audience with one key.
#[derive(Clone)]
pub struct TokenIssuer {
    key: EncodingKey,
    header: Header,
    audience: String,
    issuer: Option<String>,
}

impl std::fmt::Debug for TokenIssuer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenIssuer")
            .field("alg", &self.header.alg)
            .field("kid", &self.header.kid)
            .field("audience", &self.audience)
            .finish_non_exhaustive()
    }
}

impl TokenIssuer {
    pub fn hs256(secret: &Secret<String>, audience: &str) -> Self {
        Self {
            key: EncodingKey::from_secret(secret.expose().as_bytes()),
            header: Header::new(Algorithm::HS256),
            audience: audience.to_string(),
            issuer: None,
        }
    }

    /// RS256 tokens signed with the private key `pem`, naming `kid` in their header and
    /// carrying `iss: issuer`.
    ///
    /// Fails when `pem` is not an RSA private key.
    pub fn rs256(
        pem: &Secret<Vec<u8>>,
        kid: &str,
        audience: &str,
        issuer: &str,
    ) -> Result<Self, IssueError> {
        let key = EncodingKey::from_rsa_pem(pem.expose()).map_err(|_| IssueError::Key)?;
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some(kid.to_string());
        Ok(Self {
            key,
            header,
            audience: audience.to_string(),
            issuer: Some(issuer.to_string()),
        })
    }

    /// A token for `identity` valid for `ttl`.
    pub fn issue(&self, identity: &Identity, ttl: Duration) -> Secret<String> {
        let now = now();
        self.issue_at(identity, now, now.saturating_add(ttl.as_secs()))
    }

    /// A token with explicit times; used to prove expired tokens are refused.
    pub fn issue_at(&self, identity: &Identity, issued_at: u64, expires_at: u64) -> Secret<String> {
        // Signing fixed claims with an HMAC key cannot fail, and an RSA key was checked when the
        // issuer was built; an empty token would be refused by every verifier, so no error path
        // is hidden here. `try_issue` reports the failure instead.
        self.sign(identity, issued_at, expires_at)
            .unwrap_or_else(|_| Secret::new(String::new()))
    }

    /// As [`Self::issue`], reporting a signing failure.
    pub fn try_issue(
        &self,
        identity: &Identity,
        ttl: Duration,
    ) -> Result<Secret<String>, IssueError> {
        let now = now();
        self.sign(identity, now, now.saturating_add(ttl.as_secs()))
    }

    fn sign(
        &self,
        identity: &Identity,
        issued_at: u64,
        expires_at: u64,
    ) -> Result<Secret<String>, IssueError> {
        let claims = Claims {
            sub: identity.subject.clone(),
            name: Some(identity.name.clone()),
            roles: identity.roles.clone(),
            exp: expires_at,
            iat: Some(issued_at),
            iss: self.issuer.clone(),
            aud: Audience::One(self.audience.clone()),
        };
        jsonwebtoken::encode(&self.header, &claims, &self.key)
            .map(Secret::new)
            .map_err(|_| IssueError::Sign)
    }
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs()
}
