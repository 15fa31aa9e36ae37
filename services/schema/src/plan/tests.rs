//! Planner tests on catalogs built from DDL text (no server needed).

use std::collections::BTreeMap;

use super::{AnalysisRequest, SyncResult, plan};
use crate::catalog::{Catalog, CatalogTable, SyncRange};
use crate::error::SchemaError;
use crate::naming::ShadowNaming;
use crate::normalize::ServerContext;

fn catalog(tables: &[(&str, &str)], listed_only: &[&str]) -> Catalog {
    let server = ServerContext::mariadb_default();
    let mut catalog = Catalog {
        database: "db".into(),
        server: server.clone(),
        base_tables: tables
            .iter()
            .map(|(name, _)| (*name).to_owned())
            .chain(listed_only.iter().map(|name| (*name).to_owned()))
            .collect(),
        tables: BTreeMap::new(),
    };
    for (name, ddl) in tables {
        catalog.insert(CatalogTable::read((*name).into(), (*ddl).into(), &server));
    }
    catalog
}

fn request(range: SyncRange) -> AnalysisRequest {
    AnalysisRequest {
        range,
        naming: ShadowNaming::default(),
        skipped: Default::default(),
    }
}

#[test]
fn results_cover_every_case() {
    let catalog = catalog(
        &[
            (
                "a",
                "CREATE TABLE `a` (`id` int(11) NOT NULL, PRIMARY KEY (`id`)) ENGINE=InnoDB",
            ),
            (
                "_test_a",
                "CREATE TABLE `_test_a` (`id` int NOT NULL, PRIMARY KEY (`id`)) ENGINE=InnoDB",
            ),
            (
                "b",
                "CREATE TABLE `b` (`id` int(11) NOT NULL, `v` int(11) DEFAULT '3') ENGINE=InnoDB",
            ),
            (
                "_test_b",
                "CREATE TABLE `_test_b` (`id` int(11) NOT NULL, `v` int(11) DEFAULT 4) ENGINE=InnoDB",
            ),
            (
                "c",
                "CREATE TABLE `c` (`id` int(11) NOT NULL) ENGINE=InnoDB",
            ),
            ("broken", "CREATE TABLE `broken` (`id` int(11) WHATEVER)"),
            (
                "remote",
                "CREATE TABLE `remote` (`id` int(11) NOT NULL) ENGINE=FEDERATED CONNECTION='mysql://u@h/db/t'",
            ),
        ],
        &["gone"],
    );
    let plan = plan(&catalog, &request(SyncRange::All)).unwrap();
    let result = |name: &str| plan.table(name).unwrap().result;
    assert_eq!(result("a"), SyncResult::NoAction);
    assert!(plan.table("a").unwrap().statements.is_empty());
    assert_eq!(result("b"), SyncResult::Update);
    assert_eq!(
        plan.table("b").unwrap().statements[0].sql,
        "ALTER TABLE `_test_b` CHANGE COLUMN `v` `v` int NULL DEFAULT '3'"
    );
    assert_eq!(result("c"), SyncResult::Create);
    assert_eq!(result("broken"), SyncResult::Unsupported);
    assert!(
        plan.table("broken")
            .unwrap()
            .reason
            .as_deref()
            .unwrap()
            .contains("cannot read")
    );
    assert_eq!(result("remote"), SyncResult::Unsupported);
    assert_eq!(result("gone"), SyncResult::SourceMissing);
    assert_eq!(plan.order.len(), 2);
}

#[test]
fn partial_ranges_name_unknown_tables() {
    let catalog = catalog(&[("a", "CREATE TABLE `a` (`id` int)")], &[]);
    let error = plan(
        &catalog,
        &request(SyncRange::Partial(vec!["a".into(), "zz".into()])),
    )
    .unwrap_err();
    assert!(matches!(error, SchemaError::UnknownTables { ref tables, .. } if tables == &["zz"]));
    assert!(error.to_string().contains("zz"));
}

