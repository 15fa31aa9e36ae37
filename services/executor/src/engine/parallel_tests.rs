//! Parallel lanes on the real MariaDB: a reader's open transaction holds a shadow's metadata
//! lock, so the ALTER on it waits mid-statement while the test watches what the other lanes do.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use shadowsync_common::testing::TcpProxy;
use shadowsync_common::testing::mariadb::mysql_url;
use shadowsync_proto::task::v1::{ErrorStrategy, ExecutionOutcome, TableExecutionStatus};
use sqlx::mysql::{MySqlConnectOptions, MySqlConnection};
use sqlx::{Connection as _, Executor as _};

use super::tests::{Harness, TASK};
use super::*;
use crate::backend::PlanStatement;
use crate::testing::task_service_double::OnFinalReport;

use TableExecutionStatus::{Failed, NotRun, Running, Succeeded};

/// Four independent tables whose shadows each lack one column: one ALTER each.
const FOUR: &str = "CREATE TABLE a (id int PRIMARY KEY, v int); CREATE TABLE _test_a (id int PRIMARY KEY);\
    CREATE TABLE b (id int PRIMARY KEY, v int); CREATE TABLE _test_b (id int PRIMARY KEY);\
    CREATE TABLE c (id int PRIMARY KEY, v int); CREATE TABLE _test_c (id int PRIMARY KEY);\
    CREATE TABLE d (id int PRIMARY KEY, v int); CREATE TABLE _test_d (id int PRIMARY KEY);";

/// A session with an open transaction that has read `table`: DDL on it waits until
/// [`Reader::release`] (or until the connection is dropped, if the test fails first).
struct Reader {
    connection: MySqlConnection,
}

impl Reader {
    async fn hold(h: &Harness, table: &str) -> Self {
        let options = mysql_url()
            .parse::<MySqlConnectOptions>()
            .unwrap()
            .database(&h.db.name);
        let mut connection = MySqlConnection::connect_with(&options).await.unwrap();
        connection.execute("START TRANSACTION").await.unwrap();
        connection
            .execute(sqlx::AssertSqlSafe(format!("SELECT * FROM `{table}`")))
            .await
            .unwrap();
        Self { connection }
    }

    async fn release(mut self) {
        self.connection.execute("COMMIT").await.unwrap();
        self.connection.close().await.unwrap();
    }
}

