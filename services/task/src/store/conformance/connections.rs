//! Connections and idempotency keys.

use shadowsync_common::db::Database;
use sqlx::Row;

use crate::store::connections::{ConnectionRepository, ConnectionWriteError, DeleteOutcome};
use crate::store::tasks::{FINAL_STATUSES, TaskRepository};
use crate::store::*;

fn connection(id: &str, name: &str, environment: &str) -> ConnectionRecord {
    ConnectionRecord {
        id: id.into(),
        name: name.into(),
        dialect: 2,
        host: "db.example".into(),
        port: 3306,
        username: "app".into(),
        password_ciphertext: Some(vec![1, 2, 3, 0, 255]),
        environment: environment.into(),
        options: [("ssl-mode".to_string(), "REQUIRED".to_string())].into(),
        creator: "root".into(),
        created_at: 10,
        updated_at: 10,
    }
}

pub(super) async fn connections_round_trip_and_names_are_unique(db: Database) {
    let store = SqlStore::new(db);
    let first = connection("c1", "main", "prod");
    store.insert_connection(&first).await.unwrap();
    assert_eq!(
        store.get_connection("c1").await.unwrap(),
        Some(first.clone())
    );
    assert!(store.get_connection("nope").await.unwrap().is_none());
    let clash = connection("c2", "main", "dev");
    assert!(matches!(
        store.insert_connection(&clash).await,
        Err(ConnectionWriteError::NameTaken)
    ));
    let mut renamed = connection("c2", "other", "dev");
    store.insert_connection(&renamed).await.unwrap();
    renamed.name = "main".into();
    assert!(matches!(
        store.update_connection(&renamed).await,
        Err(ConnectionWriteError::NameTaken)
    ));
    renamed.name = "second".into();
    renamed.password_ciphertext = None;
    renamed.updated_at = 20;
    assert!(store.update_connection(&renamed).await.unwrap());
    assert_eq!(store.get_connection("c2").await.unwrap(), Some(renamed));
    assert_eq!(
        store.delete_connection("c2").await.unwrap(),
        DeleteOutcome::Deleted
    );
    assert_eq!(
        store.delete_connection("c2").await.unwrap(),
        DeleteOutcome::NotFound
    );
}

/// Inserts a bare task row (one analysis each: a task freezes its own analysis); returns its id.
async fn insert_task(db: &Database, connection_id: &str, status: &str) -> i64 {
    sqlx::query(
        "INSERT INTO tasks (analysis_id, connection_id, database_name, status, creator, \
         created_at, updated_at) VALUES ($3, $1, 'shop', $2, 'alice', 10, 10) RETURNING id",
    )
    .bind(connection_id.to_string())
    .bind(status.to_string())
    .bind(uuid::Uuid::new_v4().to_string())
    .fetch_one(db.pool())
    .await
    .unwrap()
    .try_get(0)
    .unwrap()
}

async fn set_status(db: &Database, id: i64, status: &str) {
    sqlx::query("UPDATE tasks SET status = $2 WHERE id = $1")
        .bind(id)
        .bind(status.to_string())
        .execute(db.pool())
        .await
        .unwrap();
}

pub(super) async fn unfinished_tasks_are_counted_and_block_the_delete(db: Database) {
    let store = SqlStore::new(db.clone());
    store
        .insert_connection(&connection("c1", "main", "prod"))
        .await
        .unwrap();
    store
        .insert_connection(&connection("c2", "other", "dev"))
        .await
        .unwrap();
    assert_eq!(store.count_unfinished_tasks("c1").await.unwrap(), 0);

    // Every final status is finished; the hidden SUBMITTING and the live ones are not.
    for status in FINAL_STATUSES {
        insert_task(&db, "c1", status).await;
    }
    assert_eq!(store.count_unfinished_tasks("c1").await.unwrap(), 0);
    let mut live = Vec::new();
    for status in ["SUBMITTING", "APPROVING", "WAIT_FOR_EXECUTION", "EXECUTING"] {
        live.push(insert_task(&db, "c1", status).await);
    }
    insert_task(&db, "c2", "APPROVING").await;
    assert_eq!(store.count_unfinished_tasks("c1").await.unwrap(), 4);
    assert_eq!(store.count_unfinished_tasks("c2").await.unwrap(), 1);
    assert_eq!(store.count_unfinished_tasks("unknown").await.unwrap(), 0);

    // Ids increase.
    assert!(live.windows(2).all(|pair| pair[0] < pair[1]), "{live:?}");

    // The delete is refused, naming the count, and changes nothing.
    assert_eq!(
        store.delete_connection("c1").await.unwrap(),
        DeleteOutcome::InUse(4)
    );
    assert!(store.get_connection("c1").await.unwrap().is_some());

    // Once every task has finished, it goes.
    for (id, status) in live
        .iter()
        .zip(["CANCELLED", "REJECTED", "WAIT_FOR_EXECUTION_EXPIRED"])
    {
        set_status(&db, *id, status).await;
    }
    assert_eq!(
        store.delete_connection("c1").await.unwrap(),
        DeleteOutcome::InUse(1)
    );
    set_status(&db, live[3], "EXECUTION_SUCCEEDED").await;
    assert_eq!(
        store.delete_connection("c1").await.unwrap(),
        DeleteOutcome::Deleted
    );
    assert!(store.get_connection("c1").await.unwrap().is_none());
    // Finished tasks keep the deleted connection's id; the other connection is untouched.
    assert_eq!(store.count_unfinished_tasks("c2").await.unwrap(), 1);
    assert_eq!(
        store.delete_connection("c2").await.unwrap(),
        DeleteOutcome::InUse(1)
    );

    // The status set is closed.
    let unknown = sqlx::query(
        "INSERT INTO tasks (analysis_id, connection_id, database_name, status, creator, \
         created_at, updated_at) VALUES ('a1', 'c2', 'shop', 'DONE', 'alice', 10, 10)",
    )
    .execute(db.pool())
    .await;
    assert!(unknown.is_err());
}

