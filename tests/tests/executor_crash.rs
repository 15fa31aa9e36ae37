//! Issue 7's crash safety through the real system: task, approval and analysis services on
//! PostgreSQL + RabbitMQ, MariaDB as the target, executor nodes killed (runtime dropped) while
//! executing, then restarted. Each run is a task in its own database: a CREATE table (`a_new`),
//! a table needing three ALTERs (`x`: its shadow's foreign key on `_test_p` dropped, an engine
//! change, then an option reset MariaDB ignores within an engine change) and two one-ALTER tables.
//!
//! The executor has no test hook, so a fault point is reached by holding what it needs next: a
//! metadata lock (an open transaction that read a shadow) holds a statement; the task's row in
//! the task service's store holds the call recording a statement; a SHARE lock on its outbox
//! holds the completion. The executor is killed there, the locks released, its node restarted;
//! the lease ([`LEASE_SECONDS`], shortened from the default 30 s) lapses, and the task must
//! end EXECUTION_SUCCEEDED with every statement applied once. Runs overlap ([`ACTIVE`]) so their
//! lease waits do; random runs use a seeded delay (`SHADOWSYNC_CRASH_SEED` replays it).

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use shadowsync_proto::task::v1::*;
use shadowsync_system_tests::api::{Team, User, until};
use shadowsync_system_tests::cluster::{Cluster, ClusterOptions};
use shadowsync_system_tests::node::Node;
use shadowsync_system_tests::target::{self, MariaDb};
use sqlx::mysql::{MySqlConnectOptions, MySqlConnection};
use sqlx::postgres::PgConnection;
use sqlx::{AssertSqlSafe, Connection as _, Executor as _, Row as _};
use tokio::sync::Semaphore;

use TableExecutionStatus::{AlreadyInSync, Succeeded};

const SCHEMA: &str = "\
    CREATE TABLE p (id INT PRIMARY KEY, code VARCHAR(20) NOT NULL, label VARCHAR(10), \
        UNIQUE KEY by_code (code));\n\
    CREATE TABLE _test_p (id INT PRIMARY KEY, code VARCHAR(10) NOT NULL, UNIQUE KEY by_code (code));\n\
    CREATE TABLE x (id INT PRIMARY KEY, p_code VARCHAR(20), note VARCHAR(40), \
        KEY by_p_code (p_code)) ENGINE=Aria;\n\
    CREATE TABLE _test_x (id INT PRIMARY KEY, p_code VARCHAR(10), KEY by_p_code (p_code), \
        CONSTRAINT x_p FOREIGN KEY (p_code) REFERENCES _test_p (code)) ENGINE=InnoDB MAX_ROWS=1000;\n\
    INSERT INTO _test_p VALUES (1, 'one');\n\
    INSERT INTO _test_x VALUES (1, 'one');\n\
    CREATE TABLE a_new (id INT PRIMARY KEY, v INT);\n\
    CREATE TABLE z (id INT PRIMARY KEY, extra INT);\n\
    CREATE TABLE _test_z (id INT PRIMARY KEY)";

/// The script in order, as `table.position`: statement `n` (from 1) is `SCRIPT[n - 1]`.
const SCRIPT: [&str; 6] = ["x.1", "a_new.1", "p.1", "x.2", "x.3", "z.1"];

const TABLES: [&str; 4] = ["a_new", "p", "x", "z"];

/// Runs holding an executor at once (an executor runs one task at a time).
const ACTIVE: usize = 4;

/// `task.execution_lease_seconds`: each run waits for one lapse.
const LEASE_SECONDS: u64 = 10;

/// Where a run kills the executor holding its task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    /// Claimed; statement 1 is held (and ended by the server if it was waiting): nothing ran.
    AfterClaim,
    /// Statement `n` waits for a metadata lock; the kill cuts it, the orphan lands once released.
    MidStatement(usize),
    /// As `MidStatement`, but the server ends the orphaned statement (`KILL QUERY`).
    MidStatementEnded(usize),
    /// Statement `n` ran; the call recording it waits on the task's row.
    AfterStatement(usize),
    /// Every table is reported; the completion waits on the outbox.
    BeforeCompletion,
    /// A seeded delay after the claim (z.1 is held, so the task cannot end first).
    Random(Duration),
}

