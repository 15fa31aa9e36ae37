//! Crash safety: an executor dies at a seeded point (the run is dropped while it waits for the
//! task service, as a killed process would leave it), the lease lapses, another executor takes
//! the next attempt, and the task still ends right: every table in sync, none altered twice (a
//! repeated `ADD COLUMN` or `CREATE TABLE` would fail the table and the task).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use async_trait::async_trait;
use rand::{Rng, SeedableRng};
use shadowsync_common::clock::SystemClock;
use shadowsync_proto::task::v1::{ErrorStrategy, ExecutionOutcome, TableExecutionStatus};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::resume_tests::three_alters;
use super::*;
use crate::backend::{
    BackendResult, ClaimOutcome, HeartbeatReply, LogEntry, PlanPage, TableReport,
};
use crate::testing::TestDb;
use crate::testing::task_service_double::InMemoryTaskServiceDouble;

const TASK: i64 = 77;

/// Forwards to the double until its `crash_at`-th call, which never returns (the process died
/// while waiting). Heartbeats pass through uncounted.
#[derive(Debug)]
struct CrashingBackend {
    inner: Arc<InMemoryTaskServiceDouble>,
    remaining: AtomicI64,
    crashed: Notify,
}

impl CrashingBackend {
    async fn step(&self) {
        if self.remaining.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.crashed.notify_one();
            std::future::pending::<()>().await;
        }
    }
}

#[async_trait]
impl ExecutionBackend for CrashingBackend {
    async fn claim(
        &self,
        task_id: i64,
        attempt: u32,
        executor_id: &str,
    ) -> BackendResult<ClaimOutcome> {
        self.inner.claim(task_id, attempt, executor_id).await
    }
    async fn plan_page(&self, lease: &LeaseRef, page_token: &str) -> BackendResult<PlanPage> {
        self.step().await;
        self.inner.plan_page(lease, page_token).await
    }
    async fn heartbeat(&self, lease: &LeaseRef, table: &str) -> BackendResult<HeartbeatReply> {
        self.inner.heartbeat(lease, table).await
    }
    async fn report_table(&self, lease: &LeaseRef, report: &TableReport) -> BackendResult<bool> {
        self.step().await;
        self.inner.report_table(lease, report).await
    }
    async fn append_logs(&self, lease: &LeaseRef, entries: &[LogEntry]) -> BackendResult<()> {
        self.step().await;
        self.inner.append_logs(lease, entries).await
    }
    async fn complete(
        &self,
        lease: &LeaseRef,
        outcome: ExecutionOutcome,
        message: &str,
    ) -> BackendResult<()> {
        self.step().await;
        self.inner.complete(lease, outcome, message).await
    }
}

async fn run_once(
    backend: Arc<dyn ExecutionBackend>,
    attempt: u32,
    executor: &str,
    table_parallelism: usize,
) -> Option<ExecutionEnd> {
    let ClaimOutcome::Granted(claim) = backend.claim(TASK, attempt, executor).await.unwrap() else {
        panic!("refused");
    };
    let context = EngineContext {
        backend,
        clock: Arc::new(SystemClock),
        stop: CancellationToken::new(),
        table_parallelism,
    };
    Some(execute(&context, *claim).await)
}

