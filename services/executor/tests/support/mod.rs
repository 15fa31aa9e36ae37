//! A scratch MariaDB world for attacking the safety guard (`red_team.rs`, `guard_fuzz.rs`).
//!
//! [`Scratch::create`] makes two uniquely named databases on the shared server
//! (`SHADOWSYNC_TEST_MYSQL_URL`, default root at 127.0.0.1:3306), both dropped at the end (or on
//! `Drop`, with the users an attack may have created):
//! - the task's database, with production tables holding rows (`customers`, `orders` with a
//!   foreign key to it, `orders_flat`, the partitioned `orders_archive`), a sequence
//!   (`order_seq`), the shadows ([`SHADOWS`]; `_test_new` does not exist yet) and
//!   `_test_items`, a shadow outside the task's plan (a canary too: only references to it are
//!   allowed, by the naming rule);
//! - a second canary database with `secrets`.
//!
//! [`Scratch::execute`] runs a statement the way the executor does: `sqlx::raw_sql` on one
//! connection pinned to the executor's `sql_mode` (`shadowsync_schema::pin_session`). sqlx
//! always asks for `CLIENT_MULTI_STATEMENTS`, so a statement the server splits in two *runs* in
//! two; the outcome counts the server's results, which is how "exactly one statement" is
//! checked. [`Scratch::snapshot`] reads everything an attacker could want to change;
//! [`Scratch::violations`] compares two snapshots and says what changed outside the shadows.

#![allow(dead_code, clippy::expect_used, clippy::unwrap_used)]

mod snapshot;

// Used by guard_fuzz.rs, not by red_team.rs (each test binary compiles this module).
#[allow(unused_imports)]
pub use snapshot::Snapshot;

use futures::TryStreamExt as _;
use shadowsync_common::testing::mariadb::mysql_url;
use sqlx::mysql::{MySqlConnectOptions, MySqlConnection, MySqlRow};
use sqlx::{AssertSqlSafe, ConnectOptions as _, Either, Row as _};

/// The naming rule of the task (the executor gives it to its guard): `_test_` + source.
pub const PREFIX: &str = "_test_";

/// The shadows the guard is told about (`_test_new` is created by candidates).
pub const SHADOWS: [&str; 5] = [
    "_test_customers",
    "_test_orders",
    "_test_x",
    "_test_p",
    "_test_new",
];

/// Production tables, the sequence and shadows of the task's database, with rows.
const TASK_TABLES: &str = "
CREATE TABLE customers (id int NOT NULL PRIMARY KEY, name varchar(40) NOT NULL) ENGINE=InnoDB;
INSERT INTO customers VALUES (1, 'ada'), (2, 'grace'), (3, 'edsger');
CREATE TABLE orders (id int NOT NULL PRIMARY KEY, customer_id int NOT NULL,
  total decimal(10,2) NOT NULL DEFAULT 0, KEY k_customer (customer_id),
  CONSTRAINT fk_orders_customer FOREIGN KEY (customer_id) REFERENCES customers (id)) ENGINE=InnoDB;
INSERT INTO orders VALUES (1, 1, 10), (2, 2, 20), (3, 3, 30), (4, 1, 40);
CREATE TABLE orders_flat (id int NOT NULL, total decimal(10,2) DEFAULT NULL) ENGINE=InnoDB;
INSERT INTO orders_flat VALUES (1, 1.5), (2, 2.5);
CREATE TABLE orders_archive (id int NOT NULL, total decimal(10,2) DEFAULT NULL) ENGINE=InnoDB
  PARTITION BY RANGE (id) (PARTITION p0 VALUES LESS THAN (100), PARTITION p1 VALUES LESS THAN MAXVALUE);
INSERT INTO orders_archive VALUES (1, 5), (200, 6);
CREATE SEQUENCE order_seq START WITH 1000 INCREMENT BY 1 NOCACHE;
CREATE TABLE items (id int NOT NULL PRIMARY KEY) ENGINE=InnoDB;
CREATE TABLE _test_items (id int NOT NULL PRIMARY KEY) ENGINE=InnoDB;
INSERT INTO _test_items VALUES (1);
";

/// The shadows as a fresh task finds them: `_test_x` and `_test_p` hold rows so that an
/// `ALTER` evaluating a `DEFAULT` per row would show a side effect.
const SHADOW_TABLES: &str = "
CREATE TABLE _test_customers (id int NOT NULL PRIMARY KEY, name varchar(40) NOT NULL) ENGINE=InnoDB;
CREATE TABLE _test_orders (id int NOT NULL PRIMARY KEY, customer_id int NOT NULL,
  total decimal(10,2) NOT NULL DEFAULT 0, KEY k_customer (customer_id)) ENGINE=InnoDB;
