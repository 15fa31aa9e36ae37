//! The `shadowsync.tasks` gauge: how many tasks are in each status, counted in the store.
//!
//! A count is a query over the tasks table, so it runs when a transition was committed (at most
//! once per [`MIN_INTERVAL`]) and otherwise every [`MAX_INTERVAL`]; replicas each report the
//! same figures (dashboards take the maximum).

use std::time::Duration;

use shadowsync_common::db::Database;
use shadowsync_common::telemetry::metrics::{KeyValue, metrics};
use shadowsync_proto::task::v1::TaskStatus;
use sqlx::Row as _;
use tokio::sync::Notify;

use crate::store::lifecycle::status_name;

/// Woken after every committed transition.
pub(crate) static STATUS_CHANGED: Notify = Notify::const_new();

const MIN_INTERVAL: Duration = Duration::from_secs(1);
const MAX_INTERVAL: Duration = Duration::from_secs(15);

/// Every status a task can be in, so a status that empties reads 0 rather than its last count.
fn statuses() -> impl Iterator<Item = TaskStatus> {
    (1..=32).filter_map(|value| TaskStatus::try_from(value).ok())
}

/// Counts tasks by status and records the gauge; returns the counts.
///
/// Fails when the store fails.
pub async fn record(db: &Database) -> Result<Vec<(&'static str, u64)>, sqlx::Error> {
    let rows = sqlx::query("SELECT status, COUNT(*) FROM tasks GROUP BY status")
        .fetch_all(db.pool())
        .await?;
    let mut counts = Vec::new();
    for status in statuses() {
        let name = status_name(status);
        let mut count = 0_u64;
        for row in &rows {
            if row.try_get::<String, _>(0)? == name {
                count = u64::try_from(row.try_get::<i64, _>(1)?).unwrap_or(0);
            }
        }
        metrics()
            .tasks
            .record(count, &[KeyValue::new("shadowsync.task.status", name)]);
        counts.push((name, count));
    }
    Ok(counts)
}

/// Keeps the gauge current until `shutdown`.
pub async fn run(db: Database, shutdown: impl std::future::Future<Output = ()>) {
    tokio::pin!(shutdown);
    loop {
        if let Err(error) = record(&db).await {
            tracing::debug!(%error, "task status gauge not refreshed");
        }
        tokio::select! {
            () = &mut shutdown => return,
            () = tokio::time::sleep(MIN_INTERVAL) => {}
        }
        tokio::select! {
            () = &mut shutdown => return,
            () = STATUS_CHANGED.notified() => {}
            () = tokio::time::sleep(MAX_INTERVAL - MIN_INTERVAL) => {}
        }
    }
}
