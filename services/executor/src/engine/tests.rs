//! The engine against the real MariaDB, with plans made by the schema engine from real tables
//! and the task service played by `InMemoryTaskServiceDouble`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use shadowsync_common::clock::SystemClock;
use shadowsync_proto::task::v1::{ErrorStrategy, ExecutionOutcome, TableExecutionStatus};
use tokio_util::sync::CancellationToken;

use super::*;
use crate::backend::{ClaimOutcome, PlanStatement, TableReport};
use crate::testing::TestDb;
use crate::testing::task_service_double::{InMemoryTaskServiceDouble, OnFinalReport};

pub(super) const TASK: i64 = 42;

pub(super) struct Harness {
    pub(super) db: TestDb,
    pub(super) service: Arc<InMemoryTaskServiceDouble>,
}

impl Harness {
    pub(super) async fn new(ddl: &str) -> Self {
        let db = TestDb::new().await;
        if !ddl.is_empty() {
            db.exec(ddl).await;
        }
        let service = Arc::new(InMemoryTaskServiceDouble::new(Arc::new(SystemClock)));
        Self { db, service }
    }

    pub(super) fn add(&self, strategy: ErrorStrategy, tables: Vec<PlanTable>) {
        self.service
            .add_task(TASK, self.db.target(), strategy, tables);
    }

    pub(super) async fn run(&self, attempt: u32, executor: &str) -> ExecutionEnd {
        self.run_with(attempt, executor, 1).await
    }

    /// [`Harness::run`] with `table_parallelism` lanes.
    pub(super) async fn run_with(
        &self,
        attempt: u32,
        executor: &str,
        table_parallelism: usize,
    ) -> ExecutionEnd {
        self.run_until(
            attempt,
            executor,
            table_parallelism,
            CancellationToken::new(),
        )
        .await
    }

    /// [`Harness::run_with`], shutting down when `stop` is cancelled.
    pub(super) async fn run_until(
        &self,
        attempt: u32,
        executor: &str,
        table_parallelism: usize,
        stop: CancellationToken,
    ) -> ExecutionEnd {
        let backend: Arc<dyn ExecutionBackend> = self.service.clone();
        let claim = match backend.claim(TASK, attempt, executor).await.unwrap() {
            ClaimOutcome::Granted(claim) => *claim,
            ClaimOutcome::Refused(reason) => panic!("refused: {reason:?}"),
        };
        let context = EngineContext {
            backend,
            clock: Arc::new(SystemClock),
            stop,
            table_parallelism,
        };
        execute(&context, claim).await
    }

    pub(super) fn status(&self, source: &str) -> Option<TableExecutionStatus> {
        self.service
            .with_task(TASK, |task| task.results.get(source).map(|r| r.status))
            .flatten()
    }

    pub(super) fn result(&self, source: &str) -> TableReport {
        self.service
            .with_task(TASK, |task| task.results.get(source).cloned())
            .flatten()
            .unwrap()
    }

    pub(super) fn logs(&self) -> Vec<String> {
        self.service
            .with_task(TASK, |task| {
                task.logs
                    .iter()
                    .map(|l| format!("{:?} [{}] {}", l.level, l.table, l.message))
                    .collect()
            })
            .unwrap_or_default()
    }

    pub(super) async fn assert_in_sync(&self, source: &str) {
        let shadow = format!("_test_{source}");
        let (source_fp, shadow_fp) = (
            self.db.fingerprint(source).await,
            self.db.fingerprint(&shadow).await,
        );
        assert!(source_fp.is_some());
        assert_eq!(source_fp, shadow_fp, "{source} and its shadow differ");
    }
}

/// Three independent tables `a`, `b`, `c` without shadows.
const ABC: &str = "CREATE TABLE a (id int PRIMARY KEY, v varchar(10));\
    CREATE TABLE b (id int PRIMARY KEY, w int(5) unsigned zerofill);\
    CREATE TABLE c (id int PRIMARY KEY, t datetime DEFAULT current_timestamp());";

