//! Lanes: the tables still to run, split into groups no foreign key links, and the loop that
//! runs one lane's tables in script order on its own connection.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::Ordering;
use std::sync::{Mutex, MutexGuard, PoisonError};

use shadowsync_proto::task::v1::{ErrorStrategy, TableExecutionStatus};
use shadowsync_schema::TableObservation;

use super::{Run, Stop, TableRun, TableState, TargetDatabase};
use crate::lease::LeaseCheck;

/// Splits `tables` into lanes. With `parallelism` 1 (or fewer than two tables) everything is
/// one lane. Otherwise tables linked by the plan's `depends_on` or by a key one shadow holds on
/// another (`observed`) share a lane; lanes come in the order of their first statement.
pub(super) fn split(
    tables: Vec<TableRun>,
    observed: &BTreeMap<String, TableObservation>,
    parallelism: usize,
) -> Vec<Vec<TableRun>> {
    if tables.is_empty() {
        return Vec::new();
    }
    if parallelism <= 1 || tables.len() == 1 {
        return vec![tables];
    }
    let by_source: HashMap<&str, usize> = tables
        .iter()
        .enumerate()
        .map(|(i, table)| (table.plan.source.as_str(), i))
        .collect();
    let by_shadow: HashMap<&str, usize> = tables
        .iter()
        .enumerate()
        .map(|(i, table)| (table.plan.shadow.as_str(), i))
        .collect();
    let mut groups = UnionFind::new(tables.len());
    for (i, table) in tables.iter().enumerate() {
        for parent in &table.plan.depends_on {
            if let Some(&j) = by_source.get(parent.as_str()) {
                groups.join(i, j);
            }
        }
        let held = observed
            .get(&table.plan.shadow)
            .map(|observation| observation.references.as_slice())
            .unwrap_or_default();
        for parent in held {
            if let Some(&j) = by_shadow.get(parent.as_str()) {
                groups.join(i, j);
            }
        }
    }
    let mut lanes: BTreeMap<usize, Vec<TableRun>> = BTreeMap::new();
    for (i, table) in tables.into_iter().enumerate() {
        lanes.entry(groups.root(i)).or_default().push(table);
    }
    let mut lanes: Vec<Vec<TableRun>> = lanes.into_values().collect();
    lanes.sort_by_key(|lane| lane.iter().map(first_statement).min());
    lanes
}

/// Where a table comes in script order (tables without statements last).
fn first_statement(table: &TableRun) -> (u32, u32) {
    let first = table
        .plan
        .statements
        .iter()
        .map(|statement| statement.script_index)
        .min()
        .unwrap_or(u32::MAX);
    (first, table.plan.ordinal)
}

struct UnionFind {
    parent: Vec<usize>,
}

impl UnionFind {
    fn new(size: usize) -> Self {
        Self {
            parent: (0..size).collect(),
        }
    }

    fn root(&mut self, mut i: usize) -> usize {
        while self.parent[i] != i {
            self.parent[i] = self.parent[self.parent[i]];
            i = self.parent[i];
        }
        i
    }

    fn join(&mut self, a: usize, b: usize) {
        let (a, b) = (self.root(a), self.root(b));
        // The smaller index stays the root, so a lane is keyed by its first table in plan order.
        if a < b {
            self.parent[b] = a;
        } else {
            self.parent[a] = b;
        }
    }
}

/// Lanes waiting for a connection, and tables whose lane has run.
struct Board {
    waiting: Mutex<VecDeque<Vec<TableRun>>>,
    done: Mutex<Vec<TableRun>>,
}

fn locked<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// One connection working through lanes.
pub(super) struct Lane<'r> {
    pub(super) run: &'r Run,
    pub(super) database: TargetDatabase,
    pub(super) observed: &'r BTreeMap<String, TableObservation>,
}

impl Run {
    /// Runs `lanes` on at most `table_parallelism` connections (`first` and as many more as
    /// can be opened); returns every table, whatever happened, and the first reason to stop.
    pub(super) async fn run_lanes(
        &self,
        first: TargetDatabase,
        lanes: Vec<Vec<TableRun>>,
        observed: &BTreeMap<String, TableObservation>,
    ) -> (Vec<TableRun>, Result<(), Stop>) {
        let wanted = self.context.table_parallelism.clamp(1, lanes.len().max(1));
        let mut sessions = Vec::with_capacity(wanted);
        for _ in 1..wanted {
            match first.open_session().await {
                Ok(session) => sessions.push(session),
                Err(message) => {
                    self.log.warn(
                        "",
                        format!(
                            "running {} lanes at once instead of {wanted}: {message}",
                            sessions.len() + 1
                        ),
                    );
                    break;
                }
            }
        }
        sessions.insert(0, first);
        if sessions.len() > 1 {
            self.log.info(
                "",
                format!(
                    "{} independent lanes of tables, {} at once",
                    lanes.len(),
                    sessions.len()
                ),
            );
        }
        let board = Board {
            waiting: Mutex::new(lanes.into()),
            done: Mutex::new(Vec::new()),
        };
        let results = futures::future::join_all(sessions.into_iter().map(|database| {
            let lane = Lane {
                run: self,
                database,
                observed,
            };
            lane.work(&board)
        }))
        .await;
        let mut tables = board
            .done
            .into_inner()
            .unwrap_or_else(PoisonError::into_inner);
        tables.extend(
            board
                .waiting
                .into_inner()
                .unwrap_or_else(PoisonError::into_inner)
                .into_iter()
                .flatten(),
        );
        // The reason that matters most: a lost lease forbids any further call; an interruption
        // and a shutdown both leave the task to the lease's lapse.
        let stop = results
            .into_iter()
            .filter_map(Result::err)
            .min_by_key(|stop| match stop {
                Stop::LeaseLost => 0,
                Stop::Interrupted(_) => 1,
                Stop::HandedBack => 2,
                Stop::Halted => 3,
            });
        (tables, stop.map_or(Ok(()), Err))
    }
}

