//! The safety guard: the last check before a statement reaches the database.
//!
//! # API (the executor and `shadowctl guard` use exactly this)
//! - [`SafetyGuard::new`]`(database, shadow_tables)`: the task's database and shadow tables;
//! - [`SafetyGuard::with_naming`]`(ShadowNaming)`: optional, the task's naming rule (foreign keys
//!   may then also reference any table the rule names a shadow);
//! - [`SafetyGuard::check`]`(sql) -> Result<(), GuardRefusal>`, [`GuardRefusal::reason`];
//! - [`SESSION_SQL_MODE`]: the `sql_mode` the guard lexes under, which the executor pins on its
//!   session (re-exported from `shadowsync_schema`).
//!
//! The plan was approved by people, but it travelled through the task service's store and over
//! the network; the guard makes sure that whatever arrives can only change this task's shadow
//! tables. A statement passes only if it is exactly one `CREATE TABLE` or `ALTER TABLE` whose
//! target (optionally qualified by the task's database, no other) is one of the task's shadow
//! tables, and it contains nothing that reaches another table or outside the database:
//! - no `RENAME` anywhere, no `SELECT`, no `CREATE … LIKE`, no `CREATE … AS`, no `TABLE` after
//!   the target (`EXCHANGE PARTITION … WITH TABLE`, `CONVERT PARTITION … TO TABLE`), no
//!   `UNION=(…)` (MERGE tables);
//! - no `IF [NOT] EXISTS` on the target, no `CREATE OR REPLACE`, no `TEMPORARY`;
//! - no engine but the local ones that keep their data in the table itself ([`LOCAL_ENGINES`]:
//!   `CONNECT`, `FEDERATED`, `SPIDER`, `MERGE`, `OQGRAPH`, `S3`… reach another server, table or
//!   file), no `CONNECTION=`, no `DATA DIRECTORY`/`INDEX DIRECTORY`;
//! - foreign keys reference shadow tables only: the task's shadow tables, or with [`SafetyGuard::with_naming`] any table
//!   of the task's database the naming rule makes a shadow; never a source table, never
//!   another database;
//! - no sequence (`NEXTVAL`, `NEXT VALUE FOR`, `LASTVAL`, `PREVIOUS VALUE FOR`, `SETVAL`): a
//!   shadow's default must not advance a production sequence;
//! - no `;`: one statement per call.
//!
//! It works on tokens ([`crate::tokens`]) read exactly as the executor's session reads them, once,
//! under [`SESSION_SQL_MODE`] (which the executor pins on every connection and verifies):
//! keywords inside strings, quoted names and comments are ignored, and whatever the server could
//! read differently from the tokenizer (executable comments, control and non-ASCII characters
//! outside quotes, `--` before such a character, NUL) is refused before any keyword is looked
//! at. MariaDB's own `'it\'s'` in CHECK, DEFAULT and generated-column expressions is one
//! string, as it is for the session. The guard errs on the side of refusing: the schema
//! engine's renderer never needs what it refuses.

use std::collections::BTreeSet;
use std::fmt;

pub use shadowsync_schema::SESSION_SQL_MODE;
use shadowsync_schema::ShadowNaming;

use crate::tokens::{Token, tokenize};

/// The error code reported for a refused statement (`ReportTableResultRequest.error_code`).
pub const GUARD_REFUSED_CODE: &str = "guard_refused";

/// Engines whose data lives in the table itself, in the server's data directory. Any other
/// (`CONNECT`, `FEDERATED`, `SPIDER`, `MERGE`, `OQGRAPH`'s `data_table`, `S3`, `SEQUENCE`, a
/// plugin installed tomorrow) is refused: an allow-list cannot miss one.
pub const LOCAL_ENGINES: &[&str] = &[
    "InnoDB",
    "XtraDB",
    "Aria",
    "MyISAM",
    "MEMORY",
    "HEAP",
    "ARCHIVE",
    "BLACKHOLE",
    "CSV",
    "RocksDB",
    "TokuDB",
    "ColumnStore",
];

/// Why a statement was refused; the message names the reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuardRefusal(String);

impl GuardRefusal {
    fn new(reason: impl Into<String>) -> Self {
        Self(reason.into())
    }

    /// The reason, for the task log and the table report.
    pub fn reason(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for GuardRefusal {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            formatter,
            "statement refused by the safety guard: {}",
            self.0
        )
    }
}

impl std::error::Error for GuardRefusal {}

/// The guard for one task: its database and its shadow tables.
#[derive(Debug, Clone)]
pub struct SafetyGuard {
    database: String,
    shadow_tables: BTreeSet<String>,
    /// The task's naming rule: a foreign key may also reference any table it names a shadow.
    naming: Option<ShadowNaming>,
}

impl SafetyGuard {
    /// A guard allowing changes to `shadow_tables` of `database` only. Names compare exactly
    /// (a name spelt in another case is refused: the safe side whatever
    /// `lower_case_table_names` is).
    pub fn new(
        database: impl Into<String>,
        shadow_tables: impl IntoIterator<Item = String>,
    ) -> Self {
        Self {
            database: database.into(),
            shadow_tables: shadow_tables
                .into_iter()
                .filter(|name| !name.is_empty())
                .collect(),
            naming: None,
        }
    }