fn sabotage(tables: &mut [PlanTable], source: &str) {
    let table = tables.iter_mut().find(|t| t.source == source).unwrap();
    // Passes the guard, fails in the server (1072: key column doesn't exist).
    table.statements[0].sql = format!(
        "CREATE TABLE `{}` (`id` int, KEY `k` (`missing`))",
        table.shadow
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_and_update_tables_run_and_shadows_equal_their_sources() {
    let h = Harness::new(
        "CREATE TABLE customers (id int PRIMARY KEY, name varchar(50) NOT NULL COMMENT 'a; DROP');\
         CREATE TABLE orders (id int(8) unsigned zerofill NOT NULL, customer_id int NOT NULL,\
           qty int NOT NULL, price decimal(10,2) NOT NULL,\
           total decimal(12,2) AS (qty * price) STORED, PRIMARY KEY (id), KEY (customer_id),\
           CONSTRAINT fk_c FOREIGN KEY (customer_id) REFERENCES customers (id));\
         CREATE TABLE events (id int NOT NULL, at date NOT NULL, PRIMARY KEY (id, at))\
           PARTITION BY RANGE (year(at)) (PARTITION p1 VALUES LESS THAN (2024),\
           PARTITION p2 VALUES LESS THAN MAXVALUE);\
         CREATE TABLE _test_customers (id int PRIMARY KEY, legacy int);\
         CREATE TABLE _test_events (id int NOT NULL, PRIMARY KEY (id));",
    )
    .await;
    let plan = h.db.plan().await;
    assert_eq!(plan.len(), 3, "{plan:#?}");
    h.add(ErrorStrategy::Abort, plan);
    let end = h.run(1, "executor-a").await;
    assert_eq!(
        end,
        ExecutionEnd::Completed(ExecutionOutcome::Succeeded),
        "{:#?}",
        h.logs()
    );
    for source in ["customers", "orders", "events"] {
        assert_eq!(h.status(source), Some(TableExecutionStatus::Succeeded));
        if source != "orders" {
            h.assert_in_sync(source).await;
        }
    }
    // The orders shadow references the customers shadow: re-analysing finds nothing to do.
    assert!(h.db.plan().await.is_empty());
    let logs = h.logs();
    assert!(
        logs.iter().any(|l| l.contains("statement 1/1 started")),
        "{logs:#?}"
    );
    assert!(logs.iter().any(|l| l.contains("finished in")), "{logs:#?}");
    h.db.drop_database().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abort_strategy_stops_at_the_first_failure() {
    let h = Harness::new(ABC).await;
    let mut plan = h.db.plan().await;
    sabotage(&mut plan, "b");
    h.add(ErrorStrategy::Abort, plan);
    let end = h.run(1, "executor-a").await;
    assert_eq!(end, ExecutionEnd::Completed(ExecutionOutcome::Failed));
    assert_eq!(h.status("a"), Some(TableExecutionStatus::Succeeded));
    assert_eq!(h.status("b"), Some(TableExecutionStatus::Failed));
    assert_eq!(h.result("b").error_code, "1072");
    assert_eq!(h.status("c"), Some(TableExecutionStatus::NotRun));
    assert_eq!(h.db.fingerprint("_test_c").await, None);
    let logs = h.logs();
    assert!(
        logs.iter()
            .any(|l| l.starts_with("Error [b]") && l.contains("error 1072")),
        "{logs:#?}"
    );
    h.db.drop_database().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn continue_strategy_goes_on_after_a_failure() {
    let h = Harness::new(ABC).await;
    let mut plan = h.db.plan().await;
    sabotage(&mut plan, "b");
    h.add(ErrorStrategy::Continue, plan);
    let end = h.run(1, "executor-a").await;
    assert_eq!(end, ExecutionEnd::Completed(ExecutionOutcome::Failed));
    assert_eq!(h.status("a"), Some(TableExecutionStatus::Succeeded));
    assert_eq!(h.status("b"), Some(TableExecutionStatus::Failed));
    assert_eq!(h.status("c"), Some(TableExecutionStatus::Succeeded));
    h.assert_in_sync("c").await;
    h.db.drop_database().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tampered_statements_are_refused_and_the_database_is_untouched() {
    let h =
        Harness::new("CREATE TABLE orders (id int PRIMARY KEY); CREATE TABLE a (id int);").await;
    let before = h.db.fingerprint("orders").await;
    let mut plan = h.db.plan().await;
    let a = plan.iter_mut().find(|t| t.source == "a").unwrap();
    let template = a.statements[0].clone();
    a.statements = [
        "DROP TABLE orders",
        "ALTER TABLE orders ADD COLUMN x int",
        "INSERT INTO orders VALUES (1)",
        "CREATE TABLE `_test_a` (id int); DROP TABLE orders",
    ]
    .iter()
    .enumerate()
    .map(|(i, sql)| PlanStatement {
        index: i as u32,
        sql: (*sql).to_owned(),
        script_index: template.script_index * 10 + i as u32,
        ..template.clone()
    })
    .collect();
    let tampered = a.statements.clone();
    for (i, statement) in tampered.into_iter().enumerate() {
        let mut one = plan.clone();
        let a = one.iter_mut().find(|t| t.source == "a").unwrap();
        a.statements = vec![PlanStatement {
            index: 0,
            ..statement
        }];
        let service = Arc::new(InMemoryTaskServiceDouble::new(Arc::new(SystemClock)));
        service.add_task(TASK + i as i64, h.db.target(), ErrorStrategy::Continue, one);
        let backend: Arc<dyn ExecutionBackend> = service.clone();
        let ClaimOutcome::Granted(claim) = backend.claim(TASK + i as i64, 1, "x").await.unwrap()
        else {
            panic!("refused")
        };
        let context = EngineContext {
            backend,
            clock: Arc::new(SystemClock),
            stop: CancellationToken::new(),
            table_parallelism: 1,
        };
        let end = execute(&context, *claim).await;
        assert_eq!(end, ExecutionEnd::Completed(ExecutionOutcome::Failed));
        let result = service
            .with_task(TASK + i as i64, |t| t.results.get("a").cloned())
            .flatten()
            .unwrap();
        assert_eq!(result.status, TableExecutionStatus::Failed);
        assert_eq!(result.error_code, "guard_refused");
    }
    assert_eq!(h.db.fingerprint("orders").await, before);
    assert_eq!(h.db.fingerprint("_test_a").await, None);
    let rows: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM orders")
        .fetch_one(&h.db.pool)
        .await
        .unwrap();
    assert_eq!(rows, 0);
    h.db.drop_database().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drift_fails_the_table_with_the_reason() {
    let h = Harness::new(ABC).await;
    let plan = h.db.plan().await;
    // The source of `a` changes after the analysis; a shadow of `b` appears underneath.
    h.db.exec("ALTER TABLE a ADD COLUMN extra int; CREATE TABLE _test_b (id int)")
        .await;
    h.add(ErrorStrategy::Continue, plan);
    let end = h.run(1, "executor-a").await;
    assert_eq!(end, ExecutionEnd::Completed(ExecutionOutcome::Failed));
    let a = h.result("a");
    assert_eq!(
        (a.status, a.error_code.as_str()),
        (TableExecutionStatus::Failed, "source_drift")
    );
    assert_eq!(
        a.error_message,
        "source table changed since analysis; initiate the task again"
    );
    let b = h.result("b");
    assert_eq!(
        (b.status, b.error_code.as_str()),
        (TableExecutionStatus::Failed, "shadow_drift")
    );
    assert_eq!(h.status("c"), Some(TableExecutionStatus::Succeeded));
    assert_eq!(h.db.fingerprint("_test_a").await, None);
    let logs = h.logs();
    assert!(
        logs.iter()
            .any(|l| l.starts_with("Warn [b]") && l.contains("(missing)")),
        "{logs:#?}"
    );
    h.db.drop_database().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abort_is_honoured_between_statements() {
    let h = Harness::new(ABC).await;
    let plan = h.db.plan().await;
    h.add(ErrorStrategy::Abort, plan);
    h.service
        .on_final_report(TASK, "a", OnFinalReport::RequestAbort);
    let end = h.run(1, "executor-a").await;
    assert_eq!(end, ExecutionEnd::Completed(ExecutionOutcome::Cancelled));
    assert_eq!(h.status("a"), Some(TableExecutionStatus::Succeeded));
    assert_eq!(h.status("b"), Some(TableExecutionStatus::NotRun));
    assert_eq!(h.status("c"), Some(TableExecutionStatus::NotRun));
    assert_eq!(h.db.fingerprint("_test_b").await, None);
    assert_eq!(
        h.service.with_task(TASK, |t| t.final_outcome).flatten(),
        Some(ExecutionOutcome::Cancelled)
    );
    h.db.drop_database().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_lease_stops_before_the_next_statement() {
    let h = Harness::new(ABC).await;
    let plan = h.db.plan().await;
    h.add(ErrorStrategy::Abort, plan);
    h.service
        .on_final_report(TASK, "a", OnFinalReport::StealLease);
    let end = h.run(1, "executor-a").await;
    assert_eq!(end, ExecutionEnd::LeaseLost);
    assert_eq!(h.db.fingerprint("_test_b").await, None);
    assert_eq!(
        h.service.with_task(TASK, |t| t.final_outcome).flatten(),
        None
    );
    h.db.drop_database().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reports_ride_out_a_task_service_outage_shorter_than_the_lease() {
    let h = Harness::new("CREATE TABLE a (id int PRIMARY KEY)").await;
    let plan = h.db.plan().await;
    h.add(ErrorStrategy::Abort, plan);
    // About seven seconds of refused reports (the back-off is capped at 2 s), well inside the
    // 30 s lease: the run waits them out instead of abandoning the task to a re-dispatch.
    h.service
        .unavailable_reports
        .store(8, std::sync::atomic::Ordering::SeqCst);
    let end = h.run(1, "executor-a").await;
    assert_eq!(end, ExecutionEnd::Completed(ExecutionOutcome::Succeeded));
    assert_eq!(h.status("a"), Some(TableExecutionStatus::Succeeded));
    h.db.drop_database().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_database_interrupts_without_completing() {
    let h = Harness::new(ABC).await;
    let plan = h.db.plan().await;
    let mut target = h.db.target();
    target.port = 1; // nothing listens there
    h.service.add_task(TASK, target, ErrorStrategy::Abort, plan);
    let end = h.run(1, "executor-a").await;
    assert!(matches!(end, ExecutionEnd::Interrupted(_)), "{end:?}");
    // The lease will lapse and the task be re-dispatched; nothing was recorded as done.
    assert_eq!(
        h.service.with_task(TASK, |t| t.final_outcome).flatten(),
        None
    );
    assert!(h.service.with_task(TASK, |t| t.results.is_empty()).unwrap());
    let logs = h.logs();
    assert!(
        logs.iter().any(|l| l.contains("cannot connect")),
        "{logs:#?}"
    );
    h.db.drop_database().await;
}
