//! The expiry sweeper: ends pending requests whose approval deadline passed (`APPROVAL_EXPIRED`)
//! and forgets idempotency keys older than 24 hours. Each expiry is a compare-and-set, so
//! replicas sweeping at once never expire a request twice.

use std::time::Duration;

use crate::error::Result;
use crate::service::Service;

/// Requests expired per pass.
const BATCH: i64 = 100;
/// How long idempotency keys are kept.
const REQUEST_KEY_TTL: i64 = 24 * 3600 * 1_000_000;

/// One pass; returns how many requests expired.
///
/// Fails when the store fails.
pub async fn sweep_once(service: &Service) -> Result<usize> {
    let now = service.now();
    let mut expired = 0;
    for id in service.store().due_to_expire(now, BATCH).await? {
        if service.expire(&id).await? {
            tracing::info!(approval_id = %id, "approval expired");
            expired += 1;
        }
    }
    service
        .store()
        .purge_request_keys(now - REQUEST_KEY_TTL)
        .await?;
    Ok(expired)
}

/// Sweeps every `interval` until `shutdown`.
pub async fn run(
    service: Service,
    interval: Duration,
    shutdown: impl std::future::Future<Output = ()>,
) {
    tokio::pin!(shutdown);
    loop {
        if let Err(error) = sweep_once(&service).await {
            tracing::warn!(error = %error, "approval expiry sweep failed");
        }
        tokio::select! {
            () = &mut shutdown => return,
            () = tokio::time::sleep(interval) => {}
        }
    }
}