async fn wait_until(what: &str, condition: impl Fn() -> bool) {
    for _ in 0..1500 {
        if condition() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("timed out waiting until {what}");
}

fn has_line(h: &Harness, text: &str) -> bool {
    h.logs().iter().any(|line| line.contains(text))
}

fn assert_logged(h: &Harness, text: &str) {
    assert!(has_line(h, text), "no `{text}` in {:#?}", h.logs());
}

/// Sets each table's statements' script positions, in the order given.
fn script_order(plan: &mut [PlanTable], order: &[&str]) {
    for (position, source) in order.iter().enumerate() {
        let table = plan.iter_mut().find(|t| t.source == *source).unwrap();
        for statement in &mut table.statements {
            statement.script_index = u32::try_from(position * 10).unwrap() + statement.index;
        }
    }
}

/// [`FOUR`] planned in script order a, b, c, d, as task [`TASK`] with `strategy`.
async fn four_in_script_order(strategy: ErrorStrategy) -> Harness {
    let h = Harness::new(FOUR).await;
    let mut plan = h.db.plan().await;
    script_order(&mut plan, &["a", "b", "c", "d"]);
    h.add(strategy, plan);
    h
}

/// Every table of [`FOUR`] SUCCEEDED and its shadow equal to its source.
async fn assert_all_succeeded_in_sync(h: &Harness) {
    for source in ["a", "b", "c", "d"] {
        assert_eq!(h.status(source), Some(Succeeded), "{source}");
        h.assert_in_sync(source).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn independent_tables_run_at_once_each_on_its_own_connection() {
    let h = four_in_script_order(ErrorStrategy::Abort).await;
    let reader = Reader::hold(&h, "_test_a").await;
    let check = async {
        // `a` is first in script order and held, yet the others finish.
        wait_until("b, c and d are in sync while a is held", || {
            ["b", "c", "d"]
                .iter()
                .all(|source| h.status(source) == Some(Succeeded))
        })
        .await;
        assert_eq!(h.status("a"), Some(Running));
        reader.release().await;
    };
    let (end, ()) = tokio::join!(h.run_with(1, "executor-a", 3), check);
    assert_eq!(end, ExecutionEnd::Completed(ExecutionOutcome::Succeeded));
    assert_all_succeeded_in_sync(&h).await;
    assert_logged(&h, "4 independent lanes of tables, 3 at once");
    h.db.drop_database().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn by_default_tables_run_one_at_a_time_in_script_order() {
    let h = four_in_script_order(ErrorStrategy::Abort).await;
    let reader = Reader::hold(&h, "_test_a").await;
    let check = async {
        wait_until("a has started", || h.status("a") == Some(Running)).await;
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert_eq!(h.status("b"), None, "b started while a was held");
        reader.release().await;
    };
    let (end, ()) = tokio::join!(h.run(1, "executor-a"), check);
    assert_eq!(end, ExecutionEnd::Completed(ExecutionOutcome::Succeeded));
    assert!(!has_line(&h, "independent lanes"));
    h.db.drop_database().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tables_linked_by_a_key_share_a_lane() {
    let h = Harness::new(
        // orders → customers: a key the plan creates. tags → audit: a key the tags shadow holds
        // now and the plan drops. solo: linked to nothing.
        "CREATE TABLE customers (id int PRIMARY KEY, name varchar(20));\
         CREATE TABLE _test_customers (id int PRIMARY KEY);\
         CREATE TABLE orders (id int PRIMARY KEY, customer_id int, KEY k (customer_id),\
           CONSTRAINT fk_oc FOREIGN KEY (customer_id) REFERENCES customers (id));\
         CREATE TABLE audit (id int PRIMARY KEY, at date);\
         CREATE TABLE _test_audit (id int PRIMARY KEY);\
         CREATE TABLE tags (id int PRIMARY KEY, audit_id int, KEY k (audit_id));\
         CREATE TABLE _test_tags (id int PRIMARY KEY, audit_id int, KEY k (audit_id),\
           CONSTRAINT fk_ta FOREIGN KEY (audit_id) REFERENCES _test_audit (id));\
         CREATE TABLE solo (id int PRIMARY KEY, v int); CREATE TABLE _test_solo (id int PRIMARY KEY);",
    )
    .await;
    let plan = h.db.plan().await;
    assert_eq!(plan.len(), 5, "{plan:#?}");
    let depends_on = |source: &str| {
        plan.iter()
            .find(|t| t.source == source)
            .unwrap()
            .depends_on
            .clone()
    };
    assert_eq!(depends_on("orders"), ["customers"]);
    assert!(depends_on("tags").is_empty() && depends_on("audit").is_empty());
    h.add(ErrorStrategy::Abort, plan);
    let readers = [
        Reader::hold(&h, "_test_customers").await,
        Reader::hold(&h, "_test_audit").await,
        Reader::hold(&h, "_test_tags").await,
    ];
    let check = async {
        wait_until("solo is in sync", || h.status("solo") == Some(Succeeded)).await;
        wait_until("customers has started", || {
            h.status("customers") == Some(Running)
        })
        .await;
        wait_until("audit or tags has started", || {
            h.status("audit").is_some() || h.status("tags").is_some()
        })
        .await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        // One table of each linked pair holds its lane; the other has not started.
        assert_eq!(h.status("orders"), None);
        assert!(
            h.status("audit").is_none() || h.status("tags").is_none(),
            "audit {:?} and tags {:?} both started",
            h.status("audit"),
            h.status("tags")
        );
        for reader in readers {
            reader.release().await;
        }
    };
    let (end, ()) = tokio::join!(h.run_with(1, "executor-a", 4), check);
    assert_eq!(
        end,
        ExecutionEnd::Completed(ExecutionOutcome::Succeeded),
        "{:#?}",
        h.logs()
    );
    for source in ["customers", "orders", "audit", "tags", "solo"] {
        assert_eq!(h.status(source), Some(Succeeded), "{source}");
    }
    assert!(h.db.plan().await.is_empty());
    assert_logged(&h, "3 independent lanes of tables, 3 at once");
    h.db.drop_database().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abort_strategy_stops_every_lane_before_its_next_statement() {
    let h = Harness::new(FOUR).await;
    let c_before = h.db.fingerprint("_test_c").await;
    let mut plan = h.db.plan().await;
    let a = plan.iter_mut().find(|t| t.source == "a").unwrap();
    // Passes the guard, fails in the server (1072: key column doesn't exist).
    a.statements[0].sql = "ALTER TABLE `_test_a` ADD KEY `k` (`missing`)".into();
    let b = plan.iter_mut().find(|t| t.source == "b").unwrap();
    b.statements.push(PlanStatement {
        index: 1,
        sql: "ALTER TABLE `_test_b` COMMENT = 'second'".into(),
        ..b.statements[0].clone()
    });
    script_order(&mut plan, &["a", "b", "c", "d"]);
    h.add(ErrorStrategy::Abort, plan);
    let reader = Reader::hold(&h, "_test_b").await;
    let check = async {
        // `a` fails while b's first ALTER waits; c and d wait for a connection.
        wait_until("a failed while b runs", || {
            h.status("a") == Some(Failed) && h.status("b") == Some(Running)
        })
        .await;
        reader.release().await;
    };
    let (end, ()) = tokio::join!(h.run_with(1, "executor-a", 2), check);
    assert_eq!(end, ExecutionEnd::Completed(ExecutionOutcome::Failed));
    assert_eq!(h.result("a").error_code, "1072");
    // b's statement in flight finished; its second one never ran.
    let b = h.result("b");
    assert_eq!((b.status, b.statements_done), (NotRun, 1));
    let ddl: (String, String) = sqlx::query_as("SHOW CREATE TABLE `_test_b`")
        .fetch_one(&h.db.pool)
        .await
        .unwrap();
    assert!(
        ddl.1.contains("`v` int") && !ddl.1.contains("second"),
        "{ddl:?}"
    );
    assert_eq!(h.status("c"), Some(NotRun));
    assert_eq!(h.status("d"), Some(NotRun));
    assert_eq!(h.db.fingerprint("_test_c").await, c_before);
    assert_logged(
        &h,
        "stopped after a failure (error strategy ABORT), after statement 1 of 2",
    );
    h.db.drop_database().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn continue_strategy_lets_the_other_lanes_finish() {
    let h = Harness::new(FOUR).await;
    let mut plan = h.db.plan().await;
    let a = plan.iter_mut().find(|t| t.source == "a").unwrap();
    a.statements[0].sql = "ALTER TABLE `_test_a` ADD KEY `k` (`missing`)".into();
    h.add(ErrorStrategy::Continue, plan);
    let end = h.run_with(1, "executor-a", 2).await;
    assert_eq!(end, ExecutionEnd::Completed(ExecutionOutcome::Failed));
    assert_eq!(h.status("a"), Some(Failed));
    for source in ["b", "c", "d"] {
        assert_eq!(h.status(source), Some(Succeeded));
        h.assert_in_sync(source).await;
    }
    h.db.drop_database().await;
}

/// Runs [`FOUR`] in script order a, b, c, d on two lanes, with `hook` on a's final report
/// while b's ALTER is held; b is released once `a` is done. Returns the harness, the end and
/// c's shadow fingerprint from before the run.
async fn when_a_finishes_while_b_runs(
    strategy: ErrorStrategy,
    hook: OnFinalReport,
) -> (Harness, ExecutionEnd, Option<String>) {
    let h = four_in_script_order(strategy).await;
    let c_before = h.db.fingerprint("_test_c").await;
    h.service.on_final_report(TASK, "a", hook);
    let reader = Reader::hold(&h, "_test_b").await;
    let check = async {
        wait_until("a done while b runs", || {
            h.status("a") == Some(Succeeded) && h.status("b") == Some(Running)
        })
        .await;
        reader.release().await;
    };
    let (end, ()) = tokio::join!(h.run_with(1, "executor-a", 2), check);
    (h, end, c_before)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_users_abort_stops_every_lane() {
    let (h, end, c_before) =
        when_a_finishes_while_b_runs(ErrorStrategy::Continue, OnFinalReport::RequestAbort).await;
    assert_eq!(end, ExecutionEnd::Completed(ExecutionOutcome::Cancelled));
    // b's only statement was running: it finished and b is in sync; c and d never started.
    assert_eq!(h.status("b"), Some(Succeeded));
    assert_eq!(h.status("c"), Some(NotRun));
    assert_eq!(h.status("d"), Some(NotRun));
    assert_eq!(h.db.fingerprint("_test_c").await, c_before);
    h.db.drop_database().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lease_lost_in_one_lane_stops_them_all_without_reporting() {
    let (h, end, c_before) =
        when_a_finishes_while_b_runs(ErrorStrategy::Abort, OnFinalReport::StealLease).await;
    assert_eq!(end, ExecutionEnd::LeaseLost);
    // b's ALTER finished in the server, but its report was refused: the next attempt finds
    // the shadow in its target state.
    assert_eq!(h.status("b"), Some(Running));
    assert_eq!(h.status("c"), None);
    assert_eq!(h.db.fingerprint("_test_c").await, c_before);
    assert_eq!(
        h.service.with_task(TASK, |t| t.final_outcome).flatten(),
        None
    );
    h.db.drop_database().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shutdown_hands_back_every_lane_and_the_next_attempt_resumes() {
    let h = four_in_script_order(ErrorStrategy::Abort).await;
    let (held_a, held_b) = (
        Reader::hold(&h, "_test_a").await,
        Reader::hold(&h, "_test_b").await,
    );
    let stop = tokio_util::sync::CancellationToken::new();
    let shut_down = async {
        wait_until("a and b run on two lanes", || {
            h.status("a") == Some(Running) && h.status("b") == Some(Running)
        })
        .await;
        stop.cancel();
        held_a.release().await;
        held_b.release().await;
    };
    let (end, ()) = tokio::join!(h.run_until(1, "executor-a", 2, stop.clone()), shut_down);
    assert_eq!(end, ExecutionEnd::HandedBack);
    // The statements in flight finished; neither lane started another table.
    assert_eq!(h.status("a"), Some(Succeeded));
    assert_eq!(h.status("b"), Some(Succeeded));
    assert_eq!((h.status("c"), h.status("d")), (None, None));
    let said = h
        .logs()
        .iter()
        .filter(|line| line.contains("handed back between statements"))
        .count();
    assert_eq!(said, 1, "{:#?}", h.logs());

    let attempt = h.service.expire_lease_and_redispatch(TASK);
    let end = h.run_with(attempt, "executor-b", 2).await;
    assert_eq!(end, ExecutionEnd::Completed(ExecutionOutcome::Succeeded));
    assert_all_succeeded_in_sync(&h).await;
    h.db.drop_database().await;
}

/// Waits until the `ALTER TABLE` statements the server runs for `h`'s database satisfy `done`.
async fn wait_for_alters(h: &Harness, done: impl Fn(&[String]) -> bool) {
    for _ in 0..1500 {
        let alters: Vec<String> = sqlx::query_scalar(
            "SELECT COALESCE(INFO, '') FROM information_schema.PROCESSLIST \
             WHERE DB = ? AND INFO LIKE 'ALTER TABLE%'",
        )
        .bind(&h.db.name)
        .fetch_all(&h.db.pool)
        .await
        .unwrap();
        if done(&alters) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("the server's ALTERs never reached the expected state");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_cut_in_one_lane_interrupts_the_run_and_the_next_attempt_finishes() {
    let h = Harness::new(FOUR).await;
    let mut plan = h.db.plan().await;
    script_order(&mut plan, &["a", "b", "c", "d"]);
    let mut proxy = TcpProxy::start("127.0.0.1:3306".parse().unwrap()).await;
    let mut target = h.db.target();
    target.port = proxy.address().port();
    h.service.add_task(TASK, target, ErrorStrategy::Abort, plan);
    let reader = Reader::hold(&h, "_test_b").await;
    let check = async {
        wait_until("b runs", || h.status("b") == Some(Running)).await;
        wait_for_alters(&h, |alters| {
            alters.iter().any(|sql| sql.contains("_test_b"))
        })
        .await;
        proxy.cut().await;
    };
    let started = std::time::Instant::now();
    let (end, ()) = tokio::join!(h.run_with(1, "executor-a", 2), check);
    assert!(matches!(end, ExecutionEnd::Interrupted(_)), "{end:?}");
    // Every lane stops within the target's connect timeout (5 s), whatever it was doing.
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(
        h.service.with_task(TASK, |t| t.final_outcome).flatten(),
        None
    );

    // The orphaned ALTER lands once the reader lets go, unless the server ended it when the
    // connection went; then the lease lapses and the next attempt, on two lanes again, finds b
    // in its target state or runs its ALTER, and finishes the rest.
    reader.release().await;
    wait_for_alters(&h, <[String]>::is_empty).await;
    proxy.restore();
    let attempt = h.service.expire_lease_and_redispatch(TASK);
    let end = h.run_with(attempt, "executor-b", 2).await;
    assert_eq!(
        end,
        ExecutionEnd::Completed(ExecutionOutcome::Succeeded),
        "{:#?}",
        h.logs()
    );
    // A second ADD COLUMN would have failed the table (1060).
    assert!(
        matches!(
            h.status("b"),
            Some(Succeeded | TableExecutionStatus::AlreadyInSync)
        ),
        "{:?}",
        h.status("b")
    );
    for source in ["a", "b", "c", "d"] {
        h.assert_in_sync(source).await;
    }
    h.db.drop_database().await;
}

/// A statement's start is in the task service's log while the statement still runs:
/// an executor that dies mid-statement leaves a log that says what was running.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_statement_start_is_durable_before_the_statement_runs() {
    let h = Harness::new(
        "CREATE TABLE a (id int PRIMARY KEY, v int); CREATE TABLE _test_a (id int PRIMARY KEY);",
    )
    .await;
    let plan = h.db.plan().await;
    h.add(ErrorStrategy::Abort, plan);
    let reader = Reader::hold(&h, "_test_a").await;
    let check = async {
        wait_until(
            "the held statement's start reaches the task service",
            || has_line(&h, "statement 1/1 started"),
        )
        .await;
        // Still held: the line arrived before the statement ended, not with its result.
        assert_eq!(h.status("a"), Some(Running));
        assert!(!has_line(&h, "statement 1/1 finished"), "{:#?}", h.logs());
        reader.release().await;
    };
    let (end, ()) = tokio::join!(h.run(1, "executor-a"), check);
    assert_eq!(end, ExecutionEnd::Completed(ExecutionOutcome::Succeeded));
    assert_logged(&h, "statement 1/1 finished");
    h.db.drop_database().await;
}
