//! Issue 7's crash-safety must-show through the real system: the task, approval and analysis
//! services on PostgreSQL + RabbitMQ, MariaDB as the target, and executor nodes whose runtime is
//! dropped (killed) while they execute a task, then restarted.
//!
//! Every run is one task in its own database: a CREATE table (`a_new`), a table needing three
//! ALTERs (`x`: its shadow's foreign key on `_test_p` is dropped first, then an engine change,
//! then an option reset that MariaDB ignores inside the engine change), and two one-ALTER tables
//! (`p`, `z`). The script is, in order: x.1, a_new.1, p.1, x.2, x.3, z.1.
//!
//! The system has no hook inside the executor, so each fault point is reached by holding what
//! the executor needs next: a MariaDB metadata lock (an open transaction that read a shadow)
//! makes a statement wait; a lock on the task's row in the task service's store makes the
//! executor's next report wait after a statement ran; a SHARE lock on the task service's outbox
//! makes the completion (which emits `task.execution_succeeded`) wait after every table was
//! reported. The executor that claimed the task is killed there, the locks are released (an
//! orphaned statement may then land), and the node is restarted. The lease (30 s, a constant in
//! the task service, not configurable) lapses, the task is re-dispatched and must end
//! EXECUTION_SUCCEEDED with every statement applied exactly once.
//!
//! Runs overlap (at most [`ACTIVE`] hold an executor at once) so the lease waits overlap too.
//! Random runs kill after a delay drawn from a seeded generator: `SHADOWSYNC_CRASH_SEED` replays
//! one (the seed is printed).

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use shadowsync_proto::task::v1::*;
use shadowsync_system_tests::api::{PATIENCE, Team, User};
use shadowsync_system_tests::cluster::{Cluster, ClusterOptions};
use shadowsync_system_tests::node::Node;
use shadowsync_system_tests::target::{self, MariaDb};
use sqlx::mysql::{MySqlConnectOptions, MySqlConnection};
use sqlx::postgres::PgConnection;
use sqlx::{AssertSqlSafe, Connection as _, Executor as _, Row as _};
use tokio::sync::Semaphore;

/// Sources and shadows of one run (see the module documentation).
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

/// The script in order: (source table, position within its table). Statement `n` (1-based) of
/// a run is `SCRIPT[n - 1]`.
const SCRIPT: [(&str, usize); 6] = [
    ("x", 1),
    ("a_new", 1),
    ("p", 1),
    ("x", 2),
    ("x", 3),
    ("z", 1),
];

/// Runs holding an executor at once (each executor runs one task at a time).
const ACTIVE: usize = 4;

/// Where a run kills the executor that holds its task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    /// The claim is recorded; statement 1 is held by a lock (and ended by the server if it was
    /// waiting), so nothing has run.
    AfterClaim,
    /// Statement `n` waits for a metadata lock: the kill cuts its connection mid-statement, and
    /// the orphaned statement lands once the lock is released.
    MidStatement(usize),
    /// As [`Fault::MidStatement`], but the server ends the orphaned statement (`KILL QUERY`).
    MidStatementEnded(usize),
    /// Statement `n` ran; its log line (and its table's report) waits on the task's row.
    AfterStatement(usize),
    /// Every table is reported; the completion waits on the outbox.
    BeforeCompletion,
    /// A seeded delay after the claim (z.1 waits for a lock, so the task cannot end first).
    Random(Duration),
}

impl Fault {
    /// The statements the killed attempt may have applied: `k` in `{1..k}`.
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

    /// The shadow whose metadata lock the test holds when the task is dispatched.
    fn first_gate(self) -> &'static str {
        match self {
            Fault::AfterClaim | Fault::MidStatement(1) | Fault::AfterStatement(1) => "_test_x",
            Fault::MidStatement(3 | 4 | 5)
            | Fault::MidStatementEnded(3 | 4 | 5)
            | Fault::AfterStatement(3 | 4 | 5) => "_test_p",
            _ => "_test_z",
        }
    }
}

/// SplitMix64: enough randomness for kill delays, reproducible from the printed seed.
struct Rng(u64);

