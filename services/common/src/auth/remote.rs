//! The identity provider's signing keys, fetched from `auth.jwks_url` and cached.
//!
//! An identity provider rotates its keys by publishing the new one before signing with it, so a
//! token naming an unknown `kid` is the signal to fetch again. That signal is the caller's to
//! send, so it must not become a lever: whatever the number of unknown-`kid` tokens, at most one
//! fetch starts per [`FetchLimits::min_interval`], concurrent callers share the fetch in flight,
//! a fetch is bounded in time and size, and a failed fetch keeps the last good keys. A periodic
//! refresh ([`RemoteKeys::refresh_periodically`]) picks up rotations without any token asking.

use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use bytes::Bytes;
use futures::FutureExt as _;
use futures::future::{BoxFuture, Shared};
use http_body_util::{BodyExt as _, Empty, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use jsonwebtoken::DecodingKey;

use super::jwks::VerificationKeys;
use crate::clock::{Clock, Micros, micros};

/// Bounds on fetching the key set.
#[derive(Debug, Clone, Copy)]
pub struct FetchLimits {
    /// The least time between two fetches, whatever asks for them.
    pub min_interval: Duration,
    /// The longest one fetch (connect, TLS, response) may take.
    pub timeout: Duration,
    /// The largest response body read; a bigger one fails the fetch.
    pub max_bytes: usize,
    /// How often the keys are fetched with no token asking.
    pub period: Duration,
}

impl Default for FetchLimits {
    fn default() -> Self {
        Self {
            min_interval: Duration::from_secs(30),
            timeout: Duration::from_secs(10),
            max_bytes: 256 * 1024,
            period: Duration::from_secs(600),
        }
    }
}

/// Why a fetch failed. Messages name the host at most, never the URL's path or query (which
/// may carry a tenant token) nor any of the response.
#[derive(Debug, thiserror::Error)]
enum FetchError {
    #[error("request failed: {0}")]
    Request(String),
    #[error("answered HTTP {0}")]
    Status(u16),
    #[error("response larger than {0} bytes or cut short")]
    Body(usize),
    #[error("timed out after {0:?}")]
    Timeout(Duration),
    #[error("{0}")]
    Keys(#[from] super::jwks::JwksError),
}

type Connector = hyper_rustls::HttpsConnector<HttpConnector>;
type InFlight = Shared<BoxFuture<'static, ()>>;

/// The cached key set of one identity provider. Cloning shares the cache.
#[derive(Clone)]
pub struct RemoteKeys {
    inner: Arc<Inner>,
}

struct Inner {
    url: http::Uri,
    client: Client<Connector, Empty<Bytes>>,
    clock: Arc<dyn Clock>,
    limits: FetchLimits,
    keys: RwLock<Arc<VerificationKeys>>,
    refresh: Mutex<RefreshState>,
}

#[derive(Default)]
struct RefreshState {
    last_start: Option<Micros>,
    in_flight: Option<InFlight>,
}

impl std::fmt::Debug for RemoteKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteKeys")
            .field("host", &self.inner.url.host())
            .field("keys", &self.inner.current().len())
            .finish()
    }
}

/// Why the key source could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum RemoteKeysError {
    #[error("auth.jwks_url: not a valid URL")]
    Url,
    #[error("auth.jwks_url: https is required (plain http only on the loopback interface)")]
    Insecure,
    #[error("auth.jwks_url: cannot set up TLS: {0}")]
    Tls(String),
}

/// True for a URL this code may fetch keys from: https anywhere, http only on loopback, where
/// nobody between the two ends could swap the keys.
pub fn is_acceptable_jwks_url(url: &http::Uri) -> bool {
    match url.scheme_str() {
        Some("https") => url.host().is_some(),
        Some("http") => url.host().is_some_and(is_loopback_host),
        _ => false,
    }
}

