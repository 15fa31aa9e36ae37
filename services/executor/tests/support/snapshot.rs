//! What an attack could change, read before and after a statement, and the judgement of the
//! difference (see [`Scratch::snapshot`] and [`Scratch::violations`]).

use std::collections::{BTreeMap, BTreeSet};

use super::{Scratch, literal, quoted, rows};

/// Everything an attack could change, as `key → value`.
pub type Snapshot = BTreeMap<String, String>;

impl Scratch {
    /// Everything an attack could change: every table of both canary databases (definition,
    /// rows, checksum; a sequence's next value), their triggers, routines and events, the
    /// list of databases, users and grants, a few global variables, and the executor-like
    /// session's own state (`sql_mode`, `foreign_key_checks`, current database).
    pub async fn snapshot(&mut self) -> Snapshot {
        let mut snapshot = Snapshot::new();
        let schemas = format!("{}, {}", literal(&self.database), literal(&self.other));
        for schema in [self.database.clone(), self.other.clone()] {
            let tables = rows(
                &mut self.admin,
                &format!(
                    "SELECT TABLE_NAME, TABLE_TYPE FROM information_schema.TABLES WHERE TABLE_SCHEMA = {} ORDER BY TABLE_NAME",
                    literal(&schema)
                ),
            )
            .await;
            for table in tables {
                let (name, kind) = (&table[0], &table[1]);
                let key = format!("table {schema}.{name}");
                let full = format!("{}.{}", quoted(&schema), quoted(name));
                let ddl = rows(&mut self.admin, &format!("SHOW CREATE TABLE {full}")).await;
                snapshot.insert(format!("{key} kind"), kind.clone());
                snapshot.insert(format!("{key} ddl"), ddl[0][1].clone());
                let content = if kind == "SEQUENCE" {
                    format!("SELECT CONCAT_WS(',', next_not_cached_value, cycle_count) FROM {full}")
                } else {
                    format!(
                        "SELECT CONCAT(COUNT(*), ' rows, ', COALESCE(BIT_XOR(CRC32(CONCAT_WS('|', {}))), 0)) FROM {full}",
                        self.columns(&schema, name).await
                    )
                };
                let content = rows(&mut self.admin, &content).await;
                snapshot.insert(format!("{key} content"), content[0][0].clone());
            }
        }
        for (label, sql) in [
            ("trigger", format!("SELECT CONCAT(TRIGGER_SCHEMA, '.', TRIGGER_NAME), ACTION_STATEMENT FROM information_schema.TRIGGERS WHERE EVENT_OBJECT_SCHEMA IN ({schemas}) OR TRIGGER_SCHEMA IN ({schemas})")),
            ("routine", format!("SELECT CONCAT(ROUTINE_SCHEMA, '.', ROUTINE_NAME), ROUTINE_DEFINITION FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA IN ({schemas})")),
            ("event", format!("SELECT CONCAT(EVENT_SCHEMA, '.', EVENT_NAME), EVENT_DEFINITION FROM information_schema.EVENTS WHERE EVENT_SCHEMA IN ({schemas})")),
            ("database", "SELECT SCHEMA_NAME, DEFAULT_CHARACTER_SET_NAME FROM information_schema.SCHEMATA".into()),
            ("user", "SELECT CONCAT(User, '@', Host), Priv FROM mysql.global_priv".into()),
            ("db grant", "SELECT CONCAT(User, '@', Host, ' on ', Db), CONCAT_WS(',', Select_priv, Insert_priv, Update_priv, Delete_priv, Create_priv, Drop_priv, Grant_priv, Alter_priv) FROM mysql.db".into()),
            ("table grant", "SELECT CONCAT(User, '@', Host, ' on ', Db, '.', Table_name), CAST(Table_priv AS CHAR) FROM mysql.tables_priv".into()),
            ("global", "SELECT 'read_only, event_scheduler, general_log, sql_mode', CONCAT_WS(' | ', @@global.read_only, @@global.event_scheduler, @@global.general_log, @@global.sql_mode)".into()),
        ] {
            for row in rows(&mut self.admin, &sql).await {
                snapshot.insert(format!("{label} {}", row[0]), row[1].clone());
            }
        }
        let session = rows(
            &mut self.session,
            "SELECT CONCAT_WS(' | ', @@session.sql_mode, @@session.foreign_key_checks, DATABASE(), @@session.autocommit)",
        )
        .await;
        snapshot.insert("session state".into(), session[0][0].clone());
        snapshot
    }

    async fn columns(&mut self, schema: &str, table: &str) -> String {
        let columns = rows(
            &mut self.admin,
            &format!(
                "SELECT COLUMN_NAME FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = {} AND TABLE_NAME = {} ORDER BY ORDINAL_POSITION",
                literal(schema),
                literal(table)
            ),
        )
        .await;
        let quoted: Vec<String> = columns.iter().map(|c| quoted(&c[0])).collect();
        if quoted.is_empty() {
            "''".into()
        } else {
            quoted.join(", ")
        }
    }

