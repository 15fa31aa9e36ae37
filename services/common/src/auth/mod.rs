//! Identity: bearer JWTs verified on every RPC but health, and the identities of
//! the services themselves.
//!
//! Tokens are HS256 (a shared secret, what the embedded mode uses) or RS256 (public keys only, so
//! a production service can verify tokens but never mint a user's). Every token must carry `exp`,
//! `aud` and `sub`; `name` and `roles` are optional. `aud` may be a string or an array; an array
//! is accepted when it contains the configured audience. People's tokens may also come from the
//! company's identity provider (`auth.jwks_url`), whose tokens never name a service and get
//! their roles only through `auth.role_map`.
//!
//! Layout: [`verify`](Authenticator) decides which key verifies a token and what it may claim;
//! [`jwks`] reads and writes JWK Sets; `remote` caches the identity provider's keys;
//! [`AuthLayer`] puts the verified [`Identity`] in each request; [`TokenIssuer`] mints tokens;
//! [`ServiceCredentials`] is what a service presents to its peers.
//!
//! Only the four configured service identities (`svc:task`, `svc:approval`, `svc:analysis`,
//! `svc:executor`, compared exactly) are services: [`ServiceIdentity::from_subject`] is the one
//! test. A subject that merely starts with `svc:` is a person and gets no service privilege.

use tonic::{Request, Status};

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

    /// The caller's identity, placed in the request by [`AuthLayer`].
    ///
    /// Fails with `UNAUTHENTICATED` if the service was mounted without the layer, so a
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

mod credentials;
mod issue;
pub mod jwks;
mod layer;
mod remote;
mod verify;

pub use credentials::{BearerToken, ServiceCredentials};
pub use issue::{IssueError, TokenIssuer};
pub use layer::{AuthLayer, Authenticated};
pub use remote::{FetchLimits, RefreshTask, RemoteKeysError, is_acceptable_jwks_url};
pub use verify::{AuthSetupError, Authenticator};

#[cfg(test)]
mod tests;
