//! The verifier: which key may verify a token, and what a verified token is allowed to say.
//!
//! Keys come from two kinds of source, kept apart:
//! - **local**: the HS256 secret, `auth.rs256_public_keys` and `auth.jwks_file`. These are the
//!   platform's own keys. Their tokens say who they are (`sub`) and what roles they hold
//!   (`roles`), and only they can name a service identity.
//! - **the identity provider** (`auth.jwks_url`): its tokens name people. They must carry the
//!   configured `iss`; their roles come only from `auth.roles_claim` through `auth.role_map`
//!   (a `roles` claim is ignored), and a subject that looks like a service (`svc:…`) is refused.
//!
//! The algorithm decides the source first (HS256: the secret, nothing else; RS256: public keys;
//! anything else is refused), so a token signed with a public key as an HMAC secret never
//! meets that key. An RS256 token's `kid` then names exactly one key: a local JWK Set key, or
//! failing that an identity-provider key. Once a `kid` has matched a source, no other source is
//! tried, so a token cannot borrow a key of the other source by naming it. Tokens without a
//! `kid`, and tokens whose `kid` no source knows, are tried against the PEM public keys (which
//! have no ids); a `kid` still unknown asks the identity provider to refresh its keys.

use std::collections::BTreeMap;
use std::sync::Arc;

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::{Deserialize, Serialize};
use tonic::Status;

use super::Identity;
use super::jwks::VerificationKeys;
use super::remote::{FetchLimits, RefreshTask, RemoteKeys, RemoteKeysError};
use crate::clock::{Clock, SystemClock};
use crate::config::{AuthConfig, IdentityProviderConfig};

/// The refusal of a token no candidate key signed.
const BAD_SIGNATURE: &str = "invalid token signature";

/// Seconds of clock skew tolerated on `exp` and `nbf`.
const LEEWAY_SECONDS: u64 = 30;

#[derive(Debug, Serialize, Deserialize)]
pub(super) struct Claims {
    pub(super) sub: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) name: Option<String>,
    #[serde(default)]
    pub(super) roles: Vec<String>,
    pub(super) exp: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) iat: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) iss: Option<String>,
    pub(super) aud: Audience,
}

/// A token's `aud`: one audience, or an array of them (RFC 7519 §4.1.3; identity providers send
/// arrays). The verifier accepts an array that contains the configured audience; whether it
/// does is checked by `jsonwebtoken`'s validation, this type only lets the claims deserialize.
#[derive(Debug, Serialize, Deserialize)]
#[serde(untagged)]
pub(super) enum Audience {
    One(String),
    Many(Vec<String>),
}

/// Why a verifier could not be built from configuration.
#[derive(Debug, thiserror::Error)]
pub enum AuthSetupError {
    #[error(
        "no token verification key: set auth.hs256_secret, auth.rs256_public_keys, \
         auth.jwks_file or auth.jwks_url"
    )]
    NoKeys,
    #[error("no service credentials: set auth.service_token or auth.hs256_secret")]
    ServiceToken,
    #[error("cannot read RS256 public key {path}: {reason}")]
    PublicKey { path: String, reason: String },
    #[error("cannot read auth.jwks_file {path}: {reason}")]
    JwksFile { path: String, reason: String },
    #[error(transparent)]
    IdentityProvider(#[from] RemoteKeysError),
}

/// The platform's own keys.
#[derive(Default)]
struct LocalKeys {
    hs256: Option<DecodingKey>,
    /// `auth.rs256_public_keys`: PEM files, so no key ids.
    pem: Vec<DecodingKey>,
    /// `auth.jwks_file`, by `kid`.
    jwks: VerificationKeys,
}

/// The company's identity provider.
struct IdentityProvider {
    keys: RemoteKeys,
    issuer: String,
    roles_claim: Option<String>,
    role_map: BTreeMap<String, Vec<String>>,
}

/// Verifies bearer tokens.
pub struct Authenticator {
    local: LocalKeys,
    provider: Option<IdentityProvider>,
    audience: String,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authenticator")
            .field("hs256", &self.local.hs256.is_some())
            .field("rs256_keys", &self.local.pem.len())
            .field("jwks_file_keys", &self.local.jwks)
            .field(
                "identity_provider",
                &self.provider.as_ref().map(|p| &p.keys),
            )
            .field("audience", &self.audience)
            .finish()
    }
}

/// Which source verified a token: it decides what the token may claim.
enum Source {
    Local,
    Provider,
}

impl Authenticator {
    /// Builds a verifier from the `auth.*` settings. The identity provider's keys are fetched
    /// later: on the first token that needs them, and by [`Self::refresh_periodically`].
    ///
    /// Fails when no key source is configured, a key file cannot be read, or the identity
    /// provider's URL is not acceptable.
    pub fn from_config(config: &AuthConfig) -> Result<Self, AuthSetupError> {
        Self::with_clock(config, Arc::new(SystemClock), FetchLimits::default())
    }

