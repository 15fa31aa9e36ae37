//! Seeded generated schemas on the real MariaDB, with foreign-key checks on: per seed, source
//! tables (random columns, defaults, comments, indexes, foreign keys with every referential
//! rule, named or not, with or without a declared index, CHECKs, RANGE partitions) whose
//! shadows are missing, identical or mutated, plus orphan shadows. Each case must converge in
//! one run: the plan applied, every shadow reads back as its source (by the server's text and
//! by the model), the fingerprints promised are reached, a second analysis is all NO_ACTION,
//! and orphans are listed and untouched.
//!
//! A case is one source table. CI runs [`seeded_slice`] (4 seeds, 240 cases, about half a
//! minute); [`seeded_full`] runs 1,200 cases over 20 seeds:
//! `cargo test -p shadowsync-schema --test seeded -- --ignored`.

// A missing table or row is a failed test: say so loudly.
#![allow(clippy::unwrap_used)]

#[path = "../common/mod.rs"]
mod common;
mod schema;

use common::*;
use schema::{Generator, render};
use shadowsync_schema::{ShadowNaming, SyncRange, SyncResult};

const TABLES_PER_SEED: usize = 60;
const PARENTS: usize = 3;
const ORPHANS: usize = 2;

/// Runs one seed and returns the number of cases (source tables) it checked.
async fn run_seed(seed: u64) -> usize {
    let db = TestDb::new().await;
    let naming = ShadowNaming::default();
    let shadow = |name: &str| naming.shadow_name(name).unwrap();
    let affixed = |name: &str| naming.apply(name);
    let mut generator = Generator::new(seed, PARENTS);
    let mut setup = Vec::new();
    for k in 0..PARENTS {
        for name in [format!("par{k}"), shadow(&format!("par{k}"))] {
            setup.push(format!(
                "CREATE TABLE `{name}` (id int NOT NULL PRIMARY KEY, code int, UNIQUE KEY uc (code))"
            ));
        }
    }
    let mut expected = Vec::new();
    for t in 0..TABLES_PER_SEED {
        let source_name = format!("s{seed}_t{t}");
        let spec = generator.table();
        let source_parent = |k: usize| format!("par{k}");
        let shadow_parent = |k: usize| shadow(&format!("par{k}"));
        setup.push(render(
            &spec,
            &source_name,
            &source_parent,
            &str::to_owned,
            false,
        ));
        let shadow_name = shadow(&source_name);
        let expectation = match t % 4 {
            0 => Some(SyncResult::Create),
            1 => {
                setup.push(render(&spec, &shadow_name, &shadow_parent, &affixed, true));
                Some(SyncResult::NoAction)
            }
            _ => {
                let mutated = generator.mutate(&spec);
                let declare = t % 4 == 2;
                setup.push(render(
                    &mutated,
                    &shadow_name,
                    &shadow_parent,
                    &affixed,
                    declare,
                ));
                // An edit can be a no-op (a rule written as its default): UPDATE or NO_ACTION.
                None
            }
        };
        expected.push((source_name, expectation));
    }
    let mut orphans = Vec::new();
    for k in 0..ORPHANS {
        let name = shadow(&format!("gone{seed}_{k}"));
        let mut spec = generator.table();
        spec.partitions = None;
        let shadow_parent = |k: usize| shadow(&format!("par{k}"));
        setup.push(render(&spec, &name, &shadow_parent, &affixed, true));
        orphans.push(name);
    }
    for statement in &setup {
        db.exec(statement).await;
    }
    let mut orphan_ddl = Vec::new();
    for name in &orphans {
        orphan_ddl.push(
            db.query_string(&format!("SHOW CREATE TABLE `{name}`"), 1)
                .await,
        );
    }

    let plan = db.plan(SyncRange::All, &naming, &[]).await;
    let mut failures = Vec::new();
    for (source, expectation) in &expected {
        let table = plan
            .table(source)
            .unwrap_or_else(|| panic!("seed {seed}: {source} missing from the plan"));
        let ok = match expectation {
            Some(result) => table.result == *result,
            None => matches!(table.result, SyncResult::Update | SyncResult::NoAction),
        };
        if !ok {
            failures.push(format!(
                "seed {seed}: {source}: expected {expectation:?}, got {:?} {:?}\n{}\n--- shadow:\n{}\n--- statements:\n{:#?}",
                table.result,
                table.reason,
                table.source_ddl.as_deref().unwrap_or(""),
                table.shadow_ddl.as_deref().unwrap_or(""),
                table.statements
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
    for name in &orphans {
        let source = naming.source_of(name, str::to_owned).unwrap();
        let row = plan.table(&source).expect("orphan listed");
        assert_eq!(row.result, SyncResult::SourceMissing, "{name}");
        assert!(
            !plan.sql_script().contains(&format!("`{name}`")),
            "seed {seed}: orphan {name} touched"
        );
    }

    db.apply(&plan).await;
    let mut again = db.plan(SyncRange::All, &naming, &[]).await;
    again
        .tables
        .retain(|table| table.result != SyncResult::SourceMissing);
    assert_all_no_action(&again);
    db.assert_shadows_match(&naming).await;
    for table in &plan.tables {
        if table.result.needs_sync() {
            let after = again.table(&table.source).unwrap();
            assert_eq!(
                table.target_fingerprint,
                after.shadow_fingerprint,
                "seed {seed}: {} did not reach its promised fingerprint\n{}\n--- shadow before:\n{}\n--- after:\n{}\n--- statements:\n{:#?}",
                table.source,
                table.source_ddl.as_deref().unwrap_or(""),
                table.shadow_ddl.as_deref().unwrap_or(""),
                after.shadow_ddl.as_deref().unwrap_or(""),
                table.statements
            );
        }
    }
    for (name, before) in orphans.iter().zip(&orphan_ddl) {
        let after = db
            .query_string(&format!("SHOW CREATE TABLE `{name}`"), 1)
            .await;
        assert_eq!(before, &after, "seed {seed}: orphan {name} changed");
    }
    expected.len()
}

async fn run_seeds(seeds: std::ops::Range<u64>) -> usize {
    let mut cases = 0;
    for seed in seeds {
        cases += run_seed(seed).await;
    }
    cases
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seeded_slice() {
    let cases = run_seeds(1..5).await;
    assert_eq!(cases, 240);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "1,200 cases, a few minutes: run with --ignored"]
async fn seeded_full() {
    let cases = run_seeds(1..21).await;
    assert!(cases >= 1_000, "{cases} cases");
}
