//! The one `sql_mode` every shadowsync session on a target database runs under.
//!
//! The server's lexer depends on the session's `sql_mode`: `NO_BACKSLASH_ESCAPES` decides
//! whether `'a\' ; DROP …` is one string or a string and a second statement, `ANSI_QUOTES`
//! whether `"x"` is a string or a name, and several modes change what `SHOW CREATE TABLE`
//! prints. The analysis reads `SHOW CREATE TABLE`, the renderer writes DDL from it, the
//! executor's safety guard lexes that DDL and the executor's session runs it: all four agree
//! only if every session is pinned to [`SESSION_SQL_MODE`] (whatever the server's global mode
//! is) and the guard lexes under exactly that mode. [`pin_session`] sets it on a connection and
//! verifies it; [`pinned_pool`] does it for every connection a pool opens.

use std::collections::BTreeSet;

use futures::future::BoxFuture;
use sqlx::mysql::{MySqlConnectOptions, MySqlConnection, MySqlPoolOptions};
use sqlx::{AssertSqlSafe, Executor};

/// The session `sql_mode` of every connection to a target database, chosen deliberately:
/// - backslash escapes **on** (no `NO_BACKSLASH_ESCAPES`) and `"` quoting strings (no
///   `ANSI_QUOTES`): that is how MariaDB's `SHOW CREATE TABLE` prints under its default mode
///   (`'it\'s'` in CHECK, DEFAULT and generated-column expressions, backticked names), so the
///   rendered DDL means on the executor's session what it meant when it was read;
/// - `STRICT_TRANS_TABLES`, `ERROR_FOR_DIVISION_BY_ZERO`, `NO_ENGINE_SUBSTITUTION`: MariaDB
///   10.11's defaults, so a statement fails rather than silently truncating a default or
///   creating the shadow with another engine than the one asked for;
/// - not `NO_AUTO_CREATE_USER` (also a MariaDB default): it only concerns `GRANT`, which never
///   runs, and MySQL 8 refuses the name;
/// - not `PIPES_AS_CONCAT`, which sqlx adds by default: it is not the server's default and
///   would change what `||` in an expression means between the source's session and ours.
pub const SESSION_SQL_MODE: &str =
    "STRICT_TRANS_TABLES,ERROR_FOR_DIVISION_BY_ZERO,NO_ENGINE_SUBSTITUTION";

/// `options` with sqlx's own `sql_mode` additions turned off (it appends to the server's
/// global mode, which we do not want to inherit); [`pin_session`] sets the mode instead.
pub fn without_driver_sql_mode(options: MySqlConnectOptions) -> MySqlConnectOptions {
    options.pipes_as_concat(false).no_engine_substitution(false)
}

/// The client character set the guard's reading assumes: in `utf8mb4` no byte of a multi-byte
/// character is an ASCII quote or backslash (in `gbk` or `sjis` a trailing byte can be `\`
/// and swallow the quote after it). sqlx sets it (`SET NAMES utf8mb4`) on every connection.
pub const SESSION_CHARACTER_SET: &str = "utf8mb4";

/// Sets the session's `sql_mode` to [`SESSION_SQL_MODE`] and reads it back, with the client
/// character set.
///
/// Fails when the server refuses the mode, or reports another mode or a character set other
/// than [`SESSION_CHARACTER_SET`] afterwards (a proxy or a server that rewrites them):
/// statements must then not run on this session.
pub async fn pin_session(connection: &mut MySqlConnection) -> Result<(), sqlx::Error> {
    connection
        .execute(AssertSqlSafe(format!(
            "SET SESSION sql_mode = '{SESSION_SQL_MODE}'"
        )))
        .await?;
    let (mode, charset): (String, String) = sqlx::query_as(
        "SELECT CAST(@@SESSION.sql_mode AS CHAR), CAST(@@SESSION.character_set_client AS CHAR)",
    )
    .fetch_one(&mut *connection)
    .await?;
    if !same_modes(&mode, SESSION_SQL_MODE) {
        return Err(sqlx::Error::Configuration(
            format!("the session sql_mode is `{mode}` after setting `{SESSION_SQL_MODE}`").into(),
        ));
    }
    if !charset.eq_ignore_ascii_case(SESSION_CHARACTER_SET) {
        return Err(sqlx::Error::Configuration(
            format!(
                "the session's client character set is `{charset}`, not `{SESSION_CHARACTER_SET}`"
            )
            .into(),
        ));
    }
    Ok(())
}

/// `pool` with every new connection pinned by [`pin_session`] before first use.
pub fn pinned_pool(pool: MySqlPoolOptions) -> MySqlPoolOptions {
    pool.after_connect(
        |connection, _metadata| -> BoxFuture<'_, Result<(), sqlx::Error>> {
            Box::pin(pin_session(connection))
        },
    )
}

/// The server prints modes in its own order and may expand combination modes.
fn same_modes(left: &str, right: &str) -> bool {
    let set = |modes: &str| -> BTreeSet<String> {
        modes
            .split(',')
            .map(|mode| mode.trim().to_ascii_uppercase())
            .filter(|mode| !mode.is_empty())
            .collect()
    };
    set(left) == set(right)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_compare_as_sets() {
        assert!(same_modes(
            "NO_ENGINE_SUBSTITUTION,STRICT_TRANS_TABLES,ERROR_FOR_DIVISION_BY_ZERO",
            SESSION_SQL_MODE
        ));
        assert!(!same_modes(
            "STRICT_TRANS_TABLES,ERROR_FOR_DIVISION_BY_ZERO,NO_ENGINE_SUBSTITUTION,NO_BACKSLASH_ESCAPES",
            SESSION_SQL_MODE
        ));
        assert!(!SESSION_SQL_MODE.contains("NO_BACKSLASH_ESCAPES"));
        assert!(!SESSION_SQL_MODE.contains("ANSI_QUOTES"));
    }
}
