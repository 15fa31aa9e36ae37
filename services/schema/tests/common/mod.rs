//! Shared helpers for the tests against the real MariaDB (127.0.0.1:3306, root, no password).
//! Every test works in its own `ss_schema_<random>` database ([`MariaDb`]), dropped at the end,
//! also when the test panics.

#![allow(dead_code)]
// Test support: a failed set-up step should fail the test loudly.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;

use shadowsync_common::testing::MariaDb;
use shadowsync_schema::{
    AnalysisRequest, Catalog, IntrospectOptions, IntrospectStats, Introspector, Plan, ShadowNaming,
    SyncRange, SyncResult, fingerprint::canonical, normalize,
};
use sqlx::mysql::MySqlConnectOptions;
use sqlx::{AssertSqlSafe, Executor as _};

pub const URL: &str = "mysql://root@127.0.0.1:3306";

/// A database of its own ([`MariaDb`], dropped when the test ends, even by a panic), with the
/// schema engine's view of it.
pub struct TestDb {
    db: MariaDb,
}

impl std::ops::Deref for TestDb {
    type Target = MariaDb;

    fn deref(&self) -> &MariaDb {
        &self.db
    }
}

impl TestDb {
    pub async fn new() -> Self {
        Self {
            db: MariaDb::create("ss_schema").await,
        }
    }

    pub fn introspector(&self, options: IntrospectOptions) -> Introspector {
        let connect: MySqlConnectOptions = URL.parse().unwrap();
        Introspector::connect_lazy(connect, options)
    }

    pub async fn catalog(
        &self,
        range: &SyncRange,
        naming: &ShadowNaming,
    ) -> (Catalog, IntrospectStats) {
        self.introspector(IntrospectOptions::default())
            .introspect(&self.name, range, naming, &mut |_, _| {})
            .await
            .unwrap()
    }

    pub async fn plan(&self, range: SyncRange, naming: &ShadowNaming, skipped: &[&str]) -> Plan {
        let (catalog, _) = self.catalog(&range, naming).await;
        shadowsync_schema::plan(
            &catalog,
            &AnalysisRequest {
                range,
                naming: naming.clone(),
                skipped: skipped
                    .iter()
                    .map(|s| (*s).to_owned())
                    .collect::<BTreeSet<_>>(),
            },
        )
        .unwrap()
    }

    /// Column `column` of the first row `sql` returns, as text (`""` for NULL).
    pub async fn query_string(&self, sql: &str, column: usize) -> String {
        use sqlx::Row as _;
        let row = sqlx::query(AssertSqlSafe(sql.to_owned()))
            .fetch_one(&self.pool)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
        row.try_get::<Option<String>, _>(column)
            .ok()
            .flatten()
            .or_else(|| {
                row.try_get::<Option<Vec<u8>>, _>(column)
                    .ok()
                    .flatten()
                    .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
            })
            .unwrap_or_default()
    }

    /// Applies the plan's script statement by statement, with foreign_key_checks on.
    pub async fn apply(&self, plan: &Plan) {
        let mut conn = self.pool.acquire().await.unwrap();
        conn.execute("SET SESSION foreign_key_checks = 1")
            .await
            .unwrap();
        for (table, statement) in plan.statements() {
            conn.execute(AssertSqlSafe(statement.sql.clone()))
                .await
                .unwrap_or_else(|e| {
                    panic!(
                        "table {}: {e}\nwhile running:\n{}",
                        table.source, statement.sql
                    )
                });
        }
    }