CREATE TABLE _test_x (id int NOT NULL PRIMARY KEY, v varchar(20) DEFAULT NULL) ENGINE=InnoDB;
INSERT INTO _test_x VALUES (1, 'a'), (2, 'b'), (3, 'c');
CREATE TABLE _test_p (id int NOT NULL, total decimal(10,2) DEFAULT NULL) ENGINE=InnoDB
  PARTITION BY RANGE (id) (PARTITION p0 VALUES LESS THAN (100), PARTITION p1 VALUES LESS THAN MAXVALUE);
INSERT INTO _test_p VALUES (7, 7), (300, 8);
";

const OTHER_TABLES: &str = "
CREATE TABLE secrets (id int NOT NULL PRIMARY KEY, s varchar(20) NOT NULL) ENGINE=InnoDB;
INSERT INTO secrets VALUES (1, 'launch-code');
";

/// What the server did with one statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// Results the server sent back: one per statement it ran (`> 1`: it split the text).
    pub results: usize,
    /// The error of the statement that failed, if one did.
    pub error: Option<String>,
}

impl Outcome {
    /// The server ran more than one statement, or ran one and then failed on a second.
    pub fn split(&self) -> bool {
        self.results > 1 || (self.results == 1 && self.error.is_some())
    }
}

/// The scratch databases and the executor-like session on the task's one.
pub struct Scratch {
    /// The task's database.
    pub database: String,
    /// The second canary database.
    pub other: String,
    /// A user name unique to this run, for candidates that try to create or grant one.
    pub user: String,
    admin: MySqlConnection,
    session: MySqlConnection,
    cleaned: bool,
}

fn options() -> MySqlConnectOptions {
    let url = mysql_url();
    url.parse::<MySqlConnectOptions>()
        .unwrap_or_else(|e| panic!("SHADOWSYNC_TEST_MYSQL_URL {url}: {e}"))
        .disable_statement_logging()
}

async fn run_script(connection: &mut MySqlConnection, sql: &str) {
    sqlx::raw_sql(AssertSqlSafe(sql.to_owned()))
        .execute(&mut *connection)
        .await
        .unwrap_or_else(|e| panic!("{e}\nwhile running:\n{sql}"));
}

/// A cell as text, whatever its type (`NULL` for NULL).
fn cell(row: &MySqlRow, index: usize) -> String {
    if let Ok(value) = row.try_get::<Option<String>, _>(index) {
        return value.unwrap_or_else(|| "NULL".into());
    }
    if let Ok(value) = row.try_get::<Option<Vec<u8>>, _>(index) {
        return value.map_or_else(|| "NULL".into(), |v| String::from_utf8_lossy(&v).into());
    }
    if let Ok(value) = row.try_get::<Option<i64>, _>(index) {
        return value.map_or_else(|| "NULL".into(), |v| v.to_string());
    }
    if let Ok(value) = row.try_get::<Option<u64>, _>(index) {
        return value.map_or_else(|| "NULL".into(), |v| v.to_string());
    }
    "<undecodable>".into()
}

async fn rows(connection: &mut MySqlConnection, sql: &str) -> Vec<Vec<String>> {
    let rows: Vec<MySqlRow> = sqlx::raw_sql(AssertSqlSafe(sql.to_owned()))
        .fetch_all(&mut *connection)
        .await
        .unwrap_or_else(|e| panic!("{e}\nwhile reading:\n{sql}"));
    rows.iter()
        .map(|row| (0..row.len()).map(|index| cell(row, index)).collect())
        .collect()
}

/// `name` as a backtick-quoted identifier.
pub fn quoted(name: &str) -> String {
    format!("`{}`", name.replace('`', "``"))
}

/// `name` as a single-quoted literal safe under any `sql_mode` (names here have no quotes).
fn literal(name: &str) -> String {
    format!("'{}'", name.replace('\'', "''"))
}

