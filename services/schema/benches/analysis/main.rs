//! Analysis benchmark, not part of CI.
//!
//! Generates N source tables in a fresh MariaDB database (a realistic mix of columns, indexes
//! and foreign keys; a third with shadows missing, a third differing, a third equal), runs the
//! analysis and prints N, round trips, wall time split into introspection / parse / diff+render
//! / render alone, peak memory, and the floor: the plain `mariadb` client reading the same
//! `SHOW CREATE TABLE`s in one run (both measured after one untimed warm-up pass). With `--latency-ms L` (default 1) it repeats the analysis,
//! the floor and a one-round-trip-per-table variant through a proxy adding L ms each way.
//!
//! ```text
//! cargo bench -p shadowsync-schema --bench analysis -- --tables 1000 [--url mysql://root@127.0.0.1:3306] [--latency-ms 1] [--keep]
//! ```

#![allow(clippy::print_stdout)]

mod proxy;

use std::collections::BTreeSet;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use shadowsync_schema::{
    AnalysisRequest, IntrospectOptions, Introspector, ShadowNaming, SyncRange, SyncResult,
    normalize, plan, render,
};
use sqlx::mysql::{MySqlConnectOptions, MySqlPoolOptions};
use sqlx::{AssertSqlSafe, Executor};

struct Args {
    tables: usize,
    url: String,
    latency_ms: u64,
    keep: bool,
    /// Analyse this existing database instead of generating one.
    reuse: Option<String>,
    options: IntrospectOptions,
    /// Skip the one-round-trip-per-table run through the proxy (slow at large N).
    skip_single: bool,
}

fn args() -> Args {
    let mut parsed = Args {
        tables: 100,
        url: "mysql://root@127.0.0.1:3306".into(),
        latency_ms: 1,
        keep: false,
        reuse: None,
        skip_single: false,
        options: IntrospectOptions::default(),
    };
    let mut iter = std::env::args().skip(1);
    while let Some(arg) = iter.next() {
        match arg.as_str() {
            "--tables" => parsed.tables = iter.next().and_then(|v| v.parse().ok()).unwrap_or(100),
            "--url" => parsed.url = iter.next().unwrap_or(parsed.url),
            "--latency-ms" => {
                parsed.latency_ms = iter.next().and_then(|v| v.parse().ok()).unwrap_or(1)
            }
            "--keep" => parsed.keep = true,
            "--skip-single" => parsed.skip_single = true,
            "--reuse" => parsed.reuse = iter.next(),
            "--batch" => {
                if let Some(batch) = iter.next().and_then(|v| v.parse().ok()) {
                    parsed.options.batch_size = batch;
                }
            }
            "--parallel" => {
                if let Some(parallel) = iter.next().and_then(|v| v.parse().ok()) {
                    parsed.options.parallelism = parallel;
                }
            }
            _ => {} // `cargo bench` passes `--bench`.
        }
    }
    parsed
}

fn hub_ddl(name: &str) -> String {
    format!(
        "CREATE TABLE `{name}` (id int NOT NULL AUTO_INCREMENT PRIMARY KEY, code varchar(32) NOT NULL, \
         name varchar(100) DEFAULT NULL, created_at timestamp NOT NULL DEFAULT current_timestamp(), \
         UNIQUE KEY uq_code (code)) ENGINE=InnoDB"
    )
}

fn child_ddl(name: &str, hub: &str, fk: &str, differing: bool) -> String {
    let (note, status_index, comment) = if differing {
        (
            "note varchar(100) DEFAULT NULL, extra int DEFAULT 0,",
            "KEY k_extra (extra)",
            "old",
        )
    } else {
        (
            "note varchar(255) DEFAULT NULL,",
            "KEY k_status_created (status, created_at)",
            "bench",
        )
    };
    format!(
        "CREATE TABLE `{name}` (id bigint unsigned NOT NULL AUTO_INCREMENT, hub_id int NOT NULL, \
         status enum('new','paid','shipped') NOT NULL DEFAULT 'new', amount decimal(12,2) NOT NULL DEFAULT 0.00, \
         {note} payload json DEFAULT NULL, qty int NOT NULL DEFAULT 1, \
         total decimal(14,2) AS (amount * qty) VIRTUAL, created_at datetime NOT NULL DEFAULT current_timestamp(), \
         updated_at timestamp NULL DEFAULT NULL ON UPDATE current_timestamp(), PRIMARY KEY (id), KEY k_hub (hub_id), \
         {status_index}, CONSTRAINT `{fk}` FOREIGN KEY (hub_id) REFERENCES `{hub}` (id) ON DELETE CASCADE) \
         ENGINE=InnoDB COMMENT='{comment}'"
    )
}

