//! Fidelity over every real-world schema in /work/shared/corpus/mysql: with all shadows missing,
//! the plan applied with foreign_key_checks on makes every shadow structurally equal to its
//! source, and a second analysis is all NO_ACTION.

mod common;

use std::process::Command;

use common::*;
use shadowsync_schema::{ShadowNaming, SyncRange, SyncResult};

const CORPUS: &str = "/work/shared/corpus";

async fn corpus_roundtrip(name: &str, naming: ShadowNaming) {
    let db = TestDb::new().await;
    let status = Command::new(format!("{CORPUS}/load.sh"))
        .args(["mysql", name, &db.name, URL])
        .env("LOAD_QUIET", "1")
        .output()
        .expect("run load.sh");
    assert!(
        status.status.success(),
        "load {name}: {}",
        String::from_utf8_lossy(&status.stderr)
    );
    let plan = db.plan(SyncRange::All, &naming, &[]).await;
    assert!(!plan.tables.is_empty());
    for table in &plan.tables {
        assert_eq!(
            table.result,
            SyncResult::Create,
            "{name}.{}: {:?}",
            table.source,
            table.reason
        );
    }
    db.apply(&plan).await;
    let again = db.plan(SyncRange::All, &naming, &[]).await;
    assert_all_no_action(&again);
    db.assert_shadows_match(&naming).await;
}

macro_rules! corpus_test {
    ($($test:ident => $name:literal, $naming:expr;)*) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $test() {
            corpus_roundtrip($name, $naming).await;
        }
    )*};
}

fn prefix() -> ShadowNaming {
    ShadowNaming::default()
}

fn suffix() -> ShadowNaming {
    ShadowNaming::Suffix(shadowsync_schema::Affix::new("_t").expect("valid affix"))
}

corpus_test! {
    corpus_cacti => "cacti", prefix();
    corpus_chinook => "chinook", suffix();
    corpus_employees => "employees", prefix();
    corpus_employees_partitioned => "employees_partitioned", prefix();
    corpus_guacamole => "guacamole", suffix();
    corpus_mediawiki => "mediawiki", prefix();
    corpus_opencart => "opencart", prefix();
    corpus_prestashop => "prestashop", suffix();
    corpus_roundcube => "roundcube", prefix();
    corpus_sakila => "sakila", prefix();
    corpus_zabbix => "zabbix", suffix();
}
