//! Calls to the task service from inside a run: UNAVAILABLE is retried with backoff (every call
//! is idempotent), ABORTED marks the lease lost and stops the run, anything else interrupts it.

use std::future::Future;
use std::time::Duration;

use crate::backend::{BackendError, BackendResult};
use crate::lease::LeaseWatch;

use super::Stop;

/// Attempts per call before the run is interrupted (the lease will lapse meanwhile anyway).
const ATTEMPTS: u32 = 6;
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(2);

pub(super) async fn call<T, F, Fut>(watch: &LeaseWatch, mut make_call: F) -> Result<T, Stop>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = BackendResult<T>>,
{
    let mut backoff = FIRST_BACKOFF;
    let mut attempt = 1;
    loop {
        match make_call().await {
            Ok(value) => return Ok(value),
            Err(BackendError::LeaseLost) => {
                watch.mark_lost();
                return Err(Stop::LeaseLost);
            }
            Err(BackendError::Unavailable(message)) if attempt < ATTEMPTS => {
                tracing::warn!(attempt, %message, "task service unavailable; retrying");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
                attempt += 1;
            }
            Err(error) => return Err(Stop::Interrupted(error.to_string())),
        }
    }
}