impl Scratch {
    /// Creates both databases and the session. `label` goes into the names (`ssrt_<label>_…`).
    pub async fn create(label: &str) -> Self {
        let id = uuid::Uuid::new_v4().simple().to_string();
        let database = format!("ssrt_{label}_{}", &id[..16]);
        let other = format!("{database}_other");
        let user = format!("ssrt_{}", &id[16..28]);
        let mut admin = options()
            .connect()
            .await
            .unwrap_or_else(|e| panic!("test MariaDB at {} unreachable: {e}", mysql_url()));
        for name in [&database, &other] {
            run_script(
                &mut admin,
                &format!("CREATE DATABASE {} CHARACTER SET utf8mb4", quoted(name)),
            )
            .await;
        }
        run_script(
            &mut admin,
            &format!("USE {};\n{TASK_TABLES}{SHADOW_TABLES}", quoted(&database)),
        )
        .await;
        run_script(
            &mut admin,
            &format!("USE {};\n{OTHER_TABLES}", quoted(&other)),
        )
        .await;
        run_script(&mut admin, &format!("USE {}", quoted(&database))).await;
        let mut session = shadowsync_schema::without_driver_sql_mode(options())
            .database(&database)
            .connect()
            .await
            .expect("the executor-like session connects");
        shadowsync_schema::pin_session(&mut session)
            .await
            .expect("the executor's sql_mode is pinned");
        Self {
            database,
            other,
            user,
            admin,
            session,
            cleaned: false,
        }
    }

    /// Replaces `{db}`, `{other}` and `{user}` in a candidate's text.
    pub fn fill(&self, template: &str) -> String {
        template
            .replace("{db}", &self.database)
            .replace("{other}", &self.other)
            .replace("{user}", &self.user)
    }

    /// Runs `sql` as the executor would (see the module documentation).
    pub async fn execute(&mut self, sql: &str) -> Outcome {
        let mut results = 0;
        let mut stream = sqlx::raw_sql(AssertSqlSafe(sql.to_owned())).fetch_many(&mut self.session);
        let error = loop {
            match stream.try_next().await {
                Ok(Some(Either::Left(_done))) => results += 1,
                Ok(Some(Either::Right(_row))) => {}
                Ok(None) => break None,
                Err(error) => break Some(error.to_string()),
            }
        };
        drop(stream);
        Outcome { results, error }
    }

    /// Puts the session back in the task's database under the pinned `sql_mode` (after a
    /// statement that changed it, which the snapshot has reported).
    pub async fn restore_session(&mut self) {
        run_script(
            &mut self.session,
            &format!("USE {}", quoted(&self.database)),
        )
        .await;
        shadowsync_schema::pin_session(&mut self.session)
            .await
            .expect("the executor's sql_mode is pinned again");
    }

    /// Puts every shadow back as a fresh task finds it (and drops `_test_new`).
    pub async fn reset_shadows(&mut self) {
        let drops: Vec<String> = SHADOWS.iter().map(|name| quoted(name)).collect();
        let sql = format!(
            "USE {db}; SET foreign_key_checks = 0; DROP TABLE IF EXISTS {}; SET foreign_key_checks = 1;\n{SHADOW_TABLES}",
            drops.join(", "),
            db = quoted(&self.database),
        );
        run_script(&mut self.admin, &sql).await;
    }

    /// Drops `_test_x` and creates it again (what the fuzz's statements target).
    pub async fn reset_table(&mut self, name: &str) {
        let create = SHADOW_TABLES
            .split_inclusive(";\n")
            .filter(|statement| {
                statement.contains(&format!("TABLE {name} "))
                    || statement.contains(&format!("INTO {name} "))
            })
            .collect::<String>();
        let sql = format!(
            "USE {}; DROP TABLE IF EXISTS {};\n{create}",
            quoted(&self.database),
            quoted(name)
        );
        run_script(&mut self.admin, &sql).await;
    }

    /// Drops both databases and any user this run's candidates created.
    pub async fn drop_all(mut self) {
        cleanup(&mut self.admin, &self.database, &self.other, &self.user).await;
        self.cleaned = true;
    }
}

async fn cleanup(admin: &mut MySqlConnection, database: &str, other: &str, user: &str) {
    for name in [database, other] {
        let _ = sqlx::raw_sql(AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS {}",
            quoted(name)
        )))
        .execute(&mut *admin)
        .await;
    }
    let users = rows(
        admin,
        &format!(
            "SELECT User, Host FROM mysql.global_priv WHERE User LIKE {}",
            literal(&format!("{user}%"))
        ),
    )
    .await;
    for row in users {
        let _ = sqlx::raw_sql(AssertSqlSafe(format!(
            "DROP USER IF EXISTS {}@{}",
            literal(&row[0]),
            literal(&row[1])
        )))
        .execute(&mut *admin)
        .await;
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if self.cleaned {
            return;
        }
        // A failed test drops its world from a thread with its own runtime (the test's
        // runtime cannot be blocked on).
        let (database, other, user) =
            (self.database.clone(), self.other.clone(), self.user.clone());
        let cleaner = std::thread::spawn(move || {
            if let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                runtime.block_on(async {
                    if let Ok(mut admin) = options().connect().await {
                        cleanup(&mut admin, &database, &other, &user).await;
                    }
                });
            }
        });
        let _ = cleaner.join();
    }
}
