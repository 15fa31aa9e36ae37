//! What `executor.table_parallelism` buys on one task of many slow ALTERs (not a test; not in
//! CI).
//!
//! ```sh
//! cargo run --release -p shadowsync-server --example lanes -- --tables 24 --rows 50000 --parallelism 1,2,4
//! ```
//!
//! For each parallelism, runs `serve all` in this process (embedded, or `--mode postgres`) with
//! that `executor.table_parallelism`, builds a throw-away MariaDB database of `--tables`
//! independent tables of `--rows` rows each whose shadows hold `v` as INT where the source has
//! BIGINT (so each ALTER copies its table), analyses them all, and measures one auto-approved
//! task from submit to EXECUTION_SUCCEEDED, `--repeat` times on fresh databases.

mod support;

use std::time::Duration;

use shadowsync_common::testing::MariaDb;
use support::{Bench, analyse, auto_approve_everything, flag, report, submit_until_succeeded};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mode = flag("--mode").unwrap_or_else(|| "embedded".into());
    let tables: usize = flag("--tables").unwrap_or_else(|| "24".into()).parse()?;
    let rows: usize = flag("--rows").unwrap_or_else(|| "50000".into()).parse()?;
    let repeat: usize = flag("--repeat").unwrap_or_else(|| "3".into()).parse()?;
    let levels: Vec<usize> = flag("--parallelism")
        .unwrap_or_else(|| "1,2,4".into())
        .split(',')
        .map(str::parse)
        .collect::<Result<_, _>>()?;

    println!(
        "mode {mode}: one task of {tables} independent tables, {rows} rows each, one copying \
         ALTER per table; {repeat} runs per setting"
    );
    let mut baseline = None;
    for parallelism in levels {
        let mut bench = Bench::start(
            &mode,
            &[format!("executor.table_parallelism={parallelism}")],
        )
        .await?;
        auto_approve_everything(&mut bench.alice_approvals).await?;
        let mut samples = Vec::with_capacity(repeat);
        for _ in 0..repeat {
            let target = build(tables, rows).await;
            let names: Vec<String> = (0..tables).map(|i| format!("t{i}")).collect();
            let analysis =
                analyse(&mut bench.alice, &bench.connection, &target.name, &names).await?;
            samples.push(submit_until_succeeded(&mut bench.alice, &analysis).await?);
            target.drop_database().await;
        }
        bench.stop().await?;
        samples.sort();
        let median = samples[samples.len() / 2];
        let speedup = baseline.get_or_insert(median).as_secs_f64() / median.as_secs_f64();
        report(
            &format!("table_parallelism {parallelism}: submit -> EXECUTION_SUCCEEDED"),
            &mut samples,
        );
        println!("  speed-up over the first setting (p50): {speedup:.2}x");
    }
    Ok(())
}

/// `tables` tables of `rows` rows whose shadows (same rows) need one copying ALTER each.
async fn build(tables: usize, rows: usize) -> MariaDb {
    let target = MariaDb::create("ss_bench_lanes").await;
    for i in 0..tables {
        target
            .exec(&format!(
                "CREATE TABLE t{i} (id INT PRIMARY KEY, v BIGINT NOT NULL, note VARCHAR(40));\
                 INSERT INTO t{i} SELECT seq, seq * 7, CONCAT('row ', seq) FROM seq_1_to_{rows};\
                 CREATE TABLE _test_t{i} (id INT PRIMARY KEY, v INT NOT NULL, note VARCHAR(40));\
                 INSERT INTO _test_t{i} SELECT id, v, note FROM t{i};"
            ))
            .await;
    }
    // Let the inserts settle so the first run does not pay for their flushing.
    tokio::time::sleep(Duration::from_millis(500)).await;
    target
}