pub(super) async fn connections_list_filters_sorts_and_pages(db: Database) {
    let store = SqlStore::new(db);
    for (i, (name, environment)) in [("b_main", "prod"), ("a_test", "test"), ("c_50%", "prod")]
        .into_iter()
        .enumerate()
    {
        store
            .insert_connection(&connection(&format!("c{i}"), name, environment))
            .await
            .unwrap();
    }
    let all = ConnectionFilter {
        limit: 2,
        ..Default::default()
    };
    let (page, total) = store.list_connections(&all).await.unwrap();
    assert_eq!(total, 3);
    assert_eq!(
        page.iter().map(|c| c.name.as_str()).collect::<Vec<_>>(),
        ["a_test", "b_main"]
    );
    let (rest, _) = store
        .list_connections(&ConnectionFilter {
            offset: 2,
            ..all.clone()
        })
        .await
        .unwrap();
    assert_eq!(rest.len(), 1);
    let prod = ConnectionFilter {
        environments: vec!["prod".into()],
        name_contains: "50%".into(),
        limit: 10,
        ..Default::default()
    };
    let (found, total) = store.list_connections(&prod).await.unwrap();
    assert_eq!((found.len(), total), (1, 1));
    assert_eq!(found[0].name, "c_50%");
    let upper = ConnectionFilter {
        name_contains: "MAIN".into(),
        limit: 10,
        ..Default::default()
    };
    assert_eq!(store.list_connections(&upper).await.unwrap().1, 1);
}

pub(super) async fn request_ids_reserve_replay_and_refuse_other_parameters(db: Database) {
    use crate::store::request_ids::{Remembered, RequestIdRepository, RequestKey};
    let store = SqlStore::new(db);
    let key = RequestKey {
        caller: "alice",
        rpc: "StartAnalysis",
        request_id: "r1",
        parameters_sha256: "h1",
    };
    assert_eq!(
        store.remember(&key, "a1", 10).await.unwrap(),
        Remembered::Reserved
    );
    assert_eq!(
        store.remember(&key, "a2", 11).await.unwrap(),
        Remembered::Same("a1".into())
    );
    let other = RequestKey {
        parameters_sha256: "h2",
        ..key
    };
    assert_eq!(
        store.remember(&other, "a3", 12).await.unwrap(),
        Remembered::Different
    );
    // Scoped to the caller.
    let bob = RequestKey {
        caller: "bob",
        ..key
    };
    assert_eq!(
        store.remember(&bob, "b1", 12).await.unwrap(),
        Remembered::Reserved
    );
    store.forget(&key).await.unwrap();
    assert_eq!(
        store.remember(&key, "a4", 13).await.unwrap(),
        Remembered::Reserved
    );
    assert_eq!(store.forget_before(13).await.unwrap(), 1);
    assert_eq!(store.forget_before(14).await.unwrap(), 1);
}

/// A task inserted as migration `0002_tasks` asks (connection row locked first, same
/// transaction) while a delete runs: the delete waits for it and then refuses.
pub(super) async fn a_task_inserted_during_a_delete_cannot_slip_through(db: Database) {
    let store = SqlStore::new(db.clone());
    store
        .insert_connection(&connection("c1", "main", "prod"))
        .await
        .unwrap();
    let mut inserter = db.pool().begin().await.unwrap();
    let locked = sqlx::query("UPDATE connections SET updated_at = updated_at WHERE id = $1")
        .bind("c1")
        .execute(&mut *inserter)
        .await
        .unwrap();
    assert_eq!(locked.rows_affected(), 1);
    sqlx::query(
        "INSERT INTO tasks (analysis_id, connection_id, database_name, status, creator, \
         created_at, updated_at) VALUES ('a1', 'c1', 'shop', 'SUBMITTING', 'alice', 10, 10)",
    )
    .execute(&mut *inserter)
    .await
    .unwrap();
    let deleter = store.clone();
    let delete = tokio::spawn(async move { deleter.delete_connection("c1").await });
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert!(
        !delete.is_finished(),
        "the delete waits for the inserter's lock"
    );
    inserter.commit().await.unwrap();
    assert_eq!(delete.await.unwrap().unwrap(), DeleteOutcome::InUse(1));
    assert!(store.get_connection("c1").await.unwrap().is_some());
}