    /// The same guard, also letting foreign keys reference any table whose name `naming` makes
    /// a shadow's (prefix + source or source + suffix, with a non-empty source part: a table
    /// matching the naming rule is a shadow). The targets stay the shadow tables.
    pub fn with_naming(mut self, naming: ShadowNaming) -> Self {
        self.naming = Some(naming);
        self
    }

    /// Checks one statement. Fails with the reason when it may not run.
    ///
    /// The statement is read once, as a session under [`SESSION_SQL_MODE`] reads it.
    pub fn check(&self, sql: &str) -> Result<(), GuardRefusal> {
        self.checked_target(sql).map(drop)
    }

    /// [`SafetyGuard::check`], and the statement must change `shadow`: the shadow of the plan
    /// table it belongs to. The approved digest already binds each statement to its table; this
    /// keeps a statement from changing a sibling shadow even if the binding were ever lost.
    pub fn check_for(&self, sql: &str, shadow: &str) -> Result<(), GuardRefusal> {
        let target = self.checked_target(sql)?;
        if target != shadow {
            return Err(GuardRefusal::new(format!(
                "the statement changes `{target}`, but it belongs to the plan of `{shadow}`"
            )));
        }
        Ok(())
    }

    fn checked_target(&self, sql: &str) -> Result<String, GuardRefusal> {
        let tokens = tokenize(sql)
            .map_err(|error| GuardRefusal::new(format!("cannot be read safely: {error}")))?;
        if tokens.contains(&Token::Semicolon) {
            return Err(GuardRefusal::new(
                "contains `;`: exactly one statement may run at a time",
            ));
        }
        let mut cursor = Cursor {
            tokens: &tokens,
            position: 0,
        };
        let kind = self.statement_kind(&mut cursor)?;
        let target = self.target(&mut cursor)?;
        let rest = &tokens[cursor.position..];
        if kind == StatementKind::Create
            && (rest.first().is_some_and(|t| t.is_keyword("LIKE"))
                || (rest.first() == Some(&Token::Punct('('))
                    && rest.get(1).is_some_and(|t| t.is_keyword("LIKE"))))
        {
            return Err(GuardRefusal::new(format!(
                "CREATE TABLE … LIKE copies another table into `{target}`"
            )));
        }
        self.check_body(kind, rest)?;
        Ok(target)
    }

    fn statement_kind(&self, cursor: &mut Cursor<'_>) -> Result<StatementKind, GuardRefusal> {
        let first = cursor
            .next()
            .ok_or_else(|| GuardRefusal::new("empty statement"))?;
        let kind = if first.is_keyword("CREATE") {
            StatementKind::Create
        } else if first.is_keyword("ALTER") {
            StatementKind::Alter
        } else {
            return Err(GuardRefusal::new(format!(
                "only CREATE TABLE and ALTER TABLE may run, not `{}`",
                describe(first)
            )));
        };
        match cursor.next() {
            Some(token) if token.is_keyword("TABLE") => Ok(kind),
            Some(token) => Err(GuardRefusal::new(format!(
                "only CREATE TABLE and ALTER TABLE may run, not `{} {}`",
                describe(first),
                describe(token)
            ))),
            None => Err(GuardRefusal::new("incomplete statement")),
        }
    }

    /// Reads `[database.]table` and checks both parts.
    fn target(&self, cursor: &mut Cursor<'_>) -> Result<String, GuardRefusal> {
        if cursor.peek().is_some_and(|t| t.is_keyword("IF")) {
            return Err(GuardRefusal::new(
                "IF [NOT] EXISTS is not allowed: the statement must change its shadow table",
            ));
        }
        let (database, table) = read_name(cursor)
            .ok_or_else(|| GuardRefusal::new("the target table name is missing"))?;
        if let Some(database) = database
            && database != self.database
        {
            return Err(GuardRefusal::new(format!(
                "the target is in database `{database}`; only `{}` may be changed",
                self.database
            )));
        }
        if !self.shadow_tables.contains(&table) {
            return Err(GuardRefusal::new(format!(
                "`{table}` is not one of this task's shadow tables"
            )));
        }
        Ok(table)
    }