fn is_loopback_host(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

impl RemoteKeys {
    /// Keys from `url`, none until the first fetch.
    ///
    /// Fails when the URL is not https (or http on loopback) or TLS cannot be set up.
    pub fn new(
        url: &str,
        clock: Arc<dyn Clock>,
        limits: FetchLimits,
    ) -> Result<Self, RemoteKeysError> {
        let url: http::Uri = url.parse().map_err(|_| RemoteKeysError::Url)?;
        if !is_acceptable_jwks_url(&url) {
            return Err(RemoteKeysError::Insecure);
        }
        let roots = rustls::RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        };
        let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|e| RemoteKeysError::Tls(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
        // Plain http is reachable only for loopback URLs, which `is_acceptable_jwks_url` checked.
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .build();
        let client = Client::builder(TokioExecutor::new()).build(connector);
        Ok(Self {
            inner: Arc::new(Inner {
                url,
                client,
                clock,
                limits,
                keys: RwLock::new(Arc::new(VerificationKeys::default())),
                refresh: Mutex::new(RefreshState::default()),
            }),
        })
    }

    /// The cached key named `kid`, without fetching.
    pub fn cached(&self, kid: &str) -> Option<DecodingKey> {
        self.inner.current().get(kid).cloned()
    }

    /// The key named `kid`: the cached one, or the one a refresh finds. A refresh starts only
    /// if none started within the minimum interval; one already running is joined.
    pub async fn find(&self, kid: &str) -> Option<DecodingKey> {
        if let Some(key) = self.cached(kid) {
            return Some(key);
        }
        self.refresh().await;
        self.cached(kid)
    }

    /// Fetches the key set unless a fetch started within the minimum interval (then it only
    /// waits for that one if it is still running). A failure keeps the keys held before.
    pub async fn refresh(&self) {
        let Some(fetch) = self.inner.start_or_join() else {
            return;
        };
        fetch.clone().await;
        let mut state = self.inner.lock_state();
        if state
            .in_flight
            .as_ref()
            .is_some_and(|running| running.ptr_eq(&fetch))
        {
            state.in_flight = None;
        }
    }

    /// Refreshes now and then every [`FetchLimits::period`] for as long as the returned guard
    /// lives; dropping it stops the loop.
    pub fn refresh_periodically(&self) -> RefreshTask {
        let keys = self.clone();
        let period = self.inner.limits.period;
        RefreshTask(tokio::spawn(async move {
            loop {
                keys.refresh().await;
                tokio::time::sleep(period).await;
            }
        }))
    }
}

/// The periodic refresh; aborted when dropped.
#[derive(Debug)]
pub struct RefreshTask(tokio::task::JoinHandle<()>);

impl Drop for RefreshTask {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl Inner {
    fn current(&self) -> Arc<VerificationKeys> {
        self.keys.read().map_or_else(
            |poisoned| poisoned.into_inner().clone(),
            |keys| keys.clone(),
        )
    }

    fn lock_state(&self) -> std::sync::MutexGuard<'_, RefreshState> {
        self.refresh
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The fetch to wait for: the running one, a new one, or none when one started too recently.
    fn start_or_join(self: &Arc<Self>) -> Option<InFlight> {
        let mut state = self.lock_state();
        if let Some(running) = &state.in_flight
            && running.peek().is_none()
        {
            return Some(running.clone());
        }
        let now = self.clock.now();
        if state
            .last_start
            .is_some_and(|at| now.saturating_sub(at) < micros(self.limits.min_interval))
        {
            return None;
        }
        state.last_start = Some(now);
        let inner = self.clone();
        // Shared, so that callers who give up (a client hanging up) do not cancel it for the
        // others: whoever still waits drives it to the end.
        let fetch = async move { inner.fetch_and_store().await }
            .boxed()
            .shared();
        state.in_flight = Some(fetch.clone());
        Some(fetch)
    }

    async fn fetch_and_store(&self) {
        let host = self.url.host().unwrap_or_default().to_string();
        match self.fetch().await {
            Ok(keys) => {
                let kids: Vec<String> = keys.kids().map(str::to_string).collect();
                let changed = !self.current().kids().eq(keys.kids());
                *self
                    .keys
                    .write()
                    .unwrap_or_else(|poisoned| poisoned.into_inner()) = Arc::new(keys);
                // A key id is public; the keys themselves are never logged.
                if changed {
                    tracing::info!(host = %host, kids = ?kids, "identity provider keys changed");
                } else {
                    tracing::debug!(host = %host, "identity provider keys unchanged");
                }
            }
            Err(error) => tracing::warn!(
                host = %host,
                error = %error,
                kept = self.current().len(),
                "cannot refresh the identity provider's keys; keeping the last good ones"
            ),
        }
    }

    async fn fetch(&self) -> Result<VerificationKeys, FetchError> {
        let limits = self.limits;
        let body = tokio::time::timeout(limits.timeout, async {
            let request = http::Request::get(self.url.clone())
                .header(http::header::ACCEPT, "application/json")
                .body(Empty::<Bytes>::new())
                .map_err(|e| FetchError::Request(e.to_string()))?;
            let response = self
                .client
                .request(request)
                .await
                .map_err(|e| FetchError::Request(without_url(&e)))?;
            if response.status() != http::StatusCode::OK {
                return Err(FetchError::Status(response.status().as_u16()));
            }
            Limited::new(response.into_body(), limits.max_bytes)
                .collect()
                .await
                .map(|collected| collected.to_bytes())
                .map_err(|_| FetchError::Body(limits.max_bytes))
        })
        .await
        .map_err(|_| FetchError::Timeout(limits.timeout))??;
        Ok(VerificationKeys::from_jwks(&body)?)
    }
}

/// A client error's description with its source chain, which names causes (connection
/// refused, certificate unknown) but not the request's URL.
fn without_url(error: &hyper_util::client::legacy::Error) -> String {
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_https_or_loopback_http_is_fetched() {
        for good in [
            "https://idp.example.com/keys",
            "https://10.0.0.1:8443/jwks",
            "http://127.0.0.1:8080/jwks",
            "http://127.9.9.9/jwks",
            "http://localhost:8080/jwks",
            "http://[::1]:8080/jwks",
        ] {
            assert!(
                is_acceptable_jwks_url(&good.parse().expect("uri")),
                "{good}"
            );
        }
        for bad in [
            "http://idp.example.com/keys",
            "http://10.0.0.1/jwks",
            "http://localhost.example.com/jwks",
            "http://127.0.0.1.example.com/jwks",
            "ftp://127.0.0.1/jwks",
            "file:///etc/jwks.json",
            "/jwks",
        ] {
            let acceptable = bad
                .parse::<http::Uri>()
                .is_ok_and(|url| is_acceptable_jwks_url(&url));
            assert!(!acceptable, "{bad}");
        }
    }
}
