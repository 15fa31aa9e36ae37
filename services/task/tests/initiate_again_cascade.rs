//! Initiate Again keeps a person's skips, not the skips that only followed a parent: a child
//! skipped with its parent (its shadow would have referenced production) comes back when the
//! parent is un-skipped in the new analysis.

mod support;

use shadowsync_proto::task::v1::*;
use support::fixture::{Fixture, status};

async fn succeeded_rows(fixture: &mut Fixture, analysis_id: &str) -> Vec<AnalysisTable> {
    fixture.wait_for_analysis(analysis_id).await;
    fixture
        .alice
        .get_analysis(GetAnalysisRequest {
            analysis_id: analysis_id.into(),
            ..Default::default()
        })
        .await
        .expect("get")
        .into_inner()
        .tables
}

fn skipped(rows: &[AnalysisTable]) -> Vec<&str> {
    let mut names: Vec<&str> = rows
        .iter()
        .filter(|row| row.skipped)
        .map(|row| row.source_table.as_str())
        .collect();
    names.sort_unstable();
    names
}

fn skip(analysis_id: &str, table: &str, skipped: bool) -> SetTablesSkippedRequest {
    SetTablesSkippedRequest {
        analysis_id: analysis_id.into(),
        source_tables: vec![table.into()],
        skipped,
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn initiate_again_restores_children_with_their_parent() {
    let mut fixture = Fixture::new().await;
    fixture
        .database
        .execute(
            "CREATE TABLE customers (id INT PRIMARY KEY);\n\
             CREATE TABLE invoices (id INT PRIMARY KEY, customer INT, KEY kc (customer), \
               FOREIGN KEY (customer) REFERENCES customers (id))",
        )
        .await;
    let analysis_id = fixture.analysis().await;
    let cascaded = fixture
        .alice
        .set_tables_skipped(skip(&analysis_id, "customers", true))
        .await
        .expect("skip")
        .into_inner()
        .cascaded_tables;
    assert_eq!(
        cascaded
            .iter()
            .map(|row| row.source_table.as_str())
            .collect::<Vec<_>>(),
        ["invoices"]
    );
    let task = fixture.submit(&analysis_id, "req-cascade").await;
    assert_eq!(status(&task), TaskStatus::Approving);
    fixture.reject(task.id).await.expect("reject");

    let again = fixture
        .alice
        .initiate_again(InitiateAgainRequest {
            task_id: task.id,
            ..Default::default()
        })
        .await
        .expect("initiate again")
        .into_inner()
        .analysis
        .expect("analysis");
    let rows = succeeded_rows(&mut fixture, &again.id).await;
    assert_eq!(skipped(&rows), ["customers", "invoices"], "{rows:#?}");

    // The person's skip was `customers` alone: un-skipping it brings `invoices` back too.
    let restored = fixture
        .alice
        .set_tables_skipped(skip(&again.id, "customers", false))
        .await
        .expect("undo skip")
        .into_inner();
    assert_eq!(
        restored
            .cascaded_tables
            .iter()
            .map(|row| row.source_table.as_str())
            .collect::<Vec<_>>(),
        ["invoices"]
    );
    let rows = succeeded_rows(&mut fixture, &again.id).await;
    assert!(skipped(&rows).is_empty(), "{rows:#?}");
}
