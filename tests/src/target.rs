//! The target database being synced: a throw-away MariaDB database per test
//! ([`shadowsync_common::testing::MariaDb`]), and structure comparisons between a source table
//! and its shadow.

use sqlx::{AssertSqlSafe, Row as _};

pub use shadowsync_common::testing::MariaDb;

/// The parts of the test server's URL (`mysql://user[:password]@host[:port]`), which the
/// connection a test registers must name.
fn url_parts() -> (String, String, String, u16) {
    let url = shadowsync_common::testing::mariadb::mysql_url();
    let rest = url.strip_prefix("mysql://").unwrap_or(&url);
    let rest = rest.split('/').next().unwrap_or(rest);
    let (credentials, address) = rest.rsplit_once('@').unwrap_or(("root", rest));
    let (user, password) = credentials.split_once(':').unwrap_or((credentials, ""));
    let (host, port) = match address.rsplit_once(':') {
        Some((host, port)) => (host, port.parse().expect("MariaDB port")),
        None => (address, 3306),
    };
    (
        user.to_string(),
        password.to_string(),
        host.to_string(),
        port,
    )
}

pub fn host_and_port() -> (String, u32) {
    let (_, _, host, port) = url_parts();
    (host, u32::from(port))
}

pub fn user() -> String {
    url_parts().0
}

pub fn password() -> String {
    url_parts().1
}

/// `SHOW CREATE TABLE`, or `None` when the table does not exist.
pub async fn show_create(db: &MariaDb, table: &str) -> Option<String> {
    let sql = format!("SHOW CREATE TABLE `{}`", table.replace('`', "``"));
    match sqlx::query(AssertSqlSafe(sql)).fetch_one(&db.pool).await {
        Ok(row) => Some(row.get::<String, _>(1)),
        Err(sqlx::Error::Database(error)) if error.code().as_deref() == Some("42S02") => None,
        Err(error) => panic!("SHOW CREATE TABLE {table}: {error}"),
    }
}

/// The DDL with the table's own name replaced, so a source and its shadow compare equal when
/// their structure is equal (these tests use no foreign or check constraints, whose names
/// legitimately differ).
pub async fn structure(db: &MariaDb, table: &str) -> Option<String> {
    let ddl = show_create(db, table).await?;
    let quoted = format!("CREATE TABLE `{table}`");
    assert!(ddl.starts_with(&quoted), "unexpected DDL: {ddl}");
    Some(ddl.replacen(&quoted, "CREATE TABLE `_`", 1))
}

/// Asserts that `shadow` exists and has `source`'s structure.
pub async fn assert_in_sync(db: &MariaDb, source: &str, shadow: &str) {
    let expected = structure(db, source).await.expect("source exists");
    let actual = structure(db, shadow)
        .await
        .unwrap_or_else(|| panic!("shadow {shadow} does not exist"));
    assert_eq!(actual, expected, "{shadow} differs from {source}");
}

/// True when a session of `db` waits for a table metadata lock (e.g. an ALTER held up by
/// another session's open transaction on that table).
pub async fn is_waiting_for_metadata_lock(db: &MariaDb) -> bool {
    let waiting: i64 = sqlx::query(
        "SELECT COUNT(*) FROM information_schema.PROCESSLIST \
         WHERE DB = ? AND STATE LIKE 'Waiting for table metadata lock%'",
    )
    .bind(&db.name)
    .fetch_one(&db.pool)
    .await
    .expect("processlist")
    .get::<i64, _>(0);
    waiting > 0
}

/// An open transaction that has read some shadows: DDL on them waits for its metadata lock,
/// which holds an executor mid-statement until [`Reader::release`] (or until it is dropped, if
/// the test fails first: the connection then goes back to the pool and is closed with it).
pub struct Reader {
    connection: sqlx::pool::PoolConnection<sqlx::MySql>,
}

impl Reader {
    /// Begins a transaction on `db` and reads each of `tables`.
    pub async fn hold(db: &MariaDb, tables: &[&str]) -> Self {
        use sqlx::Executor as _;
        let mut connection = db.pool.acquire().await.expect("reader connection");
        connection.execute("BEGIN").await.expect("begin");
        for table in tables {
            connection
                .execute(AssertSqlSafe(format!("SELECT * FROM `{table}`")))
                .await
                .unwrap_or_else(|e| panic!("read {table}: {e}"));
        }
        Self { connection }
    }

    /// Commits: the held DDL goes on.
    pub async fn release(mut self) {
        use sqlx::Executor as _;
        self.connection.execute("COMMIT").await.expect("commit");
    }
}
