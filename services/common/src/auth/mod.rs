//! Identity (DESIGN.md §7): bearer JWTs verified on every RPC but health, and the identities of
//! the services themselves.
//!
//! Tokens are HS256 (a shared secret, what the embedded mode uses) or RS256 (public keys only, so
//! a production service can verify tokens but never mint a user's). Every token must carry `exp`,
//! `aud` and `sub`; `name` and `roles` are optional. `aud` may be a string or an array; an array
//! is accepted when it contains the configured audience.
//!
//! Only the four configured service identities (`svc:task`, `svc:approval`, `svc:analysis`,
//! `svc:executor`, compared exactly) are services: [`ServiceIdentity::from_subject`] is the one
//! test. A subject that merely starts with `svc:` is a person and gets no service privilege.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use tonic::{Request, Status};

use crate::config::AuthConfig;
use crate::secret::Secret;

/// The role that may manage templates, priority, connections and grants.
pub const ADMIN_ROLE: &str = "admin";

/// Who is calling, as proven by their token. Handlers read it from the request extensions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// Stable user or service id (`alice`, `svc:executor`).
    pub subject: String,
    /// Display name; the subject when the token has none.
    pub name: String,
    pub roles: Vec<String>,
    /// The token's `exp`, in seconds since the Unix epoch; `None` for identities built in code.
    pub expires_at: Option<u64>,
}

impl Identity {
    /// A user identity, mostly for tests and token minting.
    pub fn user(subject: &str, roles: &[&str]) -> Self {
        Self {
            subject: subject.to_string(),
            name: subject.to_string(),
            roles: roles.iter().map(|r| r.to_string()).collect(),
            expires_at: None,
        }
    }

    /// The identity a service presents to the others.
    pub fn service(service: ServiceIdentity) -> Self {
        Self::user(service.subject(), &["service"])
    }

    pub fn has_role(&self, role: &str) -> bool {
        self.roles.iter().any(|r| r == role)
    }

    pub fn is_admin(&self) -> bool {
        self.has_role(ADMIN_ROLE)
    }

    /// True when this is the given service's own identity.
    pub fn is_service(&self, service: ServiceIdentity) -> bool {
        self.subject == service.subject()
    }

    /// The service this identity is, when its subject is exactly one of the configured service
    /// identities; `None` for everyone else, including people whose subject merely starts with
    /// `svc:` (`svc:taskx`, `SVC:task`, `svc:task ` are people).
    pub fn service_identity(&self) -> Option<ServiceIdentity> {
        ServiceIdentity::from_subject(&self.subject)
    }

    /// True for any of the configured service identities (see [`Self::service_identity`]).
    pub fn is_any_service(&self) -> bool {
        self.service_identity().is_some()
    }

    /// `PERMISSION_DENIED` unless the caller is one of `allowed`: how an internal RPC declares
    /// which services may call it.
    pub fn require_service(&self, allowed: &[ServiceIdentity]) -> Result<(), Status> {
        if allowed.iter().any(|service| self.is_service(*service)) {
            Ok(())
        } else {
            Err(Status::permission_denied(format!(
                "only {} may call this",
                allowed
                    .iter()
                    .map(|s| s.subject())
                    .collect::<Vec<_>>()
                    .join(", ")
            )))
        }
    }

    /// `PERMISSION_DENIED` unless the caller has the `admin` role.
    pub fn require_admin(&self) -> Result<(), Status> {
        if self.is_admin() {
            Ok(())
        } else {
            Err(Status::permission_denied("this needs the admin role"))
        }
    }

    /// The caller's identity, placed in the request by [`AuthInterceptor`].
    ///
    /// Fails with `UNAUTHENTICATED` if the service was mounted without the interceptor, so a
    /// wiring mistake can never turn into anonymous access.
    pub fn of<T>(request: &Request<T>) -> Result<&Identity, Status> {
        request
            .extensions()
            .get::<Identity>()
            .ok_or_else(|| Status::unauthenticated("no verified identity on this request"))
    }
}

/// The four services' own identities.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ServiceIdentity {
    Task,
    Approval,
    Analysis,
    Executor,
}