/// DDL for N sources and their shadows; hubs (every tenth table) always have equal shadows so
/// children's shadows can reference them.
fn generate(n: usize) -> Vec<String> {
    let mut statements = Vec::new();
    for i in 0..n {
        let name = format!("s{i:05}");
        let hub = format!("s{:05}", i - i % 10);
        if i % 10 == 0 {
            statements.push(hub_ddl(&name));
            statements.push(hub_ddl(&format!("_test_{name}")));
            continue;
        }
        statements.push(child_ddl(&name, &hub, &format!("fk_{name}"), false));
        let shadow = format!("_test_{name}");
        let shadow_hub = format!("_test_{hub}");
        let fk = format!("_test_fk_{name}");
        match i % 3 {
            0 => {}
            1 => statements.push(child_ddl(&shadow, &shadow_hub, &fk, true)),
            _ => statements.push(child_ddl(&shadow, &shadow_hub, &fk, false)),
        }
    }
    statements
}

fn peak_memory_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find(|line| line.starts_with("VmHWM:"))
                .and_then(|line| line.split_whitespace().nth(1))
                .and_then(|kib| kib.parse().ok())
        })
        .unwrap_or(0)
}

/// The floor: the plain client reading the table list and the same SHOW CREATE TABLEs.
fn floor(database: &str, tables: &[String], port: u16) -> Duration {
    let mut script = format!(
        "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA='{database}' AND TABLE_TYPE='BASE TABLE';\n"
    );
    for table in tables {
        script.push_str(&format!("SHOW CREATE TABLE `{table}`;\n"));
    }
    let path = std::env::temp_dir().join(format!("{database}_floor.sql"));
    let _ = std::fs::write(&path, script);
    let started = Instant::now();
    let status = Command::new("mariadb")
        .args([
            "-h127.0.0.1",
            "-uroot",
            "-N",
            "-B",
            &format!("-P{port}"),
            database,
        ])
        .stdin(
            std::fs::File::open(&path)
                .map(Stdio::from)
                .unwrap_or(Stdio::null()),
        )
        .stdout(Stdio::null())
        .status();
    let elapsed = started.elapsed();
    let _ = std::fs::remove_file(&path);
    if !status.is_ok_and(|s| s.success()) {
        println!("warning: the mariadb client failed");
    }
    elapsed
}

struct Run {
    round_trips: u64,
    introspection: Duration,
    parse: Duration,
    plan: Duration,
    needed: Vec<String>,
    counts: [usize; 3],
}