/// One crash at call `crash_at` (counted from the first call after the claim), then recovery;
/// both attempts run `table_parallelism` lanes.
async fn crash_and_recover(crash_at: i64, table_parallelism: usize) -> (bool, bool) {
    let db = TestDb::new().await;
    db.exec("CREATE TABLE a (id int PRIMARY KEY); CREATE TABLE b (id int PRIMARY KEY, v int)")
        .await;
    let altered = three_alters(&db).await;
    let mut plan = db.plan().await;
    plan.retain(|t| t.source != "t");
    plan.push(PlanTable {
        ordinal: 99,
        ..altered
    });
    let service = Arc::new(InMemoryTaskServiceDouble::new(Arc::new(SystemClock)));
    service.add_task(TASK, db.target(), ErrorStrategy::Abort, plan);

    let crashing = Arc::new(CrashingBackend {
        inner: service.clone(),
        remaining: AtomicI64::new(crash_at),
        crashed: Notify::new(),
    });
    let first = tokio::spawn(run_once(
        crashing.clone(),
        1,
        "executor-doomed",
        table_parallelism,
    ));
    let kill = first.abort_handle();
    let mut crashed = false;
    tokio::select! {
        () = crashing.crashed.notified() => {
            kill.abort();
            crashed = true;
        }
        end = async { tokio::time::timeout(std::time::Duration::from_secs(30), first).await } => {
            // The crash point lies beyond the run: it simply completed.
            let end = end.expect("first run ended").unwrap();
            assert_eq!(end, Some(ExecutionEnd::Completed(ExecutionOutcome::Succeeded)), "crash_at {crash_at}");
        }
    }

    if service
        .with_task(TASK, |t| t.final_outcome)
        .flatten()
        .is_none()
    {
        let attempt = service.expire_lease_and_redispatch(TASK);
        let end = run_once(service.clone(), attempt, "executor-next", table_parallelism).await;
        let logs = service
            .with_task(TASK, |t| format!("{:#?}", t.logs))
            .unwrap_or_default();
        assert_eq!(
            end,
            Some(ExecutionEnd::Completed(ExecutionOutcome::Succeeded)),
            "crash_at {crash_at}: {logs}"
        );
    }
    for source in ["a", "b", "t"] {
        let status = service
            .with_task(TASK, |t| t.results[source].status)
            .unwrap();
        assert!(
            matches!(
                status,
                TableExecutionStatus::Succeeded | TableExecutionStatus::AlreadyInSync
            ),
            "crash_at {crash_at}: {source} is {status:?}"
        );
        let shadow = db.fingerprint(&format!("_test_{source}")).await;
        assert_eq!(
            db.fingerprint(source).await,
            shadow,
            "crash_at {crash_at}: {source}"
        );
    }
    let resumed_mid_table = service
        .with_task(TASK, |t| {
            t.logs
                .iter()
                .any(|l| l.message.starts_with("resuming: statements"))
        })
        .unwrap_or(false);
    db.drop_database().await;
    (crashed, resumed_mid_table)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_fault_point_twice_and_random_points_end_in_the_right_state() {
    // A clean run makes about 18 calls after the claim: the plan page, RUNNING and final
    // reports, a log batch after every statement (so points fall between the three ALTERs of
    // `t` too), completion. Each point twice, then random ones.
    let mut points: Vec<i64> = (1..=18).flat_map(|k| [k, k]).collect();
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    points.extend((0..6).map(|_| rng.random_range(1..=19)));
    let (mut crashes, mut resumed_mid_table) = (0, 0);
    for crash_at in points {
        let (crashed, resumed) = crash_and_recover(crash_at, 1).await;
        crashes += usize::from(crashed);
        resumed_mid_table += usize::from(resumed);
    }
    // Points between the ALTERs of `t`: resumed after the last ALTER whose result is present.
    assert!(
        resumed_mid_table >= 4,
        "only {resumed_mid_table} mid-table resumes"
    );
    assert!(crashes >= 30, "only {crashes} runs crashed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_lanes_crash_and_resume_as_safely() {
    // Three lanes (`a`, `b` and the three ALTERs of `t`) interleave their calls, so the same
    // point falls at different places from run to run; every one must still end in sync.
    let mut rng = rand::rngs::StdRng::seed_from_u64(11);
    let points: Vec<i64> = (0..16).map(|_| rng.random_range(1..=12)).collect();
    let mut crashes = 0;
    for crash_at in points {
        let (crashed, _) = crash_and_recover(crash_at, 3).await;
        crashes += usize::from(crashed);
    }
    assert_eq!(crashes, 16, "only {crashes} runs crashed");
}
