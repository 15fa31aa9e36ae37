//! A connection cut mid-statement: the executor reaches MariaDB through a [`TcpProxy`], a
//! statement of a table with three ALTERs is held on a metadata lock taken by a second, direct
//! connection, and the proxy is cut while it waits. The orphaned statement then either lands on
//! the server (the lock is released) or is killed; the proxy is restored and the next attempt
//! must end every table in sync, with no statement applied twice and nothing lost.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use shadowsync_common::clock::SystemClock;
use shadowsync_common::testing::TcpProxy;
use shadowsync_proto::task::v1::{ErrorStrategy, ExecutionOutcome, TableExecutionStatus};
use sqlx::mysql::{MySqlConnectOptions, MySqlConnection};
use sqlx::{AssertSqlSafe, Connection, Executor};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::resume_tests::three_alters;
use super::*;
use crate::backend::{
    BackendResult, ClaimOutcome, HeartbeatReply, LogEntry, PlanPage, TableReport,
};
use crate::testing::task_service_double::InMemoryTaskServiceDouble;
use crate::testing::{TestDb, URL};

const TASK: i64 = 78;
/// The column each ALTER of `t` adds, in order.
const COLUMNS: [&str; 3] = ["`a`", "`b`", "`c`"];

/// Forwards to the double; the log batch holding `trigger` (a line of table `t`) waits until the
/// test says go, so the test can take a lock before the engine's next statement.
#[derive(Debug)]
struct GatedBackend {
    inner: Arc<InMemoryTaskServiceDouble>,
    trigger: Option<String>,
    fired: AtomicBool,
    reached: Notify,
    go: Notify,
}

#[async_trait]
impl ExecutionBackend for GatedBackend {
    async fn claim(
        &self,
        task_id: i64,
        attempt: u32,
        executor_id: &str,
    ) -> BackendResult<ClaimOutcome> {
        self.inner.claim(task_id, attempt, executor_id).await
    }
    async fn plan_page(&self, lease: &LeaseRef, page_token: &str) -> BackendResult<PlanPage> {
        self.inner.plan_page(lease, page_token).await
    }
    async fn heartbeat(&self, lease: &LeaseRef, table: &str) -> BackendResult<HeartbeatReply> {
        self.inner.heartbeat(lease, table).await
    }
    async fn report_table(&self, lease: &LeaseRef, report: &TableReport) -> BackendResult<bool> {
        self.inner.report_table(lease, report).await
    }
    async fn append_logs(&self, lease: &LeaseRef, entries: &[LogEntry]) -> BackendResult<()> {
        if let Some(trigger) = &self.trigger {
            let hit = entries
                .iter()
                .any(|e| e.table == "t" && e.message.starts_with(trigger.as_str()));
            if hit && !self.fired.swap(true, Ordering::SeqCst) {
                self.reached.notify_one();
                self.go.notified().await;
            }
        }
        self.inner.append_logs(lease, entries).await
    }
    async fn complete(
        &self,
        lease: &LeaseRef,
        outcome: ExecutionOutcome,
        message: &str,
    ) -> BackendResult<()> {
        self.inner.complete(lease, outcome, message).await
    }
}

async fn run_once(
    backend: Arc<dyn ExecutionBackend>,
    attempt: u32,
    executor: &str,
) -> ExecutionEnd {
    let ClaimOutcome::Granted(claim) = backend.claim(TASK, attempt, executor).await.unwrap() else {
        panic!("refused");
    };
    let context = EngineContext {
        backend,
        clock: Arc::new(SystemClock),
        stop: CancellationToken::new(),
        table_parallelism: 1,
    };
    execute(&context, *claim).await
}

/// A direct connection (not through the proxy) holding a shared metadata lock on `_test_t`.
async fn hold_lock(db: &TestDb) -> MySqlConnection {
    let options = URL
        .parse::<MySqlConnectOptions>()
        .unwrap()
        .database(&db.name);
    let mut holder = MySqlConnection::connect_with(&options).await.unwrap();
    holder.execute("START TRANSACTION").await.unwrap();
    holder
        .execute("SELECT COUNT(*) FROM `_test_t`")
        .await
        .unwrap();
    holder
}