    /// As [`Self::from_config`], with the clock that paces identity-provider refreshes and the
    /// bounds on them (tests move a `ManualClock`).
    pub fn with_clock(
        config: &AuthConfig,
        clock: Arc<dyn Clock>,
        limits: FetchLimits,
    ) -> Result<Self, AuthSetupError> {
        let mut local = LocalKeys {
            hs256: config
                .hs256_secret
                .as_ref()
                .map(|secret| DecodingKey::from_secret(secret.expose().as_bytes())),
            ..LocalKeys::default()
        };
        for path in &config.rs256_public_keys {
            let failed = |reason: String| AuthSetupError::PublicKey {
                path: path.display().to_string(),
                reason,
            };
            let pem = std::fs::read(path).map_err(|e| failed(e.to_string()))?;
            local
                .pem
                .push(DecodingKey::from_rsa_pem(&pem).map_err(|e| failed(e.to_string()))?);
        }
        if let Some(path) = &config.jwks_file {
            let failed = |reason: String| AuthSetupError::JwksFile {
                path: path.display().to_string(),
                reason,
            };
            let bytes = std::fs::read(path).map_err(|e| failed(e.to_string()))?;
            local.jwks = VerificationKeys::from_jwks(&bytes).map_err(|e| failed(e.to_string()))?;
            if local.jwks.is_empty() {
                return Err(failed("it holds no RS256 signature key with a kid".into()));
            }
        }
        let provider = config
            .identity_provider
            .as_ref()
            .map(|provider| IdentityProvider::new(provider, clock, limits))
            .transpose()?;
        if local.hs256.is_none()
            && local.pem.is_empty()
            && local.jwks.is_empty()
            && provider.is_none()
        {
            return Err(AuthSetupError::NoKeys);
        }
        Ok(Self {
            local,
            provider,
            audience: config.audience.clone(),
        })
    }

    /// Keeps the identity provider's keys fresh for as long as the returned guard lives (`None`
    /// when no identity provider is configured). Needs a Tokio runtime.
    pub fn refresh_periodically(&self) -> Option<RefreshTask> {
        self.provider
            .as_ref()
            .map(|provider| provider.keys.refresh_periodically())
    }

    /// Verifies a token's signature, `exp`, `aud` (and, for the identity provider's, `iss`),
    /// and returns who it names. May wait for a refresh of the identity provider's keys when
    /// the token names a key not seen yet.
    ///
    /// Fails with `UNAUTHENTICATED`; the message says why without repeating the token.
    pub async fn verify(&self, token: &str) -> Result<Identity, Status> {
        let header = jsonwebtoken::decode_header(token)
            .map_err(|_| Status::unauthenticated("malformed bearer token"))?;
        match header.alg {
            Algorithm::HS256 => match &self.local.hs256 {
                Some(key) => self.verify_local(token, Algorithm::HS256, [key]),
                None => Err(Status::unauthenticated("token algorithm not accepted")),
            },
            Algorithm::RS256 => self.verify_rs256(token, header.kid.as_deref()).await,
            _ => Err(Status::unauthenticated("token algorithm not accepted")),
        }
    }

    async fn verify_rs256(&self, token: &str, kid: Option<&str>) -> Result<Identity, Status> {
        if let Some(kid) = kid {
            if let Some(key) = self.local.jwks.get(kid) {
                return self.verify_local(token, Algorithm::RS256, [key]);
            }
            if let Some(provider) = &self.provider
                && let Some(key) = provider.keys.cached(kid)
            {
                return self.verify_provider(token, &key, provider);
            }
        }
        if !self.local.pem.is_empty() {
            let local = self.verify_local(token, Algorithm::RS256, &self.local.pem);
            // Only a signature no PEM key made may still be the identity provider's.
            let not_ours = matches!(&local, Err(status) if status.message() == BAD_SIGNATURE);
            if !not_ours || kid.is_none() || self.provider.is_none() {
                return local;
            }
        }
        let any_rs256 =
            !self.local.pem.is_empty() || !self.local.jwks.is_empty() || self.provider.is_some();
        match (kid, &self.provider) {
            (Some(kid), Some(provider)) => match provider.keys.find(kid).await {
                Some(key) => self.verify_provider(token, &key, provider),
                None => Err(Status::unauthenticated("token signing key not known")),
            },
            _ if !any_rs256 => Err(Status::unauthenticated("token algorithm not accepted")),
            (Some(_), None) => Err(Status::unauthenticated("token signing key not known")),
            (None, _) => Err(Status::unauthenticated(
                "token has no key id (kid) to choose a key by",
            )),
        }
    }

    fn validation(&self, algorithm: Algorithm) -> Validation {
        let mut validation = Validation::new(algorithm);
        validation.set_audience(&[&self.audience]);
        validation.set_required_spec_claims(&["exp", "aud", "sub"]);
        validation.leeway = LEEWAY_SECONDS;
        validation
    }

