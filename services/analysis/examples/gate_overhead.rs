//! What the cleartext gate costs the analysis: the same introspection of N tables over a direct
//! pool and over a pool whose connections pass through the gate's loopback relay, alternated, on
//! the local MariaDB. Not part of CI.
//!
//! ```text
//! cargo run --release -p shadowsync-analysis --example gate_overhead -- [TABLES] [ROUNDS]
//! ```

#![allow(clippy::print_stdout)]

use std::time::{Duration, Instant};

use shadowsync_common::cleartext_gate::gated_lazy_pool;
use shadowsync_schema::{IntrospectOptions, Introspector, ShadowNaming, SyncRange};
use sqlx::mysql::{MySqlConnectOptions, MySqlPool, MySqlPoolOptions};
use sqlx::{AssertSqlSafe, Executor};

const URL: &str = "mysql://root@127.0.0.1:3306";

fn pool_options() -> MySqlPoolOptions {
    shadowsync_schema::pinned_pool(MySqlPoolOptions::new())
        .max_connections(u32::try_from(IntrospectOptions::default().parallelism).unwrap_or(4))
        .test_before_acquire(false)
}

async fn introspect(pool: MySqlPool, database: &str) -> anyhow::Result<Duration> {
    let introspector = Introspector::with_pool(pool.clone(), IntrospectOptions::default());
    let started = Instant::now();
    let (catalog, _) = introspector
        .introspect(
            database,
            &SyncRange::All,
            &ShadowNaming::prefix(None)?,
            &mut |_, _| {},
        )
        .await?;
    let elapsed = started.elapsed();
    anyhow::ensure!(!catalog.tables.is_empty(), "no tables read");
    pool.close().await;
    Ok(elapsed)
}

fn median(mut values: Vec<Duration>) -> Duration {
    values.sort();
    values[values.len() / 2]
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let tables: usize = args.next().map_or(Ok(2000), |n| n.parse())?;
    let rounds: usize = args.next().map_or(Ok(5), |n| n.parse())?;
    let database = format!("ss_gate_{}", std::process::id());
    let connect: MySqlConnectOptions = URL.parse()?;
    let admin = MySqlPool::connect_with(connect.clone()).await?;
    admin
        .execute(AssertSqlSafe(format!("CREATE DATABASE `{database}`")))
        .await?;
    let mut script = String::new();
    for i in 0..tables {
        script.push_str(&format!(
            "CREATE TABLE `{database}`.`t{i}` (id BIGINT PRIMARY KEY, name VARCHAR(80) NOT NULL, \
             created DATETIME DEFAULT CURRENT_TIMESTAMP, KEY k_name (name));"
        ));
    }
    admin.execute(AssertSqlSafe(script)).await?;

    let connect = shadowsync_schema::without_driver_sql_mode(connect);
    let (mut direct, mut gated) = (Vec::new(), Vec::new());
    // One untimed pass warms the server's table cache for both.
    introspect(pool_options().connect_lazy_with(connect.clone()), &database).await?;
    for _ in 0..rounds {
        direct
            .push(introspect(pool_options().connect_lazy_with(connect.clone()), &database).await?);
        gated.push(introspect(gated_lazy_pool(pool_options(), connect.clone())?, &database).await?);
    }
    admin
        .execute(AssertSqlSafe(format!("DROP DATABASE `{database}`")))
        .await?;
    let (direct, gated) = (median(direct), median(gated));
    println!(
        "{tables} tables, median of {rounds}: direct {direct:?}, through the gate {gated:?} ({:+.1} %)",
        (gated.as_secs_f64() / direct.as_secs_f64() - 1.0) * 100.0
    );
    Ok(())
}