    /// What changed between `before` and `after` outside `allowed` (shadow tables of the
    /// task's database), plus every way the allowed shadows now reach production: a foreign
    /// key to a table that is not an allowed shadow, or a sequence function in a definition.
    ///
    /// Databases and users that other test suites create and drop on the shared server while
    /// this runs are not ours to judge: a database or user counts only when it is one of ours
    /// or `statement` names it (a statement can only create or drop what it names).
    pub async fn violations(
        &mut self,
        before: &Snapshot,
        after: &Snapshot,
        allowed: &[&str],
        statement: &str,
    ) -> Vec<String> {
        let ours = |key: &str| {
            allowed
                .iter()
                .any(|shadow| key.starts_with(&format!("table {}.{shadow} ", self.database)))
        };
        let lower = statement.to_lowercase();
        let named = |name: &str| lower.contains(&name.to_lowercase());
        let judged = |key: &str| -> bool {
            if let Some(database) = key.strip_prefix("database ") {
                return database.starts_with(&self.database) || named(database);
            }
            let account = ["user ", "db grant ", "table grant "]
                .iter()
                .find_map(|label| key.strip_prefix(label));
            match account {
                Some(account) => {
                    let user = account.split('@').next().unwrap_or(account);
                    user == "root" || user.starts_with(&self.user) || named(user)
                }
                None => true,
            }
        };
        let keys: BTreeSet<&String> = before.keys().chain(after.keys()).collect();
        let mut violations: Vec<String> = keys
            .into_iter()
            .filter(|key| !ours(key) && judged(key) && before.get(*key) != after.get(*key))
            .map(|key| {
                format!(
                    "{key}: {:?} -> {:?}",
                    before.get(key).map(String::as_str).unwrap_or("<absent>"),
                    after.get(key).map(String::as_str).unwrap_or("<absent>")
                )
            })
            .collect();
        violations.extend(self.references_outside(allowed).await);
        violations
    }

    /// Foreign keys and sequence functions by which an allowed shadow reaches production.
    async fn references_outside(&mut self, allowed: &[&str]) -> Vec<String> {
        let mut found = Vec::new();
        let references = rows(
            &mut self.admin,
            &format!(
                "SELECT TABLE_NAME, CONSTRAINT_NAME, UNIQUE_CONSTRAINT_SCHEMA, REFERENCED_TABLE_NAME FROM information_schema.REFERENTIAL_CONSTRAINTS WHERE CONSTRAINT_SCHEMA = {}",
                literal(&self.database)
            ),
        )
        .await;
        for reference in references {
            let (table, name, schema, parent) =
                (&reference[0], &reference[1], &reference[2], &reference[3]);
            // A parent is a shadow when the task changes it or the naming rule names it one.
            let shadow_parent =
                allowed.contains(&parent.as_str()) || parent.starts_with(super::PREFIX);
            if allowed.contains(&table.as_str()) && (schema != &self.database || !shadow_parent) {
                found.push(format!(
                    "shadow {table}'s foreign key {name} references production {schema}.{parent}"
                ));
            }
        }
        // Expressions only (defaults, generated columns, checks): a comment or a column
        // named `nextval` is not a call.
        let names: Vec<String> = allowed.iter().map(|name| literal(name)).collect();
        let expressions = rows(
            &mut self.admin,
            &format!(
                "SELECT TABLE_NAME, COALESCE(COLUMN_DEFAULT, ''), GENERATION_EXPRESSION FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = {db} AND TABLE_NAME IN ({names}) \
                 UNION ALL SELECT TABLE_NAME, CHECK_CLAUSE, '' FROM information_schema.CHECK_CONSTRAINTS WHERE CONSTRAINT_SCHEMA = {db} AND TABLE_NAME IN ({names})",
                db = literal(&self.database),
                names = names.join(", "),
            ),
        )
        .await;
        for expression in expressions {
            let text =
                without_quoted(&format!("{} {}", expression[1], expression[2])).to_lowercase();
            for function in [
                "nextval",
                "lastval",
                "setval",
                "next value for",
                "previous value for",
            ] {
                if text.contains(function) {
                    found.push(format!(
                        "shadow {}'s definition calls `{function}`: {}",
                        expression[0],
                        text.trim()
                    ));
                }
            }
        }
        found
    }
}

/// `expression` with its string literals and quoted names blanked out, so that only code
/// remains (`'nextval(s)'` is text, `nextval(s)` a call).
fn without_quoted(expression: &str) -> String {
    let mut code = String::new();
    let mut chars = expression.chars().peekable();
    while let Some(c) = chars.next() {
        if !matches!(c, '\'' | '"' | '`') {
            code.push(c);
            continue;
        }
        code.push(' ');
        while let Some(inner) = chars.next() {
            if inner == '\\' && c != '`' {
                chars.next();
            } else if inner == c {
                if chars.peek() == Some(&c) {
                    chars.next();
                } else {
                    break;
                }
            }
        }
    }
    code
}