impl Rng {
    fn below(&mut self, bound: u64) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        (z ^ (z >> 31)) % bound
    }
}

/// Executor ids by node thread name (`executor-<port>`). The harness does not expose the id a
/// node drew at start; its worker logs it ("executor consuming") on the node's own threads, so
/// a subscriber installed by this file reads it there.
#[derive(Clone, Default)]
struct ExecutorIds(Arc<Mutex<HashMap<String, String>>>);

struct IdWriter {
    ids: ExecutorIds,
    echo: bool,
}

impl std::io::Write for IdWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let line = String::from_utf8_lossy(buf);
        if line.contains("executor consuming")
            && let Some(rest) = line.split("executor_id=").nth(1)
            && let Some(thread) = std::thread::current().name()
        {
            let id: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '@')
                .collect();
            let mut ids = self.ids.0.lock().unwrap_or_else(|e| e.into_inner());
            ids.insert(thread.to_owned(), id);
        }
        if self.echo {
            std::io::stderr().write_all(buf)?;
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for ExecutorIds {
    type Writer = IdWriter;

    fn make_writer(&'a self) -> IdWriter {
        IdWriter {
            ids: self.clone(),
            echo: std::env::var("SHADOWSYNC_SYSTEST_LOG").is_ok(),
        }
    }
}

impl ExecutorIds {
    /// Installs the subscriber once per process (keeping `SHADOWSYNC_SYSTEST_LOG` working).
    fn install() -> Self {
        static IDS: OnceLock<ExecutorIds> = OnceLock::new();
        IDS.get_or_init(|| {
            let ids = ExecutorIds::default();
            let user = std::env::var("SHADOWSYNC_SYSTEST_LOG").unwrap_or_else(|_| "off".into());
            let filter = format!("{user},shadowsync_executor::worker=info");
            tracing_subscriber::fmt()
                .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
                .with_ansi(false)
                .with_writer(ids.clone())
                .try_init()
                .expect("this file's subscriber is the first");
            ids
        })
        .clone()
    }

    fn port_of(&self, executor_id: &str) -> Option<u16> {
        let ids = self.0.lock().unwrap_or_else(|e| e.into_inner());
        ids.iter()
            .find(|(_, id)| id.as_str() == executor_id)
            .and_then(|(thread, _)| thread.strip_prefix("executor-")?.parse().ok())
    }
}

/// The executor nodes, shared by the runs.
struct Executors {
    nodes: Mutex<Vec<Node>>,
    ids: ExecutorIds,
}

impl Executors {
    /// Kills the node whose executor is `executor_id` and starts it again (a fresh process with
    /// a new executor id, on the same port).
    fn kill_and_restart(&self, executor_id: &str) {
        let port = self
            .ids
            .port_of(executor_id)
            .unwrap_or_else(|| panic!("no running node is {executor_id}"));
        let mut nodes = self.nodes.lock().unwrap_or_else(|e| e.into_inner());
        let node = nodes
            .iter_mut()
            .find(|node| node.address().port() == port)
            .expect("the node on that port");
        node.kill();
        node.restart();
    }
}

/// What the runs share.
struct Shared {
    executors: Executors,
    alice: User,
    bob: User,
    connection: String,
    /// The task service's store (PostgreSQL), for the row and outbox locks.
    store_url: String,
    active: Semaphore,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_executors_leave_every_task_applied_exactly_once() {
    let ids = ExecutorIds::install();
    let seed = std::env::var("SHADOWSYNC_CRASH_SEED")
        .ok()
        .and_then(|seed| seed.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(7, |elapsed| elapsed.as_secs())
        });
    println!("executor crash runs: SHADOWSYNC_CRASH_SEED={seed}");
    let mut rng = Rng(seed);

    let mut cluster = Cluster::start_with(ClusterOptions {
        executors: ACTIVE + 2,
    })
    .await;
    let team = Team::new(&cluster.endpoints()).await;
    let store_url = cluster
        .task
        .config()
        .database_url
        .as_ref()
        .expect("the cluster's store")
        .expose()
        .clone();
    let shared = Arc::new(Shared {
        executors: Executors {
            nodes: Mutex::new(std::mem::take(&mut cluster.executors)),
            ids,
        },
        alice: team.alice.clone(),
        bob: team.bob.clone(),
        connection: team.connection.clone(),
        store_url,
        active: Semaphore::new(ACTIVE),
    });

    let mut faults = vec![
        Fault::AfterClaim,
        Fault::MidStatement(1),
        Fault::AfterStatement(1),
        Fault::MidStatement(4),
        Fault::AfterStatement(4),
        Fault::BeforeCompletion,
        Fault::MidStatement(5),
        Fault::AfterStatement(5),
        Fault::MidStatementEnded(4),
        Fault::MidStatement(3),
        Fault::AfterStatement(3),
        Fault::AfterClaim,
        Fault::MidStatement(6),
        Fault::AfterStatement(6),
        Fault::MidStatementEnded(5),
        Fault::BeforeCompletion,
    ];
    for _ in 0..8 {
        faults.push(Fault::Random(Duration::from_millis(rng.below(800))));
    }
    let started = Instant::now();
    let runs = faults.iter().enumerate().map(|(index, fault)| {
        let shared = shared.clone();
        let fault = *fault;
        tokio::spawn(async move { run(&shared, index, fault).await })
    });
    let mut reports = Vec::new();
    for outcome in futures::future::join_all(runs).await {
        reports.push(outcome.expect("a run panicked (its message is above)"));
    }
    for report in &reports {
        println!("{report}");
    }
    println!(
        "{} runs, each killed once, in {:.0?} (seed {seed})",
        reports.len(),
        started.elapsed()
    );
}

/// One run: set up, drive the task to `fault`, kill, restart, and check the end.
async fn run(shared: &Shared, index: usize, fault: Fault) -> String {
    let db = MariaDb::create(&format!("ss_sys_crash{index}")).await;
    db.exec(SCHEMA).await;
    let mut alice = shared.alice.clone();
    let mut bob = shared.bob.clone();
    let mut gates = Gates::new(&db);
    gates.take(fault.first_gate()).await;

    let permit = shared.active.acquire().await.expect("semaphore");
    let analysis = alice.analyse(&shared.connection, &db.name).await;
    let task = alice.submit(&analysis.id, ErrorStrategy::Abort).await;
    let id = task.id;
    bob.approve(id).await;
    wait_claimed(&mut alice, id).await;

    let mut row_lock = None;
    let mut outbox_lock = None;
    match fault {
        Fault::AfterClaim => {}
        Fault::MidStatement(n) | Fault::MidStatementEnded(n) => {
            reach(&db, &mut gates, shared, id, n).await;
        }
        Fault::AfterStatement(n) => {
            reach(&db, &mut gates, shared, id, n).await;
            row_lock = Some(lock_task_row(&shared.store_url, id).await);
            gates.release(gate_of(n)).await;
            until(&format!("statement {n} of task {id} lands"), || async {
                landed(&db).await.contains(&n)
            })
            .await;
        }
        Fault::BeforeCompletion => {
            reach(&db, &mut gates, shared, id, 6).await;
            outbox_lock = Some(lock_outbox(&shared.store_url).await);
            gates.release("_test_z").await;
            let deadline = tokio::time::Instant::now() + PATIENCE;
            while !logs(&mut alice, id)
                .await
                .iter()
                .any(|entry| entry.message.starts_with("execution finished"))
            {
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "task {id} never finished its tables"
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        Fault::Random(delay) => tokio::time::sleep(delay).await,
    }

    // The kill: the executor holding the lease vanishes, with whatever it had in flight.
    let before = logs(&mut alice, id).await;
    let claims = claims(&mut alice, id).await;
    let killed = claims.last().expect("claimed").clone();
    shared.executors.kill_and_restart(&killed.executor_id);
    if matches!(fault, Fault::AfterClaim | Fault::MidStatementEnded(_)) {
        end_waiting_statements(&db).await;
    }
    gates.release_all().await;
    for lock in [row_lock, outbox_lock].into_iter().flatten() {
        let _ = lock.close().await;
    }
    drop(permit);

    // An orphaned statement either lands now that nothing holds it, or the server ends it.
    until(
        &format!("no statement of task {id} left running"),
        || async { running_ddl(&db).await == 0 },
    )
    .await;
    let applied = landed(&db).await;
    let done = applied.len();
    assert_eq!(
        applied,
        (1..=done).collect::<BTreeSet<_>>(),
        "task {id}: statements land in order"
    );
    assert!(
        fault.applied().contains(&done),
        "task {id} killed at {fault:?} with statements {applied:?} applied"
    );
    if let Fault::AfterStatement(n) = fault {
        assert!(
            !before
                .iter()
                .any(|entry| statement_of(entry, "finished") == Some(n)),
            "task {id}: statement {n}'s line was recorded before the kill"
        );
    }

    alice.wait_status(id, TaskStatus::ExecutionSucceeded).await;
    check_end(&mut alice, &db, id, fault, &killed, &before, &applied).await;
    db.drop_database().await;
    format!(
        "task {id}: killed at {fault:?} in attempt {} with statements {applied:?} applied",
        killed.attempt
    )
}

/// Every guarantee of a run once its task ended.
async fn check_end(
    alice: &mut User,
    db: &MariaDb,
    id: i64,
    fault: Fault,
    killed: &TimelineEntry,
    before: &[TaskLogEntry],
    applied: &BTreeSet<usize>,
) {
    for table in ["a_new", "p", "x", "z"] {
        target::assert_in_sync(db, table, &format!("_test_{table}")).await;
    }
    let timeline = alice.timeline(id).await;
    let logs = logs(alice, id).await;
    let context = format!("task {id} ({fault:?})\ntimeline: {timeline:#?}\nlogs: {logs:#?}");

    // Nothing acknowledged before the kill was lost.
    for line in before {
        assert!(
            logs.iter()
                .any(|entry| entry.sequence == line.sequence && entry.message == line.message),
            "lost {line:?}\n{context}"
        );
    }
    // No statement failed or was found already applied by a later attempt.
    for entry in &logs {
        assert!(
            entry.level != LogLevel::Error as i32 && !entry.message.contains("taken as applied"),
            "{entry:?}\n{context}"
        );
    }

    // Claims: the killed attempt, then (after its lease lapsed) exactly one more with a higher
    // attempt number — unless the killed attempt's completion was already in flight and landed.
    let starts: Vec<&TimelineEntry> = timeline
        .iter()
        .filter(|entry| entry.kind == TimelineEntryKind::ExecutionStarted as i32)
        .collect();
    assert_eq!(starts[0].attempt, killed.attempt, "{context}");
    let later_attempts = match starts.as_slice() {
        [_] => {
            assert_eq!(fault, Fault::BeforeCompletion, "{context}");
            BTreeSet::new()
        }
        [first, second] => {
            assert!(second.attempt > first.attempt, "{context}");
            let lapsed = timeline.iter().any(|entry| {
                entry.kind == TimelineEntryKind::LeaseLapsed as i32
                    && entry.sequence > first.sequence
                    && entry.sequence < second.sequence
            });
            assert!(lapsed, "no lease lapse between the claims\n{context}");
            BTreeSet::from([second.attempt])
        }
        _ => panic!("claimed {} times\n{context}", starts.len()),
    };

    // Each table finished once, in sync.
    for table in ["a_new", "p", "x", "z"] {
        let finished: Vec<i32> = timeline
            .iter()
            .filter(|entry| {
                entry.kind == TimelineEntryKind::TableFinished as i32 && entry.table == table
            })
            .map(|entry| entry.table_status)
            .collect();
        assert!(
            matches!(finished.as_slice(), [status] if *status == TableExecutionStatus::Succeeded as i32
                || *status == TableExecutionStatus::AlreadyInSync as i32),
            "{table} finished {finished:?}\n{context}"
        );
    }

    // Exactly once in effect: what the killed attempt applied, plus what later attempts ran,
    // is the whole script with no statement twice; nothing ran twice within the log either.
    let ran_later: Vec<usize> = logs
        .iter()
        .filter(|entry| later_attempts.contains(&entry.attempt))
        .filter_map(|entry| statement_of(entry, "started"))
        .collect();
    let ran_later_set: BTreeSet<usize> = ran_later.iter().copied().collect();
    assert_eq!(ran_later.len(), ran_later_set.len(), "{context}");
    assert!(applied.is_disjoint(&ran_later_set), "{context}");
    assert_eq!(
        applied
            .union(&ran_later_set)
            .copied()
            .collect::<BTreeSet<_>>(),
        (1..=SCRIPT.len()).collect::<BTreeSet<_>>(),
        "{context}"
    );
    let mut finished: Vec<usize> = logs
        .iter()
        .filter_map(|entry| statement_of(entry, "finished"))
        .collect();
    let count = finished.len();
    finished.sort_unstable();
    finished.dedup();
    assert_eq!(
        count,
        finished.len(),
        "a statement finished twice\n{context}"
    );
    for entry in &logs {
        if entry.attempt == killed.attempt
            && let Some(n) = statement_of(entry, "finished")
        {
            assert!(applied.contains(&n), "{entry:?}\n{context}");
        }
    }
}

/// Statement `n` of the script if `entry` says it `started` or `finished`.
fn statement_of(entry: &TaskLogEntry, verb: &str) -> Option<usize> {
    let rest = entry.message.strip_prefix("statement ")?;
    let (position, rest) = rest.split_once('/')?;
    let (_, rest) = rest.split_once(' ')?;
    if !rest.starts_with(verb) {
        return None;
    }
    let position: usize = position.parse().ok()?;
    SCRIPT
        .iter()
        .position(|(table, p)| *table == entry.table && *p == position)
        .map(|index| index + 1)
}

/// The shadow statement `n` alters.
fn gate_of(n: usize) -> &'static str {
    match SCRIPT[n - 1].0 {
        "x" => "_test_x",
        "p" => "_test_p",
        "z" => "_test_z",
        other => panic!("statement {n} ({other}) cannot be held"),
    }
}

/// Drives the task (already claimed, its first gate held) until statement `n` waits for a
/// metadata lock the test holds, every earlier statement applied.
async fn reach(db: &MariaDb, gates: &mut Gates, shared: &Shared, id: i64, n: usize) {
    match n {
        1 | 3 | 6 => {}
        4 => {
            wait_for_lock(db, "_test_p").await;
            gates.take("_test_x").await;
            gates.release("_test_p").await;
        }
        5 => {
            Box::pin(reach(db, gates, shared, id, 4)).await;
            // x.2 and x.3 alter the same shadow: hold x.2's report so the lock can be taken
            // between them.
            let row = lock_task_row(&shared.store_url, id).await;
            gates.release("_test_x").await;
            until("statement 4 lands", || async {
                landed(db).await.contains(&4)
            })
            .await;
            gates.take("_test_x").await;
            let _ = row.close().await;
        }
        _ => panic!("statement {n} cannot be held"),
    }
    wait_for_lock(db, gate_of(n)).await;
}

/// Open transactions that read a shadow, holding its metadata lock.
struct Gates {
    options: MySqlConnectOptions,
    held: Vec<(&'static str, MySqlConnection)>,
}

impl Gates {
    fn new(db: &MariaDb) -> Self {
        let options = shadowsync_common::testing::mariadb::mysql_url()
            .parse::<MySqlConnectOptions>()
            .expect("MariaDB URL")
            .database(&db.name);
        Self {
            options,
            held: Vec::new(),
        }
    }

    async fn take(&mut self, shadow: &'static str) {
        let mut connection = MySqlConnection::connect_with(&self.options)
            .await
            .expect("gate connection");
        connection
            .execute("START TRANSACTION")
            .await
            .expect("begin");
        connection
            .execute(AssertSqlSafe(format!("SELECT COUNT(*) FROM `{shadow}`")))
            .await
            .expect("read the shadow");
        self.held.push((shadow, connection));
    }

    async fn release(&mut self, shadow: &str) {
        if let Some(index) = self.held.iter().position(|(held, _)| *held == shadow) {
            let (_, mut connection) = self.held.remove(index);
            connection.execute("COMMIT").await.expect("commit");
            let _ = connection.close().await;
        }
    }

    async fn release_all(&mut self) {
        while let Some((shadow, _)) = self.held.first() {
            let shadow = *shadow;
            self.release(shadow).await;
        }
    }
}

/// Holds task `id`'s row in the task service's store: every call of its executor waits.
async fn lock_task_row(store_url: &str, id: i64) -> PgConnection {
    let mut connection = PgConnection::connect(store_url).await.expect("store");
    connection.execute("BEGIN").await.expect("begin");
    sqlx::query("UPDATE task.tasks SET timeline_seq = timeline_seq WHERE id = $1")
        .bind(id)
        .execute(&mut connection)
        .await
        .expect("lock the task row");
    connection
}

/// Holds the task service's outbox against inserts: every status change waits.
async fn lock_outbox(store_url: &str) -> PgConnection {
    let mut connection = PgConnection::connect(store_url).await.expect("store");
    connection.execute("BEGIN").await.expect("begin");
    connection
        .execute("LOCK TABLE task.outbox IN SHARE MODE")
        .await
        .expect("lock the outbox");
    connection
}

/// The statements of the script whose result the shadows show.
async fn landed(db: &MariaDb) -> BTreeSet<usize> {
    let x = target::show_create(db, "_test_x").await.unwrap_or_default();
    let p = target::show_create(db, "_test_p").await.unwrap_or_default();
    let z = target::show_create(db, "_test_z").await.unwrap_or_default();
    let mut applied = BTreeSet::new();
    for (n, present) in [
        (1, !x.contains("FOREIGN KEY")),
        (2, target::show_create(db, "_test_a_new").await.is_some()),
        (3, p.contains("`label`")),
        (4, x.contains("ENGINE=Aria")),
        (5, !x.contains("MAX_ROWS")),
        (6, z.contains("`extra`")),
    ] {
        if present {
            applied.insert(n);
        }
    }
    applied
}

/// Waits until a statement on `shadow` waits for a metadata lock.
async fn wait_for_lock(db: &MariaDb, shadow: &str) {
    until(
        &format!("a statement on {shadow} waits for its lock"),
        || async {
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
        },
    )
    .await;
}

/// Ends (`KILL QUERY`) every statement of `db` waiting for a metadata lock: the orphans of a
/// killed executor, as a server that noticed the lost connection would.
async fn end_waiting_statements(db: &MariaDb) {
    let waiting: Vec<i64> = sqlx::query(
        "SELECT CAST(ID AS SIGNED) FROM information_schema.PROCESSLIST WHERE DB = ? \
         AND STATE LIKE 'Waiting for table metadata lock%' AND INFO LIKE 'ALTER TABLE%'",
    )
    .bind(&db.name)
    .fetch_all(&db.pool)
    .await
    .expect("processlist")
    .iter()
    .map(|row| row.get(0))
    .collect();
    for thread in waiting {
        // It may have ended meanwhile.
        let _ = sqlx::query(AssertSqlSafe(format!("KILL QUERY {thread}")))
            .execute(&db.pool)
            .await;
    }
}

/// DDL statements still running in `db` (an orphan of a killed executor, for instance).
async fn running_ddl(db: &MariaDb) -> i64 {
    sqlx::query(
        "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE DB = ? AND COMMAND = 'Query' \
         AND (INFO LIKE 'ALTER TABLE%' OR INFO LIKE 'CREATE TABLE%')",
    )
    .bind(&db.name)
    .fetch_one(&db.pool)
    .await
    .expect("processlist")
    .get(0)
}

/// Polls `done` until it holds.
///
/// # Panics
/// After [`PATIENCE`], naming `what`.
async fn until<F, Fut>(what: &str, mut done: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while !done().await {
        assert!(tokio::time::Instant::now() < deadline, "never: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The task's EXECUTION_STARTED entries, in order.
async fn claims(user: &mut User, id: i64) -> Vec<TimelineEntry> {
    user.timeline(id)
        .await
        .into_iter()
        .filter(|entry| entry.kind == TimelineEntryKind::ExecutionStarted as i32)
        .collect()
}

async fn wait_claimed(user: &mut User, id: i64) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while claims(user, id).await.is_empty() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "task {id} never claimed"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn logs(user: &mut User, id: i64) -> Vec<TaskLogEntry> {
    user.logs(id, LogLevelFilter::All).await
}