impl Lane<'_> {
    /// Takes lanes until none is left or the run stops; closes the connection at the end.
    async fn work(mut self, board: &Board) -> Result<(), Stop> {
        let mut result = Ok(());
        loop {
            let Some(mut tables) = locked(&board.waiting).pop_front() else {
                break;
            };
            result = self.run_tables(&mut tables).await;
            locked(&board.done).extend(tables);
            if result.is_err() {
                self.run.halt.cancel();
                break;
            }
        }
        self.database.close().await;
        result
    }

    /// Runs one lane's tables: statements in global script order, then the tables without
    /// statements.
    async fn run_tables(&mut self, tables: &mut [TableRun]) -> Result<(), Stop> {
        let run = self.run;
        let mut order: Vec<(u32, usize, usize)> = Vec::new();
        for (t, table) in tables.iter().enumerate() {
            if table.state == TableState::Waiting {
                for (s, statement) in table.plan.statements.iter().enumerate() {
                    order.push((statement.script_index, t, s));
                }
            }
        }
        order.sort_unstable();
        let without_statements: Vec<usize> = (0..tables.len())
            .filter(|&t| {
                tables[t].state == TableState::Waiting && tables[t].plan.statements.is_empty()
            })
            .collect();
        let work = order
            .into_iter()
            .map(|(_, t, s)| (t, Some(s)))
            .chain(without_statements.into_iter().map(|t| (t, None)));
        for (t, statement) in work {
            if run.failed_under_abort.load(Ordering::SeqCst) {
                break;
            }
            let table = &mut tables[t];
            if matches!(table.state, TableState::Final(_)) {
                continue;
            }
            match run.checkpoint()? {
                LeaseCheck::AbortRequested => {
                    run.cancelled.store(true, Ordering::SeqCst);
                    break;
                }
                LeaseCheck::Lost => return Err(Stop::LeaseLost),
                LeaseCheck::Valid => {}
            }
            if table.state == TableState::Waiting {
                self.start_table(table).await?;
                if table.state == TableState::Final(TableExecutionStatus::Failed) {
                    self.failed();
                    continue;
                }
                if matches!(table.state, TableState::Final(_)) {
                    continue;
                }
            }
            let Some(statement) = statement else { continue };
            if statement < table.next {
                continue;
            }
            if !self.run_statement(table, statement).await? {
                self.failed();
                continue;
            }
            if table.next >= table.plan.statements.len() {
                self.finish_table(table).await?;
            }
        }
        Ok(())
    }

    /// A table failed: under ABORT every lane stops before its next statement.
    fn failed(&self) {
        if self.run.strategy == ErrorStrategy::Abort {
            self.run.failed_under_abort.store(true, Ordering::SeqCst);
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::backend::{PlanStatement, PlanTable};

    fn table(ordinal: u32, source: &str, first: Option<u32>, depends_on: &[&str]) -> TableRun {
        TableRun {
            plan: PlanTable {
                ordinal,
                source: source.into(),
                shadow: format!("_s_{source}"),
                source_fingerprint: String::new(),
                shadow_fingerprint: String::new(),
                target_fingerprint: String::new(),
                statements: first
                    .into_iter()
                    .map(|script_index| PlanStatement {
                        index: 0,
                        script_index,
                        sql: String::new(),
                        expected_fingerprint_after: String::new(),
                    })
                    .collect(),
                depends_on: depends_on.iter().map(|d| (*d).to_owned()).collect(),
                recorded_status: TableExecutionStatus::Pending,
            },
            state: TableState::Waiting,
            next: 0,
            start_time: None,
            span: tracing::Span::none(),
        }
    }

    fn names(lanes: &[Vec<TableRun>]) -> Vec<Vec<&str>> {
        lanes
            .iter()
            .map(|lane| lane.iter().map(|t| t.plan.source.as_str()).collect())
            .collect()
    }

    fn plan() -> Vec<TableRun> {
        vec![
            table(0, "customers", Some(0), &[]),
            table(1, "orders", Some(3), &["customers"]),
            table(2, "audit", Some(1), &[]),
            table(3, "notes", None, &[]),
            table(4, "items", Some(2), &["orders"]),
            table(5, "tags", Some(4), &[]),
        ]
    }

    #[test]
    fn one_lane_unless_parallelism_is_asked_for() {
        let lanes = split(plan(), &BTreeMap::new(), 1);
        assert_eq!(lanes.len(), 1);
        assert_eq!(lanes[0].len(), 6);
        assert!(split(Vec::new(), &BTreeMap::new(), 4).is_empty());
    }

    #[test]
    fn planned_keys_chain_tables_into_one_lane_in_script_order() {
        let lanes = split(plan(), &BTreeMap::new(), 4);
        assert_eq!(
            names(&lanes),
            [
                vec!["customers", "orders", "items"],
                vec!["audit"],
                vec!["tags"],
                vec!["notes"],
            ]
        );
    }

    #[test]
    fn keys_the_shadows_hold_now_link_tables_too() {
        // The plan drops `tags`' key on the audit shadow before `audit` changes: not in
        // `depends_on`, but the two must not run in parallel.
        let observed = BTreeMap::from([(
            "_s_tags".to_owned(),
            TableObservation {
                fingerprint: None,
                references: vec!["_s_audit".into(), "_s_elsewhere".into()],
            },
        )]);
        let lanes = split(plan(), &observed, 4);
        assert_eq!(
            names(&lanes),
            [
                vec!["customers", "orders", "items"],
                vec!["audit", "tags"],
                vec!["notes"],
            ]
        );
    }
}