impl Fault {
    /// How many statements (a prefix of the script) the killed attempt may have applied.
    fn applied(self) -> Vec<usize> {
        match self {
            Fault::AfterClaim => vec![0],
            Fault::MidStatement(n) => vec![n - 1, n],
            Fault::MidStatementEnded(n) => vec![n - 1],
            Fault::AfterStatement(n) => vec![n],
            Fault::BeforeCompletion => vec![6],
            Fault::Random(_) => (0..=6).collect(),
        }
    }

    /// The statement whose shadow is locked before the task is dispatched.
    fn first_held(self) -> usize {
        match self {
            Fault::AfterClaim => 1,
            Fault::MidStatement(n) | Fault::MidStatementEnded(n) | Fault::AfterStatement(n) => {
                [1, 3, 3, 3, 3, 6][n - 1]
            }
            Fault::BeforeCompletion | Fault::Random(_) => 6,
        }
    }
}

/// Executor ids by node thread name (`executor-<port>`). The harness does not expose the id a
/// node draws at start, but its worker logs it ("executor consuming") on the node's threads, so
/// this file's subscriber reads it there (and still echoes `SHADOWSYNC_SYSTEST_LOG`).
#[derive(Clone, Default)]
struct ExecutorIds(Arc<Mutex<HashMap<String, String>>>);

