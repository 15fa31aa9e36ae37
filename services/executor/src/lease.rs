//! Keeping a lease alive while a task executes, and knowing when it is gone.
//!
//! A [`LeaseKeeper`] heartbeats on the lease's interval in its own tokio task and records what
//! the task service says in a [`LeaseWatch`], which the engine reads between statements: the
//! lease is valid only while no call was refused with ABORTED ("lease lost") *and* the last
//! known expiry is in the future by the injected clock — an executor cut off from the task
//! service must stop by itself before another one takes over.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::time::Duration;
use tracing::Instrument as _;

use shadowsync_common::clock::Clock;
use tokio::task::JoinHandle;

use crate::backend::{BackendError, ExecutionBackend, Lease, LeaseRef};

/// The shortest heartbeat interval honoured, so a zero in a response cannot spin.
const MIN_HEARTBEAT_INTERVAL: Duration = Duration::from_millis(50);

/// What the engine may do next, as far as the lease is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeaseCheck {
    Valid,
    /// A user asked to abort: finish nothing more, complete as CANCELLED.
    AbortRequested,
    /// The lease lapsed or was taken over: stop, make no further call.
    Lost,
}

/// Shared view of a lease's state.
#[derive(Debug, Clone)]
pub struct LeaseWatch {
    state: Arc<LeaseState>,
    clock: Arc<dyn Clock>,
}

#[derive(Debug)]
struct LeaseState {
    lost: AtomicBool,
    abort_requested: AtomicBool,
    expire_time: AtomicI64,
}

impl LeaseWatch {
    /// A watch for a lease expiring at `expire_time`.
    pub fn new(expire_time: i64, clock: Arc<dyn Clock>) -> Self {
        Self {
            state: Arc::new(LeaseState {
                lost: AtomicBool::new(false),
                abort_requested: AtomicBool::new(false),
                expire_time: AtomicI64::new(expire_time),
            }),
            clock,
        }
    }

    /// Checks the lease before a statement.
    pub fn check(&self) -> LeaseCheck {
        if self.state.lost.load(Ordering::SeqCst)
            || self.clock.now() >= self.state.expire_time.load(Ordering::SeqCst)
        {
            LeaseCheck::Lost
        } else if self.state.abort_requested.load(Ordering::SeqCst) {
            LeaseCheck::AbortRequested
        } else {
            LeaseCheck::Valid
        }
    }

    /// Records that a call was refused with ABORTED.
    pub fn mark_lost(&self) {
        self.state.lost.store(true, Ordering::SeqCst);
    }

    /// Records a user's abort (seen on a heartbeat or a table report).
    pub fn mark_abort_requested(&self) {
        self.state.abort_requested.store(true, Ordering::SeqCst);
    }

    fn renewed(&self, expire_time: i64) {
        self.state
            .expire_time
            .fetch_max(expire_time, Ordering::SeqCst);
    }
}

/// Heartbeats a lease until dropped.
#[derive(Debug)]
pub struct LeaseKeeper {
    handle: JoinHandle<()>,
}

impl LeaseKeeper {
    /// Starts heartbeating `lease` every `lease.heartbeat_interval`, recording into `watch`.
    pub fn start(backend: Arc<dyn ExecutionBackend>, lease: &Lease, watch: LeaseWatch) -> Self {
        let lease_ref: LeaseRef = lease.lease.clone();
        let interval = lease.heartbeat_interval.max(MIN_HEARTBEAT_INTERVAL);
        let handle = tokio::spawn(
            async move {
                let mut ticker = tokio::time::interval(interval);
                ticker.tick().await; // the claim itself just renewed it
                loop {
                    ticker.tick().await;
                    match backend.heartbeat(&lease_ref, "").await {
                        Ok(reply) => {
                            watch.renewed(reply.lease_expire_time);
                            if reply.abort_requested {
                                watch.mark_abort_requested();
                            }
                        }
                        Err(BackendError::LeaseLost) => {
                            tracing::warn!(task_id = lease_ref.task_id, "lease lost on heartbeat");
                            watch.mark_lost();
                            return;
                        }
                        // Retried on the next tick; if the task service stays away, the expiry
                        // check stops the engine before another executor can take over.
                        Err(error) => {
                            tracing::warn!(task_id = lease_ref.task_id, %error, "heartbeat failed");
                        }
                    }
                }
            }
            // Heartbeats belong to the execution's trace.
            .instrument(tracing::Span::current()),
        );
        Self { handle }
    }
}

impl Drop for LeaseKeeper {
    fn drop(&mut self) {
        self.handle.abort();
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use shadowsync_common::clock::ManualClock;
    use shadowsync_common::secret::Secret;
    use shadowsync_proto::task::v1::ErrorStrategy;

    use super::*;
    use crate::backend::{ClaimOutcome, DatabaseTarget};
    use crate::testing::task_service_double::InMemoryTaskServiceDouble;

    async fn claimed(clock: &ManualClock) -> (Arc<InMemoryTaskServiceDouble>, Lease) {
        let mut service = InMemoryTaskServiceDouble::new(Arc::new(clock.clone()));
        service.heartbeat_interval = Duration::from_millis(50);
        let service = Arc::new(service);
        let target = DatabaseTarget {
            host: "127.0.0.1".into(),
            port: 3306,
            username: "root".into(),
            password: Secret::new(String::new()),
            database: "unused".into(),
            options: Default::default(),
        };
        service.add_task(1, target, ErrorStrategy::Abort, Vec::new());
        let ClaimOutcome::Granted(claim) = service.claim(1, 1, "executor-a").await.unwrap() else {
            panic!("refused");
        };
        (service, claim.lease)
    }

    async fn wait_for(watch: &LeaseWatch, expected: LeaseCheck) {
        for _ in 0..200 {
            if watch.check() == expected {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("lease never became {expected:?}");
    }

    #[tokio::test]
    async fn heartbeats_renew_the_lease_and_carry_a_users_abort() {
        let clock = ManualClock::new(1_000_000);
        let (service, lease) = claimed(&clock).await;
        let watch = LeaseWatch::new(lease.expire_time, Arc::new(clock.clone()));
        let _keeper = LeaseKeeper::start(service.clone(), &lease, watch.clone());
        // 20 s later the claim's 30 s lease would lapse in 10 s; heartbeats push it on.
        clock.advance(Duration::from_secs(20));
        tokio::time::sleep(Duration::from_millis(200)).await;
        clock.advance(Duration::from_secs(20));
        assert_eq!(watch.check(), LeaseCheck::Valid);
        assert!(service.with_task(1, |t| t.heartbeats).unwrap() >= 1);
        service.request_abort(1);
        wait_for(&watch, LeaseCheck::AbortRequested).await;
    }

    #[tokio::test]
    async fn a_lease_is_lost_when_taken_over_or_when_it_lapses_unrenewed() {
        let clock = ManualClock::new(1_000_000);
        let (service, lease) = claimed(&clock).await;
        let watch = LeaseWatch::new(lease.expire_time, Arc::new(clock.clone()));
        // Without heartbeats, the clock alone ends it: the executor stops by itself.
        clock.advance(Duration::from_secs(31));
        assert_eq!(watch.check(), LeaseCheck::Lost);

        let clock = ManualClock::new(1_000_000);
        let (service_b, lease) = claimed(&clock).await;
        let watch = LeaseWatch::new(lease.expire_time, Arc::new(clock.clone()));
        let _keeper = LeaseKeeper::start(service_b.clone(), &lease, watch.clone());
        service_b.expire_lease_and_redispatch(1);
        wait_for(&watch, LeaseCheck::Lost).await;
        drop(service);
    }
}