    fn check_body(&self, kind: StatementKind, tokens: &[Token]) -> Result<(), GuardRefusal> {
        let mut depth: usize = 0;
        let mut cursor = Cursor {
            tokens,
            position: 0,
        };
        while let Some(token) = cursor.next() {
            match token {
                Token::Punct('(') => depth += 1,
                Token::Punct(')') => depth = depth.saturating_sub(1),
                Token::Word(word) => {
                    let upper = word.to_ascii_uppercase();
                    match upper.as_str() {
                        "RENAME" => return Err(GuardRefusal::new("RENAME is not allowed")),
                        "SELECT" => return Err(GuardRefusal::new("SELECT is not allowed")),
                        "TABLE" => {
                            return Err(GuardRefusal::new(
                                "a second table is named (… TABLE …) after the target",
                            ));
                        }
                        "UNION" => {
                            return Err(GuardRefusal::new(
                                "UNION= (MERGE tables) reaches other tables",
                            ));
                        }
                        "CONNECTION" => {
                            return Err(GuardRefusal::new(
                                "CONNECTION= reaches outside the database",
                            ));
                        }
                        "DIRECTORY" => {
                            return Err(GuardRefusal::new(
                                "DATA DIRECTORY / INDEX DIRECTORY reach outside the database",
                            ));
                        }
                        "AS" if kind == StatementKind::Create && depth == 0 => {
                            return Err(GuardRefusal::new(
                                "CREATE TABLE … AS copies another query's result",
                            ));
                        }
                        // The renderer never moves partitions between tables; refusing the
                        // keywords themselves does not lean on the server requiring `TABLE`
                        // after them (`EXCHANGE PARTITION p WITH t` is one typo from working).
                        "EXCHANGE" => {
                            return Err(GuardRefusal::new(
                                "EXCHANGE PARTITION moves rows between tables",
                            ));
                        }
                        "CONVERT"
                            if cursor.peek().is_some_and(|t| {
                                t.is_keyword("PARTITION") || t.is_keyword("TABLE")
                            }) =>
                        {
                            return Err(GuardRefusal::new(
                                "CONVERT PARTITION / CONVERT TABLE moves rows between tables",
                            ));
                        }
                        "NEXTVAL" | "LASTVAL" | "SETVAL" => {
                            return Err(sequence_refusal());
                        }
                        "NEXT" | "PREVIOUS"
                            if cursor.peek().is_some_and(|t| t.is_keyword("VALUE")) =>
                        {
                            return Err(sequence_refusal());
                        }
                        "ENGINE" => self.check_engine(&mut cursor)?,
                        "REFERENCES" => self.check_reference(&mut cursor)?,
                        _ => {}
                    }
                }
                _ => {}
            }
        }
        Ok(())
    }

    fn check_engine(&self, cursor: &mut Cursor<'_>) -> Result<(), GuardRefusal> {
        if cursor.peek() == Some(&Token::Punct('=')) {
            cursor.next();
        }
        let engine = match cursor.next() {
            Some(Token::Word(name) | Token::QuotedIdentifier(name) | Token::String(name)) => name,
            _ => return Err(GuardRefusal::new("ENGINE without an engine name")),
        };
        if LOCAL_ENGINES
            .iter()
            .any(|local| local.eq_ignore_ascii_case(engine))
        {
            Ok(())
        } else {
            Err(GuardRefusal::new(format!(
                "ENGINE={engine} is not a local engine and may reach outside the database"
            )))
        }
    }

    fn check_reference(&self, cursor: &mut Cursor<'_>) -> Result<(), GuardRefusal> {
        let (database, table) = read_name(cursor)
            .ok_or_else(|| GuardRefusal::new("REFERENCES without a table name"))?;
        if let Some(database) = database
            && database != self.database
        {
            return Err(GuardRefusal::new(format!(
                "a foreign key references database `{database}`; only `{}` may be referenced",
                self.database
            )));
        }
        if self.is_shadow(&table) {
            Ok(())
        } else {
            Err(GuardRefusal::new(format!(
                "a foreign key references `{table}`, which is not a shadow table: a shadow never references production"
            )))
        }
    }

    /// One of the task's shadows, or a name the naming rule makes a shadow's (compared exactly:
    /// a name spelt in another case is refused, the safe side).
    fn is_shadow(&self, table: &str) -> bool {
        self.shadow_tables.contains(table)
            || self
                .naming
                .as_ref()
                .is_some_and(|naming| naming.source_of(table, str::to_owned).is_some())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StatementKind {
    Create,
    Alter,
}

struct Cursor<'a> {
    tokens: &'a [Token],
    position: usize,
}

impl<'a> Cursor<'a> {
    fn peek(&self) -> Option<&'a Token> {
        self.tokens.get(self.position)
    }

    fn next(&mut self) -> Option<&'a Token> {
        let token = self.tokens.get(self.position)?;
        self.position += 1;
        Some(token)
    }
}

/// `name` or `database.name`, bare or backtick-quoted.
fn read_name(cursor: &mut Cursor<'_>) -> Option<(Option<String>, String)> {
    let first = cursor.next()?.identifier()?.to_owned();
    if cursor.peek() == Some(&Token::Punct('.')) {
        cursor.next();
        let second = cursor.next()?.identifier()?.to_owned();
        return Some((Some(first), second));
    }
    Some((None, first))
}

fn sequence_refusal() -> GuardRefusal {
    GuardRefusal::new("a sequence is used: a shadow must not advance or read a production sequence")
}

fn describe(token: &Token) -> String {
    match token {
        Token::Word(word) => word.to_ascii_uppercase(),
        Token::QuotedIdentifier(name) => format!("`{name}`"),
        Token::String(_) => "a string".into(),
        Token::Number(number) => number.clone(),
        Token::Semicolon => ";".into(),
        Token::Punct(c) => c.to_string(),
    }
}

#[cfg(test)]
mod tests;
