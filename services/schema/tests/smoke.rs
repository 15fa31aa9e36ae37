mod common;
use common::*;
use shadowsync_schema::{ShadowNaming, SyncRange};

#[tokio::test]
async fn scratch_roundtrip() {
    let db = TestDb::new().await;
    let ddl = std::fs::read_to_string("/tmp/scratch.sql").unwrap();
    db.exec(&ddl).await;
    let naming = ShadowNaming::default();
    let plan = db.plan(SyncRange::All, &naming, &[]).await;
    for t in &plan.tables { println!("{} {:?} {:?}", t.source, t.result, t.reason); }
    println!("{}", plan.sql_script());
    db.apply(&plan).await;
    let plan = db.plan(SyncRange::All, &naming, &[]).await;
    assert_all_no_action(&plan);
    db.assert_shadows_match(&naming).await;
}