#[test]
fn constraint_names_carry_the_affix_and_fit_the_limit() {
    let long = "f".repeat(62);
    let ddl = format!(
        "CREATE TABLE `child` (`id` int NOT NULL, `p` int, KEY `kp` (`p`), \
         CONSTRAINT `{long}` FOREIGN KEY (`p`) REFERENCES `parent` (`id`), \
         CONSTRAINT `chk` CHECK (`id` > 0))"
    );
    let catalog = catalog(
        &[
            (
                "parent",
                "CREATE TABLE `parent` (`id` int NOT NULL, PRIMARY KEY (`id`))",
            ),
            ("child", &ddl),
        ],
        &[],
    );
    let plan = plan(&catalog, &request(SyncRange::All)).unwrap();
    let script = plan.sql_script();
    assert!(script.find("`_test_parent`").unwrap() < script.find("`_test_child`").unwrap());
    assert!(script.contains("CONSTRAINT `_test_chk` CHECK"), "{script}");
    let fk_name = script
        .split("CONSTRAINT `")
        .nth(1)
        .and_then(|rest| rest.split('`').next())
        .unwrap();
    assert!(
        fk_name.starts_with("_test_ff") && fk_name.len() <= 64,
        "{fk_name}"
    );
    assert!(script.contains("REFERENCES `_test_parent`"));
}

#[test]
fn plans_round_trip_through_json() {
    let catalog = catalog(
        &[
            (
                "a",
                "CREATE TABLE `a` (`id` int NOT NULL, PRIMARY KEY (`id`))",
            ),
            (
                "_test_a",
                "CREATE TABLE `_test_a` (`id` bigint NOT NULL, PRIMARY KEY (`id`))",
            ),
            ("b", "CREATE TABLE `b` (`id` int NOT NULL)"),
        ],
        &[],
    );
    let plan = plan(&catalog, &request(SyncRange::All)).unwrap();
    let json = serde_json::to_string(&plan).unwrap();
    assert!(json.contains("\"result\":\"UPDATE\""), "{json}");
    assert!(json.contains("\"Prefix\":\"_test_\""), "{json}");
    let back: super::Plan = serde_json::from_str(&json).unwrap();
    assert_eq!(back, plan);
    // A bad affix in a plan read back is refused, not trusted.
    let tampered = json.replace("\"_test_\"", "\"bad-affix\"");
    assert!(serde_json::from_str::<super::Plan>(&tampered).is_err());
}

#[test]
fn isolation_cascades_skips_and_refuses_outside_objects() {
    let catalog = catalog(
        &[
            (
                "p",
                "CREATE TABLE `p` (`id` int NOT NULL, PRIMARY KEY (`id`))",
            ),
            (
                "c",
                "CREATE TABLE `c` (`id` int NOT NULL, `p` int, KEY `kp` (`p`), \
                 CONSTRAINT `fc` FOREIGN KEY (`p`) REFERENCES `p` (`id`))",
            ),
            (
                "g",
                "CREATE TABLE `g` (`id` int NOT NULL, `c` int, KEY `kc` (`c`), \
                 CONSTRAINT `fg` FOREIGN KEY (`c`) REFERENCES `c` (`id`))",
            ),
            (
                "x",
                "CREATE TABLE `x` (`id` int NOT NULL, `o` int, KEY `ko` (`o`), \
                 CONSTRAINT `fx` FOREIGN KEY (`o`) REFERENCES `other`.`t` (`id`))",
            ),
            (
                "s",
                "CREATE TABLE `s` (`id` int DEFAULT nextval(`db`.`seq`))",
            ),
        ],
        &[],
    );
    let mut skipping = request(SyncRange::All);
    skipping.skipped.insert("p".into());
    let plan = plan(&catalog, &skipping).unwrap();
    for name in ["p", "c", "g"] {
        assert!(plan.table(name).unwrap().skipped, "{name}");
    }
    assert_eq!(
        plan.table("g").unwrap().reason.as_deref(),
        Some("skipped with `c`: its shadow would reference production `c`")
    );
    assert!(plan.order.is_empty(), "{}", plan.sql_script());
    assert_eq!(plan.table("x").unwrap().result, SyncResult::Unsupported);
    assert_eq!(plan.table("s").unwrap().result, SyncResult::Unsupported);

    // A partial range names only the grandchild: its ancestors join, parents first.
    let plan = super::plan(&catalog, &request(SyncRange::Partial(vec!["g".into()]))).unwrap();
    let sources: Vec<&str> = plan.tables.iter().map(|t| t.source.as_str()).collect();
    assert_eq!(sources, ["g", "c", "p"]);
    let script = plan.sql_script();
    assert!(
        script.find("`_test_p`") < script.find("`_test_c`"),
        "{script}"
    );
    assert!(!script.contains("REFERENCES `p`") && !script.contains("REFERENCES `c`"));
}
