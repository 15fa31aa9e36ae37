//! End-to-end latency of the whole platform, for issue-style figures (not a test; not in CI).
//!
//! ```sh
//! cargo run --release -p shadowsync-server --example latency -- --mode embedded --tasks 200
//! cargo run --release -p shadowsync-server --example latency -- --mode postgres --tasks 200
//! cargo run --release -p shadowsync-server --example latency -- --mode postgres --tasks 200 \
//!     --telemetry on 2>/dev/null
//! ```
//!
//! `--telemetry on` measures the cost of observability: every span recorded at `info`, traces and
//! metrics exported over OTLP (to an in-process sink that counts and drops them), JSON log lines
//! written, and `/metrics` served. Off (the default), the filter is `warn`: spans are not built.
//!
//! Runs `serve all` in this process, on the embedded defaults (SQLite, in-process queue) or on
//! a throw-away PostgreSQL database and RabbitMQ, against a throw-away MariaDB database of
//! one-table analyses, and measures, one task at a time (latency, not throughput):
//! - **approval → execution start**: from the `ApproveTask` call (by a second admin, through the
//!   builtin template) to the task's `EXECUTION_STARTED` timeline entry;
//! - **submit → succeeded**: from `SubmitTask` under an auto-approve template to the task's
//!   finish time, status `EXECUTION_SUCCEEDED`.
//!
//! Analyses are made before the clock starts; polling is every 2 ms.

mod support;

use std::time::SystemTime;

use shadowsync_common::testing::MariaDb;
use shadowsync_proto::task::v1 as task;
use support::{
    Bench, OtlpSink, analyse, auto_approve_everything, ensure_succeeded, flag, report, since,
    submit, submit_until_succeeded, wait_final,
};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mode = flag("--mode").unwrap_or_else(|| "embedded".into());
    let tasks: usize = flag("--tasks").unwrap_or_else(|| "200".into()).parse()?;
    let telemetry = flag("--telemetry").unwrap_or_else(|| "off".into());
    let sink = match telemetry.as_str() {
        "off" => None,
        "on" => Some(OtlpSink::start().await?),
        other => anyhow::bail!("--telemetry is on or off, not {other}"),
    };
    let extra: Vec<String> = match &sink {
        None => Vec::new(),
        Some(sink) => vec![
            format!("otlp.endpoint={}", sink.endpoint),
            "log.filter=info".into(),
            "log.format=json".into(),
            "metrics.listen=127.0.0.1:0".into(),
        ],
    };
    let mut bench = Bench::start(&mode, &extra).await?;

    let target = MariaDb::create("ss_bench").await;
    let ddl: String = (0..2 * tasks)
        .map(|i| format!("CREATE TABLE t{i} (id INT PRIMARY KEY, v VARCHAR(20));"))
        .collect();
    target.exec(&ddl).await;
    let table = |i: usize| vec![format!("t{i}")];

    let mut approval_to_start = Vec::with_capacity(tasks);
    for i in 0..tasks {
        let analysis =
            analyse(&mut bench.alice, &bench.connection, &target.name, &table(i)).await?;
        let id = submit(&mut bench.alice, &analysis).await?;
        let wall = SystemTime::now();
        bench
            .bob
            .approve_task(task::ApproveTaskRequest {
                task_id: id,
                comment: "ok".into(),
                request_id: uuid::Uuid::new_v4().to_string(),
            })
            .await?;
        ensure_succeeded(&wait_final(&mut bench.alice, id).await?)?;
        let timeline = bench
            .alice
            .list_task_timeline(task::ListTaskTimelineRequest {
                task_id: id,
                ..Default::default()
            })
            .await?
            .into_inner()
            .entries;
        let execution_started = timeline
            .iter()
            .find(|e| e.kind == task::TimelineEntryKind::ExecutionStarted as i32)
            .and_then(|e| e.time)
            .ok_or_else(|| anyhow::anyhow!("task {id} has no EXECUTION_STARTED"))?;
        approval_to_start.push(since(wall, execution_started));
    }

    auto_approve_everything(&mut bench.alice_approvals).await?;
    let mut submit_to_success = Vec::with_capacity(tasks);
    for i in tasks..2 * tasks {
        let analysis =
            analyse(&mut bench.alice, &bench.connection, &target.name, &table(i)).await?;
        submit_to_success.push(submit_until_succeeded(&mut bench.alice, &analysis).await?);
    }

    println!("mode {mode}, telemetry {telemetry}, {tasks} one-table tasks each, one at a time");
    report("approval -> execution start", &mut approval_to_start);
    report(
        "submit (auto-approve) -> EXECUTION_SUCCEEDED",
        &mut submit_to_success,
    );

    bench.stop().await?;
    if let Some(sink) = &sink {
        println!("spans exported so far: {}", sink.spans());
    }
    target.drop_database().await;
    Ok(())
}
