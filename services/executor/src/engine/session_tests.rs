//! The executor's sessions on the real MariaDB run under the pinned `sql_mode`, whatever mode a
//! connection starts with, and the tables whose DDL MariaDB prints with `\'` now sync.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;

use shadowsync_proto::task::v1::{ErrorStrategy, ExecutionOutcome, TableExecutionStatus};
use shadowsync_schema::{SESSION_SQL_MODE, pin_session, pinned_pool, without_driver_sql_mode};
use sqlx::mysql::{MySqlConnectOptions, MySqlConnection, MySqlPoolOptions};
use sqlx::{Connection as _, Executor as _};

use super::database::TargetDatabase;
use super::tests::Harness;
use super::*;
use crate::testing::{TestDb, URL};

fn modes(mode: &str) -> BTreeSet<String> {
    mode.split(',')
        .filter(|m| !m.is_empty())
        .map(str::to_owned)
        .collect()
}

async fn session_mode(connection: &mut MySqlConnection) -> BTreeSet<String> {
    let (mode,): (String,) = sqlx::query_as("SELECT CAST(@@SESSION.sql_mode AS CHAR)")
        .fetch_one(connection)
        .await
        .unwrap();
    modes(&mode)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_executors_sessions_run_under_the_pinned_sql_mode() {
    let db = TestDb::new().await;
    // What a connection starts with here differs from the pinned mode (the server's default
    // adds NO_AUTO_CREATE_USER, sqlx adds PIPES_AS_CONCAT): pinning is what makes them equal.
    let mut plain = MySqlConnection::connect(URL).await.unwrap();
    assert_ne!(session_mode(&mut plain).await, modes(SESSION_SQL_MODE));
    let _ = plain.close().await;

    let mut target = TargetDatabase::connect(&db.target()).await.unwrap();
    assert_eq!(
        session_mode(target.connection()).await,
        modes(SESSION_SQL_MODE)
    );
    let mut lane = target.open_session().await.unwrap();
    assert_eq!(
        session_mode(lane.connection()).await,
        modes(SESSION_SQL_MODE)
    );
    lane.close().await;
    target.close().await;

    // The introspector's pool: every connection it opens is pinned.
    let options: MySqlConnectOptions = URL.parse().unwrap();
    let pool = pinned_pool(MySqlPoolOptions::new().max_connections(2))
        .connect_with(without_driver_sql_mode(options))
        .await
        .unwrap();
    let (mut first, mut second) = (pool.acquire().await.unwrap(), pool.acquire().await.unwrap());
    assert_eq!(session_mode(&mut first).await, modes(SESSION_SQL_MODE));
    assert_eq!(session_mode(&mut second).await, modes(SESSION_SQL_MODE));
    drop((first, second));
    pool.close().await;
    db.drop_database().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pinning_overrides_a_hostile_session_mode_and_checks_the_character_set() {
    // Set per connection, never globally: the server is shared.
    let mut connection = MySqlConnection::connect(URL).await.unwrap();
    connection
        .execute("SET SESSION sql_mode = 'ANSI_QUOTES,NO_BACKSLASH_ESCAPES,PIPES_AS_CONCAT'")
        .await
        .unwrap();
    // Under that mode `'it\'s'` is not one string: the premise of pinning.
    assert!(connection.execute(r"SELECT 'it\'s'").await.is_err());
    pin_session(&mut connection).await.unwrap();
    assert_eq!(session_mode(&mut connection).await, modes(SESSION_SQL_MODE));
    let (value,): (String,) = sqlx::query_as(r"SELECT 'it\'s'")
        .fetch_one(&mut connection)
        .await
        .unwrap();
    assert_eq!(value, "it's");
    // A client character set in which a trailing byte can be a backslash is refused.
    connection.execute("SET NAMES gbk").await.unwrap();
    let error = pin_session(&mut connection).await.unwrap_err();
    assert!(error.to_string().contains("gbk"), "{error}");
    let _ = connection.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tables_printed_with_escaped_quotes_sync_through_the_engine() {
    // MariaDB prints each of these literals back with `\'`; the guard used to refuse them all.
    let h = Harness::new(
        "CREATE TABLE notes (id int PRIMARY KEY, v varchar(20) DEFAULT 'it''s',\
           w varchar(40) AS (concat(v, '''s \\\\ end')) VIRTUAL,\
           d varchar(40) DEFAULT (concat('a''b', id)),\
           CONSTRAINT v_ok CHECK (v <> 'it''s'));\
         CREATE TABLE plain (id int PRIMARY KEY, CONSTRAINT c CHECK (id <> 0))",
    )
    .await;
    let plan = h.db.plan().await;
    let sql: Vec<&str> = plan
        .iter()
        .flat_map(|t| t.statements.iter().map(|s| s.sql.as_str()))
        .collect();
    assert!(sql.iter().any(|s| s.contains(r"'it\'s'")), "{sql:#?}");
    h.add(ErrorStrategy::Abort, plan);
    let end = h.run(1, "executor-a").await;
    assert_eq!(
        end,
        ExecutionEnd::Completed(ExecutionOutcome::Succeeded),
        "{:#?}",
        h.logs()
    );
    assert_eq!(h.status("notes"), Some(TableExecutionStatus::Succeeded));
    h.assert_in_sync("notes").await;
    h.assert_in_sync("plain").await;
    assert!(h.db.plan().await.is_empty());
    h.db.drop_database().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_child_references_a_parents_shadow_outside_the_plan_through_the_naming_rule() {
    // The parent's shadow is in sync, so the plan holds only the child; its foreign key names
    // `_test_customers`, a shadow by the task's naming rule (the claim carries it).
    let h = Harness::new(
        "CREATE TABLE customers (id int PRIMARY KEY);\
         CREATE TABLE _test_customers (id int PRIMARY KEY);\
         CREATE TABLE orders (id int PRIMARY KEY, customer_id int NOT NULL,\
           CONSTRAINT fk_c FOREIGN KEY (customer_id) REFERENCES customers (id))",
    )
    .await;
    let plan = h.db.plan().await;
    assert_eq!(
        plan.iter().map(|t| t.source.as_str()).collect::<Vec<_>>(),
        ["orders"]
    );
    assert!(
        plan[0].statements[0]
            .sql
            .contains("REFERENCES `_test_customers`")
    );
    h.add(ErrorStrategy::Abort, plan);
    let end = h.run(1, "executor-a").await;
    assert_eq!(
        end,
        ExecutionEnd::Completed(ExecutionOutcome::Succeeded),
        "{:#?}",
        h.logs()
    );
    // (Fingerprints differ by the FK's target; re-analysing finds nothing to do.)
    assert_eq!(h.status("orders"), Some(TableExecutionStatus::Succeeded));
    assert!(h.db.plan().await.is_empty());
    h.db.drop_database().await;
}
