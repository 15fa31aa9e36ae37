//! The client side of identity: the bearer token a person's client sends, and the renewed
//! credentials a service presents to its peers.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tonic::metadata::MetadataValue;
use tonic::{Request, Status};

use super::{AuthSetupError, Identity, ServiceIdentity, TokenIssuer};
use crate::config::AuthConfig;
use crate::secret::Secret;

/// Client side: adds a bearer token to every outgoing request.
#[derive(Clone)]
pub struct BearerToken {
    value: MetadataValue<tonic::metadata::Ascii>,
}

impl std::fmt::Debug for BearerToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BearerToken([redacted])")
    }
}

impl BearerToken {
    /// Fails when the token holds characters a header cannot carry.
    pub fn new(token: &Secret<String>) -> Result<Self, Status> {
        let mut value: MetadataValue<tonic::metadata::Ascii> =
            format!("Bearer {}", token.expose().trim())
                .parse()
                .map_err(|_| Status::invalid_argument("token: not a valid header value"))?;
        value.set_sensitive(true);
        Ok(Self { value })
    }
}

impl tonic::service::Interceptor for BearerToken {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        request
            .metadata_mut()
            .insert("authorization", self.value.clone());
        Ok(request)
    }
}

/// The credentials a service presents to its peers: the configured `auth.service_token`
/// (deployments where services verify RS256 tokens but cannot mint them), or a token minted from
/// the shared HS256 secret for the service's own identity and renewed well before it expires.
#[derive(Clone)]
pub struct ServiceCredentials {
    source: CredentialSource,
}

#[derive(Clone)]
enum CredentialSource {
    Fixed(BearerToken),
    Minted {
        // Boxed: an issuer (key and header) is far larger than a fixed token.
        issuer: Box<TokenIssuer>,
        identity: Identity,
        current: Arc<std::sync::Mutex<(BearerToken, SystemTime)>>,
    },
}

impl std::fmt::Debug for ServiceCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ServiceCredentials([redacted])")
    }
}

/// Minted service tokens live an hour and are replaced when less than ten minutes remain.
const SERVICE_TOKEN_TTL: Duration = Duration::from_secs(3600);
const SERVICE_TOKEN_RENEW_BEFORE: Duration = Duration::from_secs(600);

impl ServiceCredentials {
    /// Credentials for `service` from the `auth.*` settings.
    ///
    /// Fails when neither a service token nor an HS256 secret is configured, or the configured
    /// token cannot be a header value.
    pub fn from_config(
        config: &AuthConfig,
        service: ServiceIdentity,
    ) -> Result<Self, AuthSetupError> {
        if let Some(token) = &config.service_token {
            let bearer = BearerToken::new(token).map_err(|_| AuthSetupError::ServiceToken)?;
            return Ok(Self {
                source: CredentialSource::Fixed(bearer),
            });
        }
        let secret = config
            .hs256_secret
            .as_ref()
            .ok_or(AuthSetupError::ServiceToken)?;
        let issuer = TokenIssuer::hs256(secret, &config.audience);
        let identity = Identity::service(service);
        let (bearer, expires) = Self::mint(&issuer, &identity)?;
        Ok(Self {
            source: CredentialSource::Minted {
                issuer: Box::new(issuer),
                identity,
                current: Arc::new(std::sync::Mutex::new((bearer, expires))),
            },
        })
    }

    fn mint(
        issuer: &TokenIssuer,
        identity: &Identity,
    ) -> Result<(BearerToken, SystemTime), AuthSetupError> {
        let token = issuer.issue(identity, SERVICE_TOKEN_TTL);
        let bearer = BearerToken::new(&token).map_err(|_| AuthSetupError::ServiceToken)?;
        Ok((bearer, SystemTime::now() + SERVICE_TOKEN_TTL))
    }

    fn bearer(&self) -> Result<BearerToken, Status> {
        match &self.source {
            CredentialSource::Fixed(bearer) => Ok(bearer.clone()),
            CredentialSource::Minted {
                issuer,
                identity,
                current,
            } => {
                let mut current = current
                    .lock()
                    .map_err(|_| Status::internal("service credentials unavailable"))?;
                if current.1 < SystemTime::now() + SERVICE_TOKEN_RENEW_BEFORE {
                    *current = Self::mint(issuer, identity)
                        .map_err(|_| Status::internal("service credentials unavailable"))?;
                }
                Ok(current.0.clone())
            }
        }
    }
}

impl tonic::service::Interceptor for ServiceCredentials {
    fn call(&mut self, request: Request<()>) -> Result<Request<()>, Status> {
        self.bearer()?.call(request)
    }
}