/// The server threads of `db` running an `ALTER TABLE`: (id, state, statement).
async fn alters(db: &TestDb) -> Vec<(i64, String, String)> {
    sqlx::query_as(
        "SELECT CAST(ID AS SIGNED), COALESCE(STATE, ''), COALESCE(INFO, '') \
         FROM information_schema.PROCESSLIST WHERE DB = ? AND INFO LIKE 'ALTER TABLE%'",
    )
    .bind(&db.name)
    .fetch_all(&db.pool)
    .await
    .unwrap()
}

/// Waits until statement `k` (1-based) of `t` waits for the metadata lock; returns its thread.
async fn wait_until_blocked(db: &TestDb, k: usize) -> i64 {
    for _ in 0..1000 {
        if let Some((id, _, _)) = alters(db).await.into_iter().find(|(_, state, info)| {
            state.contains("metadata lock") && info.contains(COLUMNS[k - 1])
        }) {
            return id;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("statement {k} of t never waited for the lock");
}

async fn wait_until_no_alter(db: &TestDb) {
    for _ in 0..1000 {
        if alters(db).await.is_empty() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("an orphaned ALTER is still running: {:?}", alters(db).await);
}

fn count(logs: &[LogEntry], table: &str, prefix: &str) -> usize {
    logs.iter()
        .filter(|l| l.table == table && l.message.starts_with(prefix))
        .count()
}

/// What becomes of the statement orphaned by the cut (the server still holds it, waiting).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Orphan {
    /// Killed before the next attempt: that attempt runs the statement.
    Killed,
    /// Lands before the next attempt: that attempt resumes after it.
    Lands,
    /// Still waiting when the next attempt starts (its lease lapsed first): the next attempt
    /// reads the shadow before it, runs the same statement, and the orphan lands first.
    LandsDuringNextAttempt,
}

/// Cuts the proxy while statement `k` of `t` runs, then lets the orphan go as `orphan` says.
async fn cut_mid_statement(k: usize, orphan_fate: Orphan) {
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
    let mut proxy = TcpProxy::start("127.0.0.1:3306".parse().unwrap()).await;
    let mut target = db.target();
    target.port = proxy.address().port();
    let service = Arc::new(InMemoryTaskServiceDouble::new(Arc::new(SystemClock)));
    service.add_task(TASK, target, ErrorStrategy::Abort, plan);

    let gated = Arc::new(GatedBackend {
        inner: service.clone(),
        trigger: (k > 1).then(|| format!("statement {}/3 finished", k - 1)),
        fired: AtomicBool::new(false),
        reached: Notify::new(),
        go: Notify::new(),
    });
    let mut holder = if k == 1 {
        Some(hold_lock(&db).await)
    } else {
        None
    };
    let first = tokio::spawn(run_once(gated.clone(), 1, "executor-cut"));
    if holder.is_none() {
        tokio::time::timeout(Duration::from_secs(30), gated.reached.notified())
            .await
            .expect("statement before the cut ran");
        holder = Some(hold_lock(&db).await);
        gated.go.notify_one();
    }
    let orphan = wait_until_blocked(&db, k).await;
    proxy.cut().await;
    let end = tokio::time::timeout(Duration::from_secs(30), first)
        .await
        .expect("the cut run ended")
        .unwrap();
    assert!(
        matches!(end, ExecutionEnd::Interrupted(_)),
        "k {k}: the cut run ended {end:?}"
    );

    // The server still holds the statement: kill it or let it land.
    let mut holder = holder.unwrap();
    proxy.restore();
    let attempt = service.expire_lease_and_redispatch(TASK);
    if orphan_fate == Orphan::LandsDuringNextAttempt {
        let next = tokio::spawn(run_once(service.clone(), attempt, "executor-next"));
        // Both the orphan and the next attempt's statement wait for the lock, the orphan first.
        for _ in 0..1000 {
            let waiting = alters(&db)
                .await
                .into_iter()
                .filter(|(_, state, info)| {
                    state.contains("metadata lock") && info.contains(COLUMNS[k - 1])
                })
                .count();
            if waiting == 2 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        holder.execute("ROLLBACK").await.unwrap();
        holder.close().await.unwrap();
        let end = tokio::time::timeout(Duration::from_secs(30), next)
            .await
            .expect("the next attempt ended")
            .unwrap();
        let logs = service.with_task(TASK, |t| t.logs.clone()).unwrap();
        assert_eq!(
            end,
            ExecutionEnd::Completed(ExecutionOutcome::Succeeded),
            "k {k}: {logs:#?}"
        );
        check(&db, &service, k, 2, orphan_fate).await;
        assert_eq!(
            count(&logs, "t", &format!("statement {k}/3 failed")),
            1,
            "k {k}: the orphan did not land first: {logs:#?}"
        );
        assert!(
            logs.iter()
                .any(|l| l.table == "t" && l.message.contains("taken as applied")),
            "k {k}: {logs:#?}"
        );
        db.drop_database().await;
        return;
    }
    if orphan_fate == Orphan::Killed {
        let _ = db
            .pool
            .execute(AssertSqlSafe(format!("KILL {orphan}")))
            .await;
    }
    holder.execute("ROLLBACK").await.unwrap();
    holder.close().await.unwrap();
    wait_until_no_alter(&db).await;
    let landed = db.fingerprint("_test_t").await.as_deref()
        == Some(
            service
                .with_task(TASK, |t| {
                    t.tables
                        .iter()
                        .find(|t| t.source == "t")
                        .unwrap()
                        .statements[k - 1]
                        .expected_fingerprint_after
                        .clone()
                })
                .unwrap()
                .as_str(),
        );

    let end = run_once(service.clone(), attempt, "executor-next").await;
    let logs = service.with_task(TASK, |t| t.logs.clone()).unwrap();
    assert_eq!(
        end,
        ExecutionEnd::Completed(ExecutionOutcome::Succeeded),
        "k {k}: {logs:#?}"
    );
    check(&db, &service, k, if landed { 1 } else { 2 }, orphan_fate).await;
    db.drop_database().await;
    assert_eq!(
        landed,
        orphan_fate == Orphan::Lands,
        "k {k}: the orphaned statement"
    );
}

/// Every table in sync; statement `k` of `t` started `k_started` times in all (the others
/// once), none finished twice; the cut is in the log.
async fn check(
    db: &TestDb,
    service: &InMemoryTaskServiceDouble,
    k: usize,
    k_started: usize,
    orphan_fate: Orphan,
) {
    let logs = service.with_task(TASK, |t| t.logs.clone()).unwrap();
    let landed = k_started == 1;
    for source in ["a", "b", "t"] {
        let status = service
            .with_task(TASK, |t| t.results[source].status)
            .unwrap();
        assert!(
            matches!(
                status,
                TableExecutionStatus::Succeeded | TableExecutionStatus::AlreadyInSync
            ),
            "k {k}: {source} is {status:?}"
        );
        assert_eq!(
            db.fingerprint(source).await,
            db.fingerprint(&format!("_test_{source}")).await,
            "k {k}: {source}"
        );
    }
    // Statements before the cut ran once, in attempt 1; the cut one ran again only if it had
    // not landed; the ones after it ran once, in attempt 2. A second ADD COLUMN would also have
    // failed the table (1060).
    for j in 1..=3 {
        let expected = if j == k { k_started } else { 1 };
        assert_eq!(
            count(&logs, "t", &format!("statement {j}/3 started")),
            expected,
            "k {k}, {orphan_fate:?}, statement {j}: {logs:#?}"
        );
        assert!(
            count(&logs, "t", &format!("statement {j}/3 finished")) <= 1,
            "k {k}: statement {j} finished twice: {logs:#?}"
        );
    }
    if landed && k < 3 {
        assert_eq!(
            count(&logs, "t", &format!("resuming: statements 1 to {k} of 3")),
            1,
            "k {k}: {logs:#?}"
        );
    }
    if landed && k == 3 {
        assert_eq!(
            service.with_task(TASK, |t| t.results["t"].status).unwrap(),
            TableExecutionStatus::AlreadyInSync
        );
    }
    // The cut is in the log of attempt 1.
    assert_eq!(
        count(
            &logs,
            "t",
            &format!("statement {k}/3: lost the database connection")
        ),
        1,
        "k {k}: {logs:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_cut_mid_statement_resumes_without_altering_twice() {
    // Each statement of the three-ALTER table cut twice: once the orphaned statement is killed
    // (the next attempt runs it), once it lands after the cut (the next attempt skips it).
    for k in 1..=3 {
        for orphan in [Orphan::Killed, Orphan::Lands] {
            cut_mid_statement(k, orphan).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_statement_orphaned_by_a_cut_that_lands_during_the_next_attempt_is_not_a_failure() {
    // The next attempt's own copy of the statement then fails (1060 duplicate column) on a
    // shadow that already holds its result: the engine takes the result as present.
    for k in [1, 3] {
        cut_mid_statement(k, Orphan::LandsDuringNextAttempt).await;
    }
}