impl ServiceIdentity {
    /// Every service identity: the only subjects trusted as services.
    pub const ALL: [ServiceIdentity; 4] = [
        ServiceIdentity::Task,
        ServiceIdentity::Approval,
        ServiceIdentity::Analysis,
        ServiceIdentity::Executor,
    ];

    /// The service whose subject is exactly `subject` (no case folding, no trimming): anything
    /// else, however close, is not a service. This is the one place that decides who is a
    /// service; never test a subject's prefix instead.
    pub fn from_subject(subject: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|service| service.subject() == subject)
    }

    pub fn subject(self) -> &'static str {
        match self {
            ServiceIdentity::Task => "svc:task",
            ServiceIdentity::Approval => "svc:approval",
            ServiceIdentity::Analysis => "svc:analysis",
            ServiceIdentity::Executor => "svc:executor",
        }
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    sub: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    name: Option<String>,
    #[serde(default)]
    roles: Vec<String>,
    exp: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    iat: Option<u64>,
    aud: Audience,
}

/// A token's `aud`: one audience, or an array of them (RFC 7519 §4.1.3; identity providers send
/// arrays). The verifier accepts an array that contains the configured audience; whether it
/// does is checked by `jsonwebtoken`'s validation, this type only lets the claims deserialize.
#[derive(Debug, Serialize, Deserialize)]
#[serde(untagged)]
enum Audience {
    One(String),
    Many(Vec<String>),
}

/// Why a verifier could not be built from configuration.
#[derive(Debug, thiserror::Error)]
pub enum AuthSetupError {
    #[error("no token verification key: set auth.hs256_secret or auth.rs256_public_keys")]
    NoKeys,
    #[error("no service credentials: set auth.service_token or auth.hs256_secret")]
    ServiceToken,
    #[error("cannot read RS256 public key {path}: {reason}")]
    PublicKey { path: String, reason: String },
}

/// Verifies bearer tokens.
pub struct Authenticator {
    hs256: Option<DecodingKey>,
    rs256: Vec<DecodingKey>,
    audience: String,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authenticator")
            .field("hs256", &self.hs256.is_some())
            .field("rs256_keys", &self.rs256.len())
            .field("audience", &self.audience)
            .finish()
    }
}

impl Authenticator {
    /// Builds a verifier from the `auth.*` settings.
    ///
    /// Fails when no key is configured or a public key file cannot be read.
    pub fn from_config(config: &AuthConfig) -> Result<Self, AuthSetupError> {
        let hs256 = config
            .hs256_secret
            .as_ref()
            .map(|secret| DecodingKey::from_secret(secret.expose().as_bytes()));
        let mut rs256 = Vec::new();
        for path in &config.rs256_public_keys {
            let pem = std::fs::read(path).map_err(|e| AuthSetupError::PublicKey {
                path: path.display().to_string(),
                reason: e.to_string(),
            })?;
            rs256.push(
                DecodingKey::from_rsa_pem(&pem).map_err(|e| AuthSetupError::PublicKey {
                    path: path.display().to_string(),
                    reason: e.to_string(),
                })?,
            );
        }
        if hs256.is_none() && rs256.is_empty() {
            return Err(AuthSetupError::NoKeys);
        }
        Ok(Self {
            hs256,
            rs256,
            audience: config.audience.clone(),
        })
    }