    fn verify_local<'k>(
        &self,
        token: &str,
        algorithm: Algorithm,
        keys: impl IntoIterator<Item = &'k DecodingKey>,
    ) -> Result<Identity, Status> {
        let validation = self.validation(algorithm);
        let mut last_error = None;
        for key in keys {
            match jsonwebtoken::decode::<Claims>(token, key, &validation) {
                Ok(data) => return identity_from(data.claims, Source::Local),
                Err(error) => last_error = Some(error),
            }
        }
        Err(refusal(last_error.as_ref().map(|e| e.kind())))
    }

    fn verify_provider(
        &self,
        token: &str,
        key: &DecodingKey,
        provider: &IdentityProvider,
    ) -> Result<Identity, Status> {
        let mut validation = self.validation(Algorithm::RS256);
        validation.set_issuer(&[&provider.issuer]);
        validation.set_required_spec_claims(&["exp", "aud", "sub", "iss"]);
        validation.validate_nbf = true;
        let data = jsonwebtoken::decode::<serde_json::Map<String, serde_json::Value>>(
            token,
            key,
            &validation,
        )
        .map_err(|e| refusal(Some(e.kind())))?;
        let claims = data.claims;
        let text = |name: &str| {
            claims
                .get(name)
                .and_then(|v| v.as_str())
                .map(str::to_string)
        };
        let subject = text("sub").unwrap_or_default();
        let Some(exp) = claims.get("exp").and_then(serde_json::Value::as_u64) else {
            return Err(Status::unauthenticated("token lacks a required claim: exp"));
        };
        let claims_roles = provider
            .roles_claim
            .as_deref()
            .and_then(|name| claim(&claims, name));
        let identity = Identity {
            name: text("name")
                .or_else(|| text("preferred_username"))
                .unwrap_or_else(|| subject.clone()),
            subject,
            roles: provider.roles_of(claims_roles),
            expires_at: Some(exp),
        };
        checked(identity, Source::Provider)
    }
}

impl IdentityProvider {
    fn new(
        config: &IdentityProviderConfig,
        clock: Arc<dyn Clock>,
        limits: FetchLimits,
    ) -> Result<Self, AuthSetupError> {
        Ok(Self {
            keys: RemoteKeys::new(&config.jwks_url, clock, limits)?,
            issuer: config.issuer.clone(),
            roles_claim: config.roles_claim.clone(),
            role_map: config.role_map.clone(),
        })
    }

    /// The roles `value` (the roles claim: a string or an array of strings) maps to, each once.
    /// Anything else in the claim grants nothing.
    fn roles_of(&self, value: Option<&serde_json::Value>) -> Vec<String> {
        let values: Vec<&str> = match value {
            Some(serde_json::Value::String(one)) => vec![one.as_str()],
            Some(serde_json::Value::Array(many)) => {
                many.iter().filter_map(serde_json::Value::as_str).collect()
            }
            _ => Vec::new(),
        };
        let mut roles: Vec<String> = Vec::new();
        for role in values
            .into_iter()
            .filter_map(|value| self.role_map.get(value))
            .flatten()
        {
            if !roles.contains(role) {
                roles.push(role.clone());
            }
        }
        roles
    }
}

/// The claim `name`: a top-level claim of that exact name (namespaced claims are URLs with
/// dots), or else a dotted path into nested objects (`realm_access.roles`).
fn claim<'c>(
    claims: &'c serde_json::Map<String, serde_json::Value>,
    name: &str,
) -> Option<&'c serde_json::Value> {
    if let Some(value) = claims.get(name) {
        return Some(value);
    }
    let mut parts = name.split('.');
    let mut value = claims.get(parts.next()?)?;
    for part in parts {
        value = value.as_object()?.get(part)?;
    }
    Some(value)
}

fn identity_from(claims: Claims, source: Source) -> Result<Identity, Status> {
    checked(
        Identity {
            name: claims.name.unwrap_or_else(|| claims.sub.clone()),
            subject: claims.sub,
            roles: claims.roles,
            expires_at: Some(claims.exp),
        },
        source,
    )
}

/// The rules on what a verified token may claim, by source.
fn checked(identity: Identity, source: Source) -> Result<Identity, Status> {
    if identity.subject.is_empty() {
        return Err(Status::unauthenticated("token has an empty subject"));
    }
    if let Source::Provider = source
        // Wider than "is a service" (any case, any name after `svc:`): nobody at the identity
        // provider needs a subject that reads like a service's.
        && identity
            .subject
            .get(..4)
            .is_some_and(|prefix| prefix.eq_ignore_ascii_case("svc:"))
    {
        return Err(Status::unauthenticated(
            "an identity provider's token cannot name a service identity (svc:*)",
        ));
    }
    Ok(identity)
}

fn refusal(kind: Option<&ErrorKind>) -> Status {
    let reason = match kind {
        Some(ErrorKind::ExpiredSignature) => "token expired",
        Some(ErrorKind::ImmatureSignature) => "token not valid yet",
        Some(ErrorKind::InvalidAudience) => "token audience not accepted",
        Some(ErrorKind::InvalidIssuer) => "token issuer not accepted",
        // The claim's name is one of ours (the required list), never the token's text.
        Some(ErrorKind::MissingRequiredClaim(claim)) => {
            return Status::unauthenticated(format!("token lacks a required claim: {claim}"));
        }
        _ => BAD_SIGNATURE,
    };
    Status::unauthenticated(reason)
}
