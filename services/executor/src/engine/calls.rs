//! Calls to the task service from inside a run: UNAVAILABLE is retried with backoff (every call
//! is idempotent) for as long as the lease may still be live, ABORTED marks the lease lost and
//! stops the run, anything else interrupts it.
//!
//! Retrying until the lease lapses, not a fixed number of times, lets a run ride out an outage
//! of the task service or its store shorter than the lease: giving up after a few seconds left
//! the task waiting for its lease to lapse and a re-dispatch, although this executor could have
//! finished it.

use std::future::Future;
use std::time::Duration;

use crate::backend::{BackendError, BackendResult};
use crate::lease::{LeaseCheck, LeaseWatch};

use super::Stop;

/// Attempts per call made even when the lease looks lapsed by this executor's clock.
const ATTEMPTS: u32 = 6;
/// While retrying, a warning is logged on the first failure and then every this many attempts.
const WARN_EVERY: u32 = 10;
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
            Err(BackendError::Unavailable(message))
                if attempt < ATTEMPTS || !matches!(watch.check(), LeaseCheck::Lost) =>
            {
                if attempt % WARN_EVERY == 1 {
                    tracing::warn!(attempt, %message, "task service unavailable; retrying");
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
                attempt += 1;
            }
            Err(error) => return Err(Stop::Interrupted(error.to_string())),
        }
    }
}
