//! Test support: a throw-away MariaDB database per test (127.0.0.1:3306, root, no password),
//! plans made by the schema engine from real tables, and the task-service test double.

#![allow(clippy::unwrap_used, clippy::expect_used)]

pub mod task_service_double;

use std::collections::BTreeSet;

use shadowsync_common::secret::Secret;
use shadowsync_common::testing::MariaDb;
use shadowsync_proto::task::v1::TableExecutionStatus;
use shadowsync_schema::{
    AnalysisRequest, IntrospectOptions, Introspector, ShadowNaming, SyncRange,
};

use crate::backend::{DatabaseTarget, PlanStatement, PlanTable};

pub const URL: &str = "mysql://root@127.0.0.1:3306";

/// A database of its own ([`MariaDb`]: dropped by [`TestDb::drop_database`], or on `Drop` as a
/// fallback), with the executor's view of it.
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
            db: MariaDb::create("ss_executor").await,
        }
    }

    pub fn target(&self) -> DatabaseTarget {
        DatabaseTarget {
            host: "127.0.0.1".into(),
            port: 3306,
            username: "root".into(),
            password: Secret::new(String::new()),
            database: self.name.clone(),
            options: [("connect-timeout".to_owned(), "5s".to_owned())].into(),
        }
    }

    pub fn introspector(&self) -> Introspector {
        Introspector::connect_lazy(URL.parse().unwrap(), IntrospectOptions::default())
    }

    /// The schema engine's plan for every table, as the task service hands it to executors.
    pub async fn plan(&self) -> Vec<PlanTable> {
        let naming = ShadowNaming::default();
        let (catalog, _) = self
            .introspector()
            .introspect(&self.name, &SyncRange::All, &naming, &mut |_, _| {})
            .await
            .unwrap();
        let request = AnalysisRequest {
            range: SyncRange::All,
            naming,
            skipped: BTreeSet::new(),
        };
        let plan = shadowsync_schema::plan(&catalog, &request).unwrap();
        let mut script_index = std::collections::BTreeMap::new();
        for (position, reference) in plan.order.iter().enumerate() {
            script_index.insert((reference.table, reference.statement), position as u32);
        }
        let mut tables: Vec<(u32, PlanTable)> = plan
            .tables
            .iter()
            .enumerate()
            .filter(|(_, t)| t.result.needs_sync())
            .map(|(t, table)| {
                let statements: Vec<PlanStatement> = table
                    .statements
                    .iter()
                    .enumerate()
                    .map(|(s, statement)| PlanStatement {
                        index: s as u32,
                        sql: statement.sql.clone(),
                        expected_fingerprint_after: statement.expected_fingerprint_after.clone(),
                        script_index: script_index[&(t, s)],
                    })
                    .collect();
                let first = statements.first().map_or(u32::MAX, |s| s.script_index);
                (
                    first,
                    PlanTable {
                        ordinal: 0,
                        source: table.source.clone(),
                        shadow: table.shadow.clone().unwrap_or_default(),
                        source_fingerprint: table.source_fingerprint.clone().unwrap_or_default(),
                        shadow_fingerprint: table.shadow_fingerprint.clone().unwrap_or_default(),
                        target_fingerprint: table.target_fingerprint.clone().unwrap_or_default(),
                        statements,
                        depends_on: table.depends_on.clone(),
                        recorded_status: TableExecutionStatus::Pending,
                    },
                )
            })
            .collect();
        tables.sort_by_key(|(first, table)| (*first, table.source.clone()));
        tables
            .into_iter()
            .enumerate()
            .map(|(ordinal, (_, mut table))| {
                table.ordinal = ordinal as u32;
                table
            })
            .collect()
    }

    /// Current fingerprints of `names`.
    pub async fn fingerprint(&self, name: &str) -> Option<String> {
        self.introspector()
            .fingerprints(&self.name, &[name.to_owned()])
            .await
            .unwrap()
            .remove(name)
            .flatten()
    }

    pub async fn drop_database(self) {
        self.db.drop_database().await;
    }
}