impl std::io::Write for ExecutorIds {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let line = String::from_utf8_lossy(buf);
        if line.contains("executor consuming")
            && let Some(rest) = line.split("executor_id=").nth(1)
            && let Some(thread) = std::thread::current().name()
        {
            let id = rest.split_whitespace().next().unwrap_or_default();
            let mut ids = self.0.lock().unwrap_or_else(|e| e.into_inner());
            ids.insert(thread.to_owned(), id.to_owned());
        }
        if std::env::var_os("SHADOWSYNC_SYSTEST_LOG").is_some() {
            std::io::stderr().write_all(buf)?;
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl ExecutorIds {
    /// Installs the subscriber (the only test of this file, so once per process).
    fn install() -> Self {
        let ids = ExecutorIds::default();
        let user = std::env::var("SHADOWSYNC_SYSTEST_LOG").unwrap_or_else(|_| "off".into());
        let filter = format!("{user},shadowsync_executor::worker=info");
        let writer = ids.clone();
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .try_init()
            .expect("this file's subscriber is the first");
        ids
    }

    fn port_of(&self, executor_id: &str) -> Option<u16> {
        let ids = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let (thread, _) = ids.iter().find(|(_, id)| id.as_str() == executor_id)?;
        thread.strip_prefix("executor-")?.parse().ok()
    }
}

/// What the runs share.
struct Shared {
    nodes: Mutex<Vec<Node>>,
    ids: ExecutorIds,
    alice: User,
    bob: User,
    connection: String,
    /// The task service's store (PostgreSQL), for the row and outbox locks.
    store_url: String,
    active: Semaphore,
}

impl Shared {
    /// Kills the node whose executor is `executor_id` and starts it again: a fresh process (new
    /// executor id) on the same port. Its runtime is gone once the port is free again.
    fn kill_and_restart(&self, executor_id: &str) {
        let port = self.ids.port_of(executor_id);
        let mut nodes = self.nodes.lock().unwrap_or_else(|e| e.into_inner());
        let node = nodes
            .iter_mut()
            .find(|node| Some(node.address().port()) == port)
            .unwrap_or_else(|| panic!("no running node is {executor_id}"));
        node.kill();
        node.restart();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_executors_leave_every_task_applied_exactly_once() {
    let ids = ExecutorIds::install();
    let seed = std::env::var("SHADOWSYNC_CRASH_SEED")
        .ok()
        .and_then(|seed| seed.parse().ok())
        .unwrap_or_else(|| {
            let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
            now.map_or(7, |elapsed| elapsed.as_secs())
        });
    println!("executor crash runs: SHADOWSYNC_CRASH_SEED={seed}");
    let mut state = seed;

    let mut cluster = Cluster::start_with(ClusterOptions {
        execution_lease_seconds: LEASE_SECONDS,
        ..ClusterOptions::executors(ACTIVE + 2)
    })
    .await;
    let team = Team::new(&cluster.endpoints()).await;
    let shared = Arc::new(Shared {
        nodes: Mutex::new(std::mem::take(&mut cluster.executors)),
        ids,
        alice: team.alice.clone(),
        bob: team.bob.clone(),
        connection: team.connection.clone(),
        store_url: cluster.store_url().to_owned(),
        active: Semaphore::new(ACTIVE),
    });

    // Every held statement (the CREATE cannot be held), the three ALTERs of `x` among them.
    let mut faults = vec![Fault::AfterClaim, Fault::BeforeCompletion];
    for n in [4, 1, 5, 3, 6] {
        faults.extend([Fault::MidStatement(n), Fault::AfterStatement(n)]);
    }
    faults.extend([Fault::MidStatementEnded(4), Fault::MidStatementEnded(5)]);
    faults.extend([Fault::AfterClaim, Fault::BeforeCompletion]);
    for _ in 0..8 {
        // Knuth's MMIX LCG: enough for delays, reproducible from the seed.
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        faults.push(Fault::Random(Duration::from_millis((state >> 33) % 800)));
    }
    let started = Instant::now();
    let runs = faults.iter().enumerate().map(|(index, fault)| {
        let (shared, fault) = (shared.clone(), *fault);
        tokio::spawn(async move { run(&shared, index, fault).await })
    });
    let reports: Vec<String> = futures::future::join_all(runs)
        .await
        .into_iter()
        .map(|report| report.expect("a run panicked (its message is above)"))
        .collect();
    println!("{}", reports.join("\n"));
    let elapsed = started.elapsed();
    println!(
        "{} runs, each killed once, in {elapsed:.0?} (seed {seed})",
        reports.len()
    );
}

/// One run: set up, drive the task to `fault`, kill and restart its executor, check the end.
async fn run(shared: &Shared, index: usize, fault: Fault) -> String {
    let db = MariaDb::create(&format!("ss_sys_crash{index}")).await;
    db.exec(SCHEMA).await;
    let (mut alice, mut bob) = (shared.alice.clone(), shared.bob.clone());
    let mut gates = Gates::new(&db);
    gates.take(fault.first_held()).await;

    let permit = shared.active.acquire().await.expect("semaphore");
    let analysis = alice.analyse(&shared.connection, &db.name).await;
    let id = alice.submit(&analysis.id, ErrorStrategy::Abort).await.id;
    bob.approve(id).await;
    until(&format!("task {id} claimed"), || {
        let mut alice = alice.clone();
        async move { !claims(&mut alice, id).await.is_empty() }
    })
    .await;

    let mut store_lock = None;
    match fault {
        Fault::AfterClaim => {}
        Fault::MidStatement(n) | Fault::MidStatementEnded(n) => {
            reach(&db, &mut gates, shared, id, n).await;
        }
        Fault::AfterStatement(n) => {
            reach(&db, &mut gates, shared, id, n).await;
            store_lock = Some(lock_task_row(&shared.store_url, id).await);
            gates.release(Some(n)).await;
            until(&format!("statement {n} of task {id} lands"), || async {
                landed(&db).await.contains(&n)
            })
            .await;
        }
        Fault::BeforeCompletion => {
            reach(&db, &mut gates, shared, id, 6).await;
            store_lock =
                Some(lock_store(&shared.store_url, "LOCK TABLE task.outbox IN SHARE MODE").await);
            gates.release(Some(6)).await;
            until(&format!("task {id} finishes its tables"), || {
                let mut alice = alice.clone();
                async move {
                    let logs = alice.logs(id, LogLevelFilter::All).await;
                    logs.iter()
                        .any(|entry| entry.message.starts_with("execution finished"))
                }
            })
            .await;
        }
        Fault::Random(delay) => tokio::time::sleep(delay).await,
    }

    // The kill: the executor holding the lease vanishes with whatever it had in flight.
    let before = alice.logs(id, LogLevelFilter::All).await;
    let killed = claims(&mut alice, id).await.pop().expect("claimed");
    shared.kill_and_restart(&killed.executor_id);
    if matches!(fault, Fault::AfterClaim | Fault::MidStatementEnded(_)) {
        // Still held by the gates, an orphaned statement cannot have landed: end it.
        tokio::time::sleep(Duration::from_millis(200)).await;
        until(&format!("task {id}'s orphans ended"), || async {
            end_running_ddl(&db, true).await == 0
        })
        .await;
    }
    gates.release(None).await;
    if let Some(lock) = store_lock {
        let _ = lock.close().await;
    }
    drop(permit);
    // Released, an orphaned statement lands (or the server ends it).
    until(&format!("task {id}'s orphans done"), || async {
        end_running_ddl(&db, false).await == 0
    })
    .await;

    let applied = landed(&db).await;
    let done = applied.len();
    let context = format!("task {id} killed at {fault:?} with statements {applied:?} applied");
    assert_eq!(
        applied,
        (1..=done).collect::<BTreeSet<_>>(),
        "not in order: {context}"
    );
    assert!(fault.applied().contains(&done), "{context}");
    if let Fault::AfterStatement(n) = fault {
        let mut recorded = before.iter().filter_map(|e| statement_of(e, "finished"));
        assert!(!recorded.any(|m| m == n), "{n} recorded: {context}");
    }
    alice.wait_status(id, TaskStatus::ExecutionSucceeded).await;
    let (attempts, ran_later) =
        check_end(&mut alice, &db, id, &context, &killed, &before, &applied).await;
    db.drop_database().await;
    format!(
        "{context}; claims by attempts {attempts:?}; statements {ran_later:?} run after the kill"
    )
}

/// Every guarantee of a run once its task ended; returns the attempts that claimed it and the
/// statements run after the kill.
async fn check_end(
    alice: &mut User,
    db: &MariaDb,
    id: i64,
    context: &str,
    killed: &TimelineEntry,
    before: &[TaskLogEntry],
    applied: &BTreeSet<usize>,
) -> (Vec<u32>, BTreeSet<usize>) {
    for table in TABLES {
        target::assert_in_sync(db, table, &format!("_test_{table}")).await;
    }
    let timeline = alice.timeline(id).await;
    let logs = alice.logs(id, LogLevelFilter::All).await;
    let context = format!("{context}\ntimeline: {timeline:#?}\nlogs: {logs:#?}");

    // Nothing acknowledged before the kill was lost.
    for line in before {
        let kept = logs
            .iter()
            .any(|e| e.sequence == line.sequence && e.message == line.message);
        assert!(kept, "lost {line:?}\n{context}");
    }
    // No statement failed, none was found already applied when it ran.
    for entry in &logs {
        let duplicate = entry.message.contains("taken as applied");
        assert!(
            entry.level != LogLevel::Error as i32 && !duplicate,
            "{entry:?}\n{context}"
        );
    }
    // The killed attempt, then one more with a higher number after its lease lapsed; or only the
    // killed one when the completion it had in flight landed.
    let starts: Vec<&TimelineEntry> = timeline
        .iter()
        .filter(|entry| entry.kind == TimelineEntryKind::ExecutionStarted as i32)
        .collect();
    let later = match starts.as_slice() {
        [first] if first.attempt == killed.attempt && applied.len() == SCRIPT.len() => None,
        [first, second] if first.attempt == killed.attempt && second.attempt > first.attempt => {
            let lapsed = timeline.iter().any(|entry| {
                entry.kind == TimelineEntryKind::LeaseLapsed as i32
                    && (first.sequence..second.sequence).contains(&entry.sequence)
            });
            assert!(lapsed, "no lease lapse between the claims\n{context}");
            Some(second.attempt)
        }
        _ => panic!("unexpected claims\n{context}"),
    };
    // Each table finished once, successfully.
    for table in TABLES {
        let finished: Vec<i32> = timeline
            .iter()
            .filter(|e| e.kind == TimelineEntryKind::TableFinished as i32 && e.table == table)
            .map(|entry| entry.table_status)
            .collect();
        assert!(
            matches!(finished.as_slice(), [s] if *s == Succeeded as i32 || *s == AlreadyInSync as i32),
            "{table} finished {finished:?}\n{context}"
        );
    }
    // Exactly once in effect: what the killed attempt applied and what the next one ran make
    // the whole script, with no statement in both, and no statement finished twice in the log.
    let ran_later: Vec<usize> = logs
        .iter()
        .filter(|entry| Some(entry.attempt) == later)
        .filter_map(|entry| statement_of(entry, "started"))
        .collect();
    let ran_later_set: BTreeSet<usize> = ran_later.iter().copied().collect();
    assert_eq!(ran_later.len(), ran_later_set.len(), "{context}");
    assert!(applied.is_disjoint(&ran_later_set), "{context}");
    let all: BTreeSet<usize> = applied.union(&ran_later_set).copied().collect();
    assert_eq!(all.len(), SCRIPT.len(), "{context}");
    // A statement's line says finished at most once, and from the killed attempt only if applied.
    let finished: Vec<(usize, u32)> = logs
        .iter()
        .filter_map(|entry| Some((statement_of(entry, "finished")?, entry.attempt)))
        .collect();
    let once: BTreeSet<usize> = finished.iter().map(|(n, _)| *n).collect();
    assert_eq!(once.len(), finished.len(), "{context}");
    let mut by_killed = finished
        .iter()
        .filter(|(_, attempt)| *attempt == killed.attempt);
    assert!(by_killed.all(|(n, _)| applied.contains(n)), "{context}");
    let attempts = starts.iter().map(|entry| entry.attempt).collect();
    (attempts, ran_later_set)
}

/// Statement `n` of the script if `entry` says it `started` or `finished`.
fn statement_of(entry: &TaskLogEntry, verb: &str) -> Option<usize> {
    let rest = entry.message.strip_prefix("statement ")?;
    let (position, rest) = rest.split_once('/')?;
    let (_, rest) = rest.split_once(' ')?;
    let name = format!("{}.{position}", entry.table);
    let index = SCRIPT
        .iter()
        .position(|s| *s == name && rest.starts_with(verb))?;
    Some(index + 1)
}

/// The shadow statement `n` alters.
fn shadow_of(n: usize) -> String {
    let (table, _) = SCRIPT[n - 1].split_once('.').expect("table.position");
    format!("_test_{table}")
}

/// Drives the claimed task (its `first_held` statement held) until statement `n` waits for a
/// metadata lock the test holds, every earlier statement applied.
async fn reach(db: &MariaDb, gates: &mut Gates, shared: &Shared, id: i64, n: usize) {
    match n {
        1 | 3 | 6 => {}
        4 => {
            wait_for_lock(db, 3).await;
            gates.take(4).await;
            gates.release(Some(3)).await;
        }
        5 => {
            Box::pin(reach(db, gates, shared, id, 4)).await;
            // x.2 and x.3 alter the same shadow: x.2's report is held while the lock is taken.
            let row = lock_task_row(&shared.store_url, id).await;
            gates.release(Some(4)).await;
            until("statement 4 lands", || async {
                landed(db).await.contains(&4)
            })
            .await;
            gates.take(5).await;
            let _ = row.close().await;
        }
        _ => panic!("statement {n} cannot be held"),
    }
    wait_for_lock(db, n).await;
}

/// Open transactions that read a shadow, each holding its metadata lock (by statement held).
struct Gates {
    options: MySqlConnectOptions,
    held: Vec<(String, MySqlConnection)>,
}

impl Gates {
    fn new(db: &MariaDb) -> Self {
        let url = shadowsync_common::testing::mariadb::mysql_url();
        let options = url.parse::<MySqlConnectOptions>().expect("MariaDB URL");
        Self {
            options: options.database(&db.name),
            held: Vec::new(),
        }
    }

    async fn take(&mut self, n: usize) {
        let mut connection = MySqlConnection::connect_with(&self.options)
            .await
            .expect("gate");
        let read = format!("START TRANSACTION; SELECT COUNT(*) FROM `{}`", shadow_of(n));
        connection
            .execute(AssertSqlSafe(read))
            .await
            .expect("hold the shadow");
        self.held.push((shadow_of(n), connection));
    }

    /// Releases the lock on statement `n`'s shadow, or every lock.
    async fn release(&mut self, n: Option<usize>) {
        let (released, kept) = std::mem::take(&mut self.held)
            .into_iter()
            .partition(|(shadow, _)| n.is_none_or(|n| *shadow == shadow_of(n)));
        self.held = kept;
        for (_, mut connection) in released {
            connection.execute("COMMIT").await.expect("commit");
            let _ = connection.close().await;
        }
    }
}

/// A transaction on the task service's store that ran `sql` and holds its locks.
async fn lock_store(store_url: &str, sql: &str) -> PgConnection {
    let mut connection = PgConnection::connect(store_url).await.expect("store");
    let sql = format!("BEGIN; {sql}");
    connection.execute(AssertSqlSafe(sql)).await.expect("lock");
    connection
}

/// Holds task `id`'s row (as the task service locks it): every call of its executor waits.
async fn lock_task_row(store_url: &str, id: i64) -> PgConnection {
    let sql = format!("UPDATE task.tasks SET timeline_seq = timeline_seq WHERE id = {id}");
    lock_store(store_url, &sql).await
}

/// The statements of the script whose result the shadows show.
async fn landed(db: &MariaDb) -> BTreeSet<usize> {
    let x = target::show_create(db, "_test_x").await.unwrap_or_default();
    let p = target::show_create(db, "_test_p").await.unwrap_or_default();
    let z = target::show_create(db, "_test_z").await.unwrap_or_default();
    let created = target::show_create(db, "_test_a_new").await.is_some();
    let marks = [
        !x.contains("FOREIGN KEY"),
        created,
        p.contains("`label`"),
        x.contains("ENGINE=Aria"),
        !x.contains("MAX_ROWS"),
        z.contains("`extra`"),
    ];
    (1..=marks.len()).filter(|n| marks[n - 1]).collect()
}

/// Waits until statement `n` waits for its shadow's metadata lock.
async fn wait_for_lock(db: &MariaDb, n: usize) {
    let shadow = shadow_of(n);
    until(&format!("{shadow} waits for its lock"), || async {
        let waiting: i64 = sqlx::query(
            "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE DB = ? \
             AND STATE LIKE 'Waiting for table metadata lock%' AND INFO LIKE ?",
        )
        .bind(&db.name)
        .bind(format!("%`{shadow}`%"))
        .fetch_one(&db.pool)
        .await
        .expect("processlist")
        .get(0);
        waiting > 0
    })
    .await;
}

/// DDL still running in `db` (after a kill, only orphaned statements); with `end`, each is
/// ended (`KILL QUERY`) as a server that noticed the lost connection would.
async fn end_running_ddl(db: &MariaDb, end: bool) -> usize {
    let running: Vec<i64> = sqlx::query(
        "SELECT CAST(ID AS SIGNED) FROM information_schema.PROCESSLIST WHERE DB = ? \
         AND COMMAND = 'Query' AND (INFO LIKE 'ALTER TABLE%' OR INFO LIKE 'CREATE TABLE%')",
    )
    .bind(&db.name)
    .fetch_all(&db.pool)
    .await
    .expect("processlist")
    .iter()
    .map(|row| row.get(0))
    .collect();
    if end {
        for thread in &running {
            // It may have ended meanwhile.
            let kill = format!("KILL QUERY {thread}");
            let _ = sqlx::query(AssertSqlSafe(kill)).execute(&db.pool).await;
        }
    }
    running.len()
}

/// The task's EXECUTION_STARTED entries, in order.
async fn claims(user: &mut User, id: i64) -> Vec<TimelineEntry> {
    let mut timeline = user.timeline(id).await;
    timeline.retain(|entry| entry.kind == TimelineEntryKind::ExecutionStarted as i32);
    timeline
}