    /// Asserts every shadow's normalized model equals its source's modulo what is not
    /// structure: the name, FK and CHECK names, index listing order, FK targets that are the
    /// shadows of the referenced sources.
    pub async fn assert_shadows_match(&self, naming: &ShadowNaming) {
        let (catalog, _) = self.catalog(&SyncRange::All, naming).await;
        let sources = catalog.resolve_sources(&SyncRange::All, naming).unwrap();
        for source in sources {
            let Some(shadow_name) = naming.shadow_name(&source).ok() else {
                continue;
            };
            let (Some(src), Some(shadow)) = (catalog.table(&source), catalog.table(&shadow_name))
            else {
                continue;
            };
            let src = normalize(src.model.as_ref().unwrap(), &catalog.server);
            let mut shadow = normalize(shadow.model.as_ref().unwrap(), &catalog.server);
            for fk in &mut shadow.foreign_keys {
                if let Some(parent) = naming.source_of(&fk.referenced_table, str::to_owned)
                    && catalog.has_base_table(&parent)
                {
                    fk.referenced_table = parent;
                }
            }
            assert_eq!(
                server_text(&catalog.table(&source).unwrap().ddl, naming, &catalog),
                server_text(&catalog.table(&shadow_name).unwrap().ddl, naming, &catalog),
                "shadow {shadow_name} reads back differently from {source}"
            );
            assert_eq!(
                canonical(&src),
                canonical(&shadow),
                "shadow {shadow_name} differs from {source}:\n{}\n---\n{}",
                catalog.table(&source).unwrap().ddl,
                catalog.table(&shadow_name).unwrap().ddl
            );
        }
    }
}

/// Results by source name.
pub fn results(plan: &Plan) -> Vec<(String, SyncResult)> {
    plan.tables
        .iter()
        .map(|t| (t.source.clone(), t.result))
        .collect()
}

/// Asserts every table of the plan is NO_ACTION with no statements.
pub fn assert_all_no_action(plan: &Plan) {
    for table in &plan.tables {
        assert_eq!(
            table.result,
            SyncResult::NoAction,
            "{} is {:?} ({:?}):\n{}\n--- shadow:\n{}\n--- statements:\n{:#?}",
            table.source,
            table.result,
            table.reason,
            table.source_ddl.as_deref().unwrap_or(""),
            table.shadow_ddl.as_deref().unwrap_or(""),
            table.statements
        );
        assert!(table.statements.is_empty());
    }
    assert!(plan.order.is_empty());
}

/// The server's own `SHOW CREATE TABLE` text reduced to structure without the engine's parser
/// or normalizer (an oracle independent of both): the table name, the `AUTO_INCREMENT`
/// counter and FK/CHECK names dropped, FK targets that are shadows of existing tables read as
/// those tables, and secondary keys, foreign keys and checks sorted (their listing order
/// follows a table's history).
pub fn server_text(ddl: &str, naming: &ShadowNaming, catalog: &Catalog) -> Vec<String> {
    let mut head = Vec::new();
    let mut keys = Vec::new();
    let mut constraints = Vec::new();
    let mut tail = Vec::new();
    let mut lines = ddl.lines();
    if lines.next().is_some() {
        head.push("CREATE TABLE (".to_owned());
    }
    for line in lines {
        let trimmed = line.trim().trim_end_matches(',').to_owned();
        if trimmed.starts_with(')') {
            let options: Vec<&str> = trimmed
                .split(' ')
                .filter(|word| !word.starts_with("AUTO_INCREMENT="))
                .collect();
            tail.push(options.join(" "));
        } else if tail.is_empty()
            && ["KEY ", "UNIQUE KEY ", "FULLTEXT KEY ", "SPATIAL KEY "]
                .iter()
                .any(|kind| trimmed.starts_with(kind))
        {
            keys.push(trimmed);
        } else if tail.is_empty() && trimmed.starts_with("CONSTRAINT `") {
            // `CONSTRAINT `name` FOREIGN KEY ...` / `CHECK (...)`: drop the name.
            let rest = trimmed["CONSTRAINT `".len()..]
                .split_once("` ")
                .map_or(trimmed.clone(), |(_, rest)| rest.to_owned());
            let rest = match rest.split_once("REFERENCES `") {
                Some((before, after)) => {
                    let (parent, after) = after.split_once('`').unwrap_or((after, ""));
                    let parent = naming
                        .source_of(parent, str::to_owned)
                        .filter(|source| catalog.has_base_table(source))
                        .unwrap_or_else(|| parent.to_owned());
                    format!("{before}REFERENCES `{parent}`{after}")
                }
                None => rest,
            };
            constraints.push(rest);
        } else if tail.is_empty() {
            head.push(trimmed);
        } else {
            tail.push(trimmed);
        }
    }
    keys.sort();
    constraints.sort();
    head.into_iter()
        .chain(keys)
        .chain(constraints)
        .chain(tail)
        .collect()
}