async fn analyse(url: &str, database: &str, options: IntrospectOptions) -> Run {
    let connect: MySqlConnectOptions = url.parse().unwrap_or_else(|e| panic!("bad url: {e}"));
    let introspector = Introspector::connect_lazy(connect, options);
    let naming = ShadowNaming::default();
    let (catalog, stats) = introspector
        .introspect(database, &SyncRange::All, &naming, &mut |_, _| {})
        .await
        .unwrap_or_else(|e| panic!("introspection failed: {e}"));
    let started = Instant::now();
    let request = AnalysisRequest {
        range: SyncRange::All,
        naming,
        skipped: BTreeSet::new(),
    };
    let plan = plan(&catalog, &request).unwrap_or_else(|e| panic!("plan failed: {e}"));
    let _script = plan.sql_script();
    let plan_time = started.elapsed();
    let started = Instant::now();
    let fingerprints = catalog
        .tables
        .values()
        .filter_map(|t| t.model.as_ref().ok())
        .map(|t| shadowsync_schema::fingerprint(t, &catalog.server))
        .collect::<Vec<_>>()
        .len();
    println!(
        "  (of which one fingerprint per table read: {fingerprints} in {:.1?})",
        started.elapsed()
    );
    let count = |r: SyncResult| plan.tables.iter().filter(|t| t.result == r).count();
    Run {
        round_trips: stats.round_trips,
        introspection: stats.wall_time,
        parse: stats.parse_time,
        plan: plan_time,
        needed: catalog.tables.values().map(|t| t.name.clone()).collect(),
        counts: [
            count(SyncResult::Create),
            count(SyncResult::Update),
            count(SyncResult::NoAction),
        ],
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args = args();
    let database = args
        .reuse
        .clone()
        .unwrap_or_else(|| format!("ss_schema_bench_{}", std::process::id()));
    let admin = MySqlPoolOptions::new()
        .max_connections(1)
        .connect(&args.url)
        .await
        .unwrap_or_else(|e| panic!("cannot connect: {e}"));
    let ddl = generate(args.tables);
    if args.reuse.is_none() {
        create(&admin, &database, &ddl).await;
    }
    analyse_all(&args, &database, &ddl).await;
    if !args.keep && args.reuse.is_none() {
        let _ = admin
            .execute(AssertSqlSafe(format!("DROP DATABASE `{database}`")))
            .await;
    }
}

async fn create(admin: &sqlx::MySqlPool, database: &str, ddl: &[String]) {
    let setup = Instant::now();
    let mut conn = admin.acquire().await.unwrap_or_else(|e| panic!("{e}"));
    conn.execute(AssertSqlSafe(format!(
        "CREATE DATABASE `{database}` CHARACTER SET utf8mb4; USE `{database}`"
    )))
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    for chunk in ddl.chunks(100) {
        conn.execute(AssertSqlSafe(chunk.join(";")))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
    }
    drop(conn);
    println!(
        "setup: {} tables created in {:.1?}",
        ddl.len(),
        setup.elapsed()
    );
}

async fn analyse_all(args: &Args, database: &str, ddl: &[String]) {
    let database = database.to_owned();
    let url = format!("{}/{database}", args.url.trim_end_matches('/'));
    // Warm the server's table caches first so neither side pays for the cold open alone.
    let warm_up = analyse(&url, &database, args.options).await;
    let _ = floor(&database, &warm_up.needed, 3306);
    let run = analyse(&url, &database, args.options).await;
    let started = Instant::now();
    let naming_context = shadowsync_schema::ServerContext::mariadb_default();
    let rendered: usize = ddl
        .iter()
        .filter_map(|d| shadowsync_schema::parse_create_table(d).ok())
        .map(|t| {
            render::create_table(&normalize(&t, &naming_context), render::Flavor::MariaDb).len()
        })
        .sum();
    let render_time = started.elapsed();
    let floor_time = floor(&database, &run.needed, 3306);
    let analysis = run.introspection + run.plan;
    println!(
        "N = {}  (create {}, update {}, no action {})",
        args.tables, run.counts[0], run.counts[1], run.counts[2]
    );
    println!(
        "tables read: {}  round trips: {}",
        run.needed.len(),
        run.round_trips
    );
    println!(
        "analysis {:.1?} = introspection {:.1?} (wall; parse + normalize + fingerprint CPU {:.1?}, overlapped with fetching) + diff/render {:.1?}   (render alone, re-parse + CREATE for every DDL: {:.1?}, {} bytes)",
        analysis, run.introspection, run.parse, run.plan, render_time, rendered
    );
    println!(
        "floor (mariadb client, same SHOW CREATE TABLEs): {:.1?}  ratio {:.2}",
        floor_time,
        analysis.as_secs_f64() / floor_time.as_secs_f64()
    );
    println!("peak memory (VmHWM): {} KiB", peak_memory_kib());

    if args.latency_ms > 0 {
        let latency = Duration::from_millis(args.latency_ms);
        let port = proxy::start("127.0.0.1:3306".into(), latency)
            .await
            .unwrap_or_else(|e| panic!("proxy: {e}"));
        let proxied = format!("mysql://root@127.0.0.1:{port}/{database}");
        let batched = analyse(&proxied, &database, args.options).await;
        let single = if args.skip_single {
            None
        } else {
            let options = IntrospectOptions {
                batch_size: 1,
                parallelism: 1,
            };
            Some(analyse(&proxied, &database, options).await)
        };
        let floor_proxied = floor(&database, &run.needed, port);
        let total = |r: &Run| r.introspection + r.plan;
        println!("through a proxy adding {latency:?} each way:");
        println!(
            "  batched analysis:        {:.1?} ({} round trips)",
            total(&batched),
            batched.round_trips
        );
        if let Some(single) = &single {
            println!(
                "  one round trip per table: {:.1?} ({} round trips)",
                total(single),
                single.round_trips
            );
        }
        println!("  floor (mariadb client):   {floor_proxied:.1?}");
    }
}