    /// Verifies a token's signature, `exp` and `aud`, and returns who it names.
    pub fn verify(&self, token: &str) -> Result<Identity, Status> {
        let header = jsonwebtoken::decode_header(token)
            .map_err(|_| Status::unauthenticated("malformed bearer token"))?;
        let keys: Vec<&DecodingKey> = match header.alg {
            Algorithm::HS256 => self.hs256.iter().collect(),
            Algorithm::RS256 => self.rs256.iter().collect(),
            _ => Vec::new(),
        };
        if keys.is_empty() {
            return Err(Status::unauthenticated("token algorithm not accepted"));
        }
        let mut validation = Validation::new(header.alg);
        validation.set_audience(&[&self.audience]);
        validation.set_required_spec_claims(&["exp", "aud", "sub"]);
        validation.leeway = 30;
        let mut last_error = None;
        for key in keys {
            match jsonwebtoken::decode::<Claims>(token, key, &validation) {
                Ok(data) => {
                    let claims = data.claims;
                    if claims.sub.is_empty() {
                        return Err(Status::unauthenticated("token has an empty subject"));
                    }
                    return Ok(Identity {
                        name: claims.name.unwrap_or_else(|| claims.sub.clone()),
                        subject: claims.sub,
                        roles: claims.roles,
                        expires_at: Some(claims.exp),
                    });
                }
                Err(error) => last_error = Some(error),
            }
        }
        let reason = match last_error.as_ref().map(|e| e.kind()) {
            Some(jsonwebtoken::errors::ErrorKind::ExpiredSignature) => "token expired",
            Some(jsonwebtoken::errors::ErrorKind::InvalidAudience) => "token audience not accepted",
            Some(jsonwebtoken::errors::ErrorKind::MissingRequiredClaim(_)) => {
                "token lacks a required claim (exp, aud, sub)"
            }
            _ => "invalid token signature",
        };
        Err(Status::unauthenticated(reason))
    }
}

/// Mints HS256 tokens: the embedded mode's bootstrap and `shadowctl token`, service tokens when
/// services share a secret, and tests.
#[derive(Clone)]
pub struct TokenIssuer {
    key: EncodingKey,
    audience: String,
}

impl std::fmt::Debug for TokenIssuer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenIssuer")
            .field("audience", &self.audience)
            .finish_non_exhaustive()
    }
}

impl TokenIssuer {
    pub fn hs256(secret: &Secret<String>, audience: &str) -> Self {
        Self {
            key: EncodingKey::from_secret(secret.expose().as_bytes()),
            audience: audience.to_string(),
        }
    }

    /// A token for `identity` valid for `ttl`.
    pub fn issue(&self, identity: &Identity, ttl: Duration) -> Secret<String> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        self.issue_at(identity, now, now.saturating_add(ttl.as_secs()))
    }

    /// A token with explicit times; used to prove expired tokens are refused.
    pub fn issue_at(&self, identity: &Identity, issued_at: u64, expires_at: u64) -> Secret<String> {
        let claims = Claims {
            sub: identity.subject.clone(),
            name: Some(identity.name.clone()),
            roles: identity.roles.clone(),
            exp: expires_at,
            iat: Some(issued_at),
            aud: Audience::One(self.audience.clone()),
        };
        // Encoding fixed claims with an HMAC key cannot fail; an empty token would be refused by
        // every verifier, so no error path is hidden here.
        Secret::new(
            jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.key)
                .unwrap_or_default(),
        )
    }
}

/// Server side: verifies `authorization: Bearer …` and puts the [`Identity`] in the request.
#[derive(Clone, Debug)]
pub struct AuthInterceptor {
    authenticator: Arc<Authenticator>,
    started: Option<tokio::sync::watch::Receiver<bool>>,
}

impl AuthInterceptor {
    pub fn new(authenticator: Arc<Authenticator>) -> Self {
        Self {
            authenticator,
            started: None,
        }
    }

    /// Answers `UNAVAILABLE` until `started` turns true: a request that arrives while the
    /// stores are still being migrated gets a retryable status instead of an internal error
    /// from a table that does not exist yet.
    pub fn gated(mut self, started: tokio::sync::watch::Receiver<bool>) -> Self {
        self.started = Some(started);
        self
    }
}

impl tonic::service::Interceptor for AuthInterceptor {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        let header = request
            .metadata()
            .get("authorization")
            .ok_or_else(|| Status::unauthenticated("missing authorization: Bearer <token>"))?;
        let token = header
            .to_str()
            .ok()
            .and_then(|value| value.strip_prefix("Bearer "))
            .ok_or_else(|| Status::unauthenticated("authorization must be `Bearer <token>`"))?;
        let identity = self.authenticator.verify(token.trim())?;
        if self
            .started
            .as_ref()
            .is_some_and(|started| !*started.borrow())
        {
            return Err(Status::unavailable(
                "starting: the service's store is not ready yet; retry shortly",
            ));
        }
        request.extensions_mut().insert(identity);
        Ok(request)
    }
}

mod credentials;
pub use credentials::{BearerToken, ServiceCredentials};

#[cfg(test)]
mod tests;
