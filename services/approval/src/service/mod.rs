//! The use cases, free of transport: each takes the caller's [`Person`] and a request, runs in
//! one transaction (retried when a compare-and-set loses a race), writes its events and
//! dispatches to the outbox in that transaction, then wakes the relay and any watchers.

mod decide;
mod permissions;
pub mod queries;
mod submit;
pub mod templates;

use std::future::Future;
use std::sync::Arc;

use shadowsync_common::auth::Identity;
use shadowsync_common::clock::Clock;
use tokio::sync::{Notify, broadcast};

use crate::error::{ApprovalError, Result};
use crate::model::Person;
use crate::store::Store;

/// How many times a use case re-runs after losing a compare-and-set race.
const ATTEMPTS: usize = 8;

/// The approval service's use cases. Cheap to clone.
#[derive(Clone)]
pub struct Service {
    store: Store,
    clock: Arc<dyn Clock>,
    /// Wakes the outbox relay after a commit that enqueued something.
    relay_wake: Arc<Notify>,
    /// Ids of requests that changed, for `WatchApproval` streams in this process.
    changes: broadcast::Sender<String>,
}

impl std::fmt::Debug for Service {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Service").finish_non_exhaustive()
    }
}

impl Service {
    pub fn new(store: Store, clock: Arc<dyn Clock>, relay_wake: Arc<Notify>) -> Self {
        let (changes, _) = broadcast::channel(1024);
        Self {
            store,
            clock,
            relay_wake,
            changes,
        }
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    pub fn now(&self) -> i64 {
        self.clock.now()
    }

    /// Subscribes to the ids of requests changed by this process.
    pub fn subscribe(&self) -> broadcast::Receiver<String> {
        self.changes.subscribe()
    }

    /// After a commit: the relay publishes at once, watchers reload.
    fn committed(&self, approval_id: Option<&str>) {
        self.relay_wake.notify_one();
        if let Some(id) = approval_id {
            // No receiver is fine: nobody is watching.
            let _ = self.changes.send(id.to_string());
        }
    }
}

/// The caller as a domain person.
pub fn person(identity: &Identity) -> Person {
    Person {
        subject: identity.subject.clone(),
        name: identity.name.clone(),
        roles: identity.roles.clone(),
    }
}

/// Whether an error means "lost a race, run again": a compare-and-set conflict, or a
/// serialization/lock failure of the engine.
fn retryable(error: &ApprovalError) -> bool {
    match error {
        ApprovalError::Conflict => true,
        ApprovalError::Store(sqlx::Error::Database(db)) => {
            let message = db.message();
            message.contains("locked")
                || message.contains("busy")
                || message.contains("deadlock")
                || message.contains("could not serialize")
        }
        _ => false,
    }
}

/// Runs `work` until it does not lose a race, at most [`ATTEMPTS`] times.
async fn with_retries<T, Work, Working>(mut work: Work) -> Result<T>
where
    Work: FnMut() -> Working,
    Working: Future<Output = Result<T>>,
{
    let mut last = ApprovalError::Conflict;
    for attempt in 0..ATTEMPTS {
        match work().await {
            Err(error) if retryable(&error) => {
                last = error;
                // A short, growing pause lets the winner commit before the next attempt.
                let pause = 2_u64 << attempt.min(6);
                tokio::time::sleep(std::time::Duration::from_millis(pause)).await;
            }
            other => return other,
        }
    }
    Err(last)
}

#[cfg(test)]
mod tests;
