//! The guard against real renderer output (accepted) and against tampering (refused).

use std::collections::{BTreeMap, BTreeSet};

use shadowsync_schema::{
    AnalysisRequest, Catalog, CatalogTable, ServerContext, ShadowNaming, SyncRange,
    parse_create_table, plan,
};

use super::*;

/// Source and shadow DDL as MariaDB 10.11 prints them: partitions, ZEROFILL, generated columns,
/// comments with `;` and `DROP`, names with backticks, a foreign key to a source parent.
const SOURCES: &[&str] = &[
    "CREATE TABLE `customers` (\n  `id` int(11) NOT NULL AUTO_INCREMENT,\n  `name` varchar(100) NOT NULL COMMENT 'name; DROP TABLE customers -- really',\n  PRIMARY KEY (`id`)\n) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_general_ci COMMENT='/* not a comment */ ; DROP'",
    "CREATE TABLE `orders` (\n  `id` int(10) unsigned zerofill NOT NULL,\n  `customer_id` int(11) NOT NULL,\n  `qty` int(11) NOT NULL DEFAULT 1,\n  `price` decimal(10,2) NOT NULL,\n  `total` decimal(12,2) GENERATED ALWAYS AS (`qty` * `price`) STORED,\n  `note` varchar(20) DEFAULT 'it''s; RENAME',\n  `created` date NOT NULL,\n  PRIMARY KEY (`id`,`created`),\n  KEY `customer` (`customer_id`)\n) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_general_ci\n PARTITION BY RANGE (year(`created`))\n(PARTITION `p2023` VALUES LESS THAN (2024) ENGINE = InnoDB,\n PARTITION `p_max` VALUES LESS THAN MAXVALUE ENGINE = InnoDB)",
    "CREATE TABLE `we``ird; DROP` (\n  `a``b` int(11) NOT NULL,\n  `code` varchar(10) DEFAULT NULL,\n  PRIMARY KEY (`a``b`),\n  CONSTRAINT `code_ok` CHECK (`code` like 'A%')\n) ENGINE=Aria DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_general_ci PAGE_CHECKSUM=1",
    "CREATE TABLE `lines` (\n  `id` int(11) NOT NULL,\n  `customer_id` int(11) NOT NULL,\n  PRIMARY KEY (`id`),\n  KEY `c` (`customer_id`),\n  CONSTRAINT `lines_c` FOREIGN KEY (`customer_id`) REFERENCES `customers` (`id`) ON DELETE CASCADE\n) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_general_ci",
    // Shadows that exist and differ: the plan alters them.
    "CREATE TABLE `_test_customers` (\n  `id` int(11) NOT NULL,\n  `legacy` int(11) DEFAULT NULL,\n  PRIMARY KEY (`id`)\n) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_general_ci",
    "CREATE TABLE `_test_we``ird; DROP` (\n  `a``b` int(11) NOT NULL,\n  PRIMARY KEY (`a``b`)\n) ENGINE=Aria DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_general_ci PAGE_CHECKSUM=1",
];

fn rendered_plan() -> (Vec<String>, BTreeSet<String>) {
    let mut tables = BTreeMap::new();
    let mut base_tables = Vec::new();
    let server = ServerContext::mariadb_default();
    for ddl in SOURCES {
        let name = parse_create_table(ddl).unwrap().name;
        base_tables.push(name.clone());
        let key = server.table_key(&name);
        tables.insert(key, CatalogTable::read(name, (*ddl).to_owned(), &server));
    }
    base_tables.sort();
    let catalog = Catalog {
        database: "shop".into(),
        server,
        base_tables,
        tables,
    };
    let request = AnalysisRequest {
        range: SyncRange::All,
        naming: ShadowNaming::default(),
        skipped: BTreeSet::new(),
    };
    let plan = plan(&catalog, &request).unwrap();
    let statements: Vec<String> = plan.statements().map(|(_, s)| s.sql.clone()).collect();
    let shadows = plan
        .tables
        .iter()
        .filter_map(|t| t.shadow.clone())
        .collect();
    (statements, shadows)
}

fn guard() -> SafetyGuard {
    let (_, shadows) = rendered_plan();
    SafetyGuard::new("shop", shadows)
}

#[test]
fn every_statement_the_renderer_writes_is_accepted() {
    let (statements, shadows) = rendered_plan();
    let guard = SafetyGuard::new("shop", shadows);
    let creates = statements
        .iter()
        .filter(|s| s.starts_with("CREATE"))
        .count();
    let alters = statements.iter().filter(|s| s.starts_with("ALTER")).count();
    assert!(creates >= 2 && alters >= 2, "{statements:#?}");
    assert!(
        statements.iter().any(|s| s.contains("PARTITION BY")),
        "{statements:#?}"
    );
    assert!(
        statements
            .iter()
            .any(|s| s.contains("zerofill") || s.contains("ZEROFILL"))
    );
    for statement in &statements {
        assert_eq!(guard.check(statement), Ok(()), "{statement}");
    }
}

#[test]
fn hand_written_shadow_statements_are_accepted() {
    let guard = guard();
    let accepted = [
        "CREATE TABLE `_test_orders` (`id` int NOT NULL) ENGINE=InnoDB",
        "CREATE TABLE `shop`.`_test_orders` (`id` int NOT NULL)",
        "create table shop._test_orders (id int)",
        "ALTER TABLE `_test_customers` ADD COLUMN `x` int DEFAULT 0 COMMENT 'DROP TABLE orders; SELECT'",
        "ALTER TABLE `_test_customers` DROP COLUMN `legacy`",
        "ALTER TABLE `_test_customers` ADD COLUMN `t` int AS (`id` + 1) VIRTUAL",
        "ALTER TABLE `_test_lines` ADD CONSTRAINT `fk` FOREIGN KEY (`customer_id`) REFERENCES `shop`.`_test_customers` (`id`)",
        "ALTER TABLE `_test_customers` ENGINE=Aria -- RENAME; DROP\n",
        "ALTER TABLE `_test_customers` /* ; DROP TABLE orders */ ADD KEY `k` (`id`)",
        "ALTER TABLE `_test_customers` ADD CONSTRAINT `c` CHECK (`name` LIKE 'a%')",
        r"ALTER TABLE `_test_customers` COMMENT 'C:\\path\\'",
        "CREATE TABLE `_test_we``ird; DROP` (`a``b` int)",
    ];
    for statement in accepted {
        assert_eq!(guard.check(statement), Ok(()), "{statement}");
    }
}

#[test]
fn tampered_statements_are_refused_with_a_reason() {
    let guard = guard();
    let refused: &[(&str, &str)] = &[
        ("DROP TABLE orders", "only CREATE TABLE and ALTER TABLE"),
        (
            "DROP TABLE `_test_orders`",
            "only CREATE TABLE and ALTER TABLE",
        ),
        (
            "ALTER TABLE orders ADD COLUMN x int",
            "not one of this task's shadow tables",
        ),
        (
            "ALTER TABLE `orders` ENGINE=InnoDB",
            "not one of this task's shadow tables",
        ),
        (
            "INSERT INTO `_test_orders` VALUES (1)",
            "only CREATE TABLE and ALTER TABLE",
        ),
        (
            "UPDATE `_test_orders` SET id = 1",
            "only CREATE TABLE and ALTER TABLE",
        ),
        (
            "CREATE TABLE `_test_orders` (id int); DROP TABLE orders",
            "`;`",
        ),
        ("CREATE TABLE `_test_orders` (id int);", "`;`"),
        // Executable comments are refused outright, whatever they hold.
        (
            "CREATE TABLE `_test_orders` (id int) /*! ; DROP TABLE orders */",
            "executable comment",
        ),
        (
            "CREATE TABLE `_test_orders` (id int) /*!50100 , ENGINE=FEDERATED */",
            "executable comment",
        ),
        ("/*! DROP TABLE orders */", "executable comment"),
        (
            "CREATE TABLE /*!`orders`*/ /* `_test_orders` */ (id int)",
            "executable comment",
        ),
        // A shadow never references production.
        (
            "ALTER TABLE `_test_lines` ADD CONSTRAINT `fk` FOREIGN KEY (`customer_id`) REFERENCES `customers` (`id`)",
            "`customers`, which is not a shadow table",
        ),
        (
            "CREATE TABLE `other`.`_test_orders` (id int)",
            "database `other`",
        ),
        (
            "ALTER TABLE `mysql`.`_test_orders` ADD x int",
            "database `mysql`",
        ),
        ("ALTER TABLE `_test_orders` RENAME TO `orders`", "RENAME"),
        ("ALTER TABLE `_test_orders` RENAME COLUMN a TO b", "RENAME"),
        ("ALTER TABLE `_test_orders` RENAME INDEX a TO b", "RENAME"),
        ("ALTER TABLE `_test_orders` RENAME KEY a TO b", "RENAME"),
        ("CREATE TABLE `_test_orders` SELECT * FROM orders", "SELECT"),
        ("CREATE TABLE `_test_orders` AS SELECT * FROM orders", "AS"),
        ("CREATE TABLE `_test_orders` (id int) AS (SELECT 1)", "AS"),
        ("CREATE TABLE `_test_orders` LIKE `orders`", "LIKE"),
        ("CREATE TABLE `_test_orders` (LIKE `orders`)", "LIKE"),
        (
            "CREATE TABLE IF NOT EXISTS `_test_orders` (id int)",
            "IF [NOT] EXISTS",
        ),
        (
            "CREATE TABLE IF NOT EXISTS orders (id int)",
            "IF [NOT] EXISTS",
        ),
        (
            "ALTER TABLE IF EXISTS `_test_orders` ADD x int",
            "IF [NOT] EXISTS",
        ),
        (
            "CREATE OR REPLACE TABLE `_test_orders` (id int)",
            "only CREATE TABLE",
        ),
        (
            "CREATE TEMPORARY TABLE `_test_orders` (id int)",
            "only CREATE TABLE",
        ),
        (
            "CREATE TABLE `_test_orders` (id int) ENGINE=CONNECT TABLE_TYPE=MYSQL",
            "CONNECT",
        ),
        (
            "CREATE TABLE `_test_orders` (id int) ENGINE = 'FEDERATED'",
            "FEDERATED",
        ),
        ("ALTER TABLE `_test_orders` ENGINE=Spider", "Spider"),
        (
            "CREATE TABLE `_test_orders` (id int) CONNECTION='mysql://u@h/db/t'",
            "CONNECTION",
        ),
        (
            "CREATE TABLE `_test_orders` (id int) DATA DIRECTORY='/tmp'",
            "DIRECTORY",
        ),
        (
            "CREATE TABLE `_test_orders` (id int) INDEX DIRECTORY='/tmp'",
            "DIRECTORY",
        ),
        (
            "CREATE TABLE `_test_orders` (id int) ENGINE=MRG_MyISAM UNION=(orders)",
            "MRG_MyISAM",
        ),
        (
            "CREATE TABLE `_test_orders` (id int) UNION=(orders)",
            "UNION",
        ),
        (
            "CREATE TABLE `_test_orders` (c int, FOREIGN KEY (c) REFERENCES `other`.`t` (id))",
            "database `other`",
        ),
        (
            "ALTER TABLE `_test_orders` ADD FOREIGN KEY (c) REFERENCES other.t (id)",
            "database `other`",
        ),
        (
            "ALTER TABLE `_test_orders` EXCHANGE PARTITION p WITH TABLE orders",
            "moves rows between tables",
        ),
        (
            // Without `TABLE` the server refuses it today; the guard does not rely on that.
            "ALTER TABLE `_test_orders` EXCHANGE PARTITION p WITH orders",
            "moves rows between tables",
        ),
        (
            "ALTER TABLE `_test_orders` CONVERT PARTITION p TO TABLE t2",
            "moves rows between tables",
        ),
        (
            "ALTER TABLE `_test_orders` CONVERT TABLE t2 TO PARTITION p VALUES LESS THAN (10)",
            "moves rows between tables",
        ),
        (
            "ALTER TABLE `_test_orders` ADD x int COMMENT 'unterminated",
            "cannot be read",
        ),
        (
            "ALTER TABLE `_test_orders` /* unterminated",
            "cannot be read",
        ),
        ("", "empty"),
        ("-- only a comment", "empty"),
        ("CREATE TABLE", "missing"),
        ("ALTER VIEW `_test_orders` AS SELECT 1", "only CREATE TABLE"),
    ];
    for (statement, reason) in refused {
        let refusal = guard
            .check(statement)
            .expect_err(&format!("should be refused: {statement}"));
        assert!(
            refusal.reason().contains(reason),
            "{statement}: {} does not mention {reason}",
            refusal.reason()
        );
    }
}

fn assert_refused(guard: &SafetyGuard, statement: &str, reason: &str) {
    let refusal = guard
        .check(statement)
        .expect_err(&format!("should be refused: {statement:?}"));
    assert!(
        refusal.reason().contains(reason),
        "{statement:?}: {} does not mention {reason}",
        refusal.reason()
    );
}

#[test]
fn the_reproduced_lexer_bypasses_are_refused() {
    // Each of these passed the guard as one harmless ALTER and ran as more on MariaDB 10.11.
    let guard = guard();
    // The server ends the executable comment at the first `*/`: `; DROP TABLE orders;` ran.
    assert_refused(
        &guard,
        "ALTER TABLE `_test_customers` COMMENT 'c' /*!80000 'x */ ; DROP TABLE orders; -- ' */",
        "executable comment",
    );
    assert_refused(
        &guard,
        "ALTER TABLE `_test_customers` COMMENT 'c' /*M!100000 'x */ , RENAME TO orders -- ' */",
        "executable comment",
    );
    // `--\x01` starts a comment for the server: the quote opening the guard's string is
    // commented out and `RENAME` on the next line runs.
    assert_refused(
        &guard,
        "ALTER TABLE `_test_customers` COMMENT 'c' --\u{1} '\n, RENAME TO orders -- '",
        "U+0001",
    );
    assert_refused(
        &guard,
        "ALTER TABLE `_test_customers` COMMENT 'c' --\u{7f} '\n, RENAME TO orders -- '",
        "U+007F",
    );
    // `--\u{a0}` is a comment for Rust's `is_whitespace`, two minus signs and a name for the
    // server: what the guard skipped ran.
    assert_refused(
        &guard,
        "ALTER TABLE `_test_customers` ADD COLUMN `g` int AS (`id` --\u{a0}) , RENAME TO orders\n)",
        "U+00A0",
    );
    assert_refused(
        &guard,
        "ALTER TABLE `_test_customers` ENGINE=InnoDB --\u{2003}\n",
        "U+2003",
    );
    // Whitespace the renderer never writes, and non-ASCII outside quotes, anywhere.
    assert_refused(&guard, "ALTER\u{a0}TABLE `_test_customers` FORCE", "U+00A0");
    assert_refused(&guard, "ALTER TABLE `_test_customers`\u{b}FORCE", "U+000B");
    assert_refused(&guard, "ALTER TABLE `_test_customers`\u{c}FORCE", "U+000C");
    assert_refused(
        &guard,
        "ALTER TABLE `_test_customers` FORCE\0; DROP TABLE orders",
        "NUL",
    );
    assert_refused(
        &guard,
        "ALTER TABLE `_test_customers` COMMENT 'a\0b'",
        "NUL",
    );
    // `1.5TABLE` is `1.5` then `TABLE` for the server.
    assert_refused(
        &guard,
        "ALTER TABLE `_test_customers` EXCHANGE PARTITION p WITH 1.5TABLE orders",
        "neither a number nor a word",
    );
    assert_refused(
        &guard,
        "ALTER TABLE `_test_customers` /* a /* b */ FORCE",
        "inside a comment",
    );
    assert_refused(
        &guard,
        "ALTER TABLE `_test_customers` FORCE --",
        "end of the statement",
    );
}

#[test]
fn literals_as_mariadb_prints_them_are_accepted() {
    // MariaDB prints `'it''s'` in CHECK, DEFAULT and generated-column expressions as `'it\'s'`;
    // the guard demanded the same reading without backslash escapes and refused them all.
    let guard = guard();
    for statement in [
        r"CREATE TABLE `_test_orders` (`v` varchar(10) DEFAULT NULL, CONSTRAINT `c` CHECK (`v` <> 'it\'s'))",
        r"ALTER TABLE `_test_customers` ADD CONSTRAINT `c` CHECK (`name` <> 'it\'s' and `name` <> 'C:\\dir\\')",
        r"ALTER TABLE `_test_customers` ADD COLUMN `d` varchar(20) DEFAULT (concat('it\'s',`id`))",
        r"ALTER TABLE `_test_customers` ADD COLUMN `g` varchar(20) GENERATED ALWAYS AS (concat(`name`,'\'; DROP TABLE orders; -- ')) VIRTUAL",
        r"ALTER TABLE `_test_customers` ADD COLUMN `e` int GENERATED ALWAYS AS (--`id`) VIRTUAL",
        "ALTER TABLE `_test_customers` COMMENT 'multi\u{a0}lingual: caf\u{e9} \u{4e2d}\u{6587}'",
        "CREATE TABLE `_test_orders` (`n\u{e9}` int COMMENT 'tab\there')",
    ] {
        assert_eq!(guard.check(statement), Ok(()), "{statement}");
    }
}

#[test]
fn a_plan_with_escaped_literals_is_accepted() {
    let source = r"CREATE TABLE `quotes` (
  `id` int(11) NOT NULL,
  `v` varchar(20) DEFAULT 'it\'s',
  `w` varchar(40) GENERATED ALWAYS AS (concat(`v`,'\'s \\ end')) VIRTUAL,
  `d` varchar(40) DEFAULT (concat('a\'b',`id`)),
  PRIMARY KEY (`id`),
  CONSTRAINT `v_ok` CHECK (`v` <> 'it\'s; DROP TABLE orders; -- ')
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_general_ci";
    let server = ServerContext::mariadb_default();
    let name = parse_create_table(source).unwrap().name;
    let catalog = Catalog {
        database: "shop".into(),
        tables: BTreeMap::from([(
            server.table_key(&name),
            CatalogTable::read(name.clone(), source.to_owned(), &server),
        )]),
        server,
        base_tables: vec![name],
    };
    let request = AnalysisRequest {
        range: SyncRange::All,
        naming: ShadowNaming::default(),
        skipped: BTreeSet::new(),
    };
    let plan = plan(&catalog, &request).unwrap();
    let statements: Vec<String> = plan.statements().map(|(_, s)| s.sql.clone()).collect();
    assert_eq!(statements.len(), 1, "{statements:#?}");
    assert!(statements[0].contains(r"'it\'s"), "{}", statements[0]);
    let guard = SafetyGuard::new("shop", ["_test_quotes".to_owned()]);
    assert_eq!(guard.check(&statements[0]), Ok(()), "{}", statements[0]);
}

#[test]
fn foreign_keys_reference_shadow_tables_only() {
    let plain = guard();
    let naming = guard().with_naming(ShadowNaming::default());
    let fk = |table: &str| {
        format!(
            "ALTER TABLE `_test_lines` ADD CONSTRAINT `fk` FOREIGN KEY (`c`) REFERENCES {table} (`id`)"
        )
    };
    // The task's own shadows, with or without the task's database.
    for guard in [&plain, &naming] {
        assert_eq!(guard.check(&fk("`_test_customers`")), Ok(()));
        assert_eq!(guard.check(&fk("`shop`.`_test_customers`")), Ok(()));
        assert_eq!(guard.check(&fk("_test_lines")), Ok(()));
        for production in ["`customers`", "customers", "`shop`.`customers`", "`orders`"] {
            assert_refused(guard, &fk(production), "not a shadow table");
        }
        assert_refused(guard, &fk("`other`.`_test_customers`"), "database `other`");
    }
    // A shadow outside the task (its parent is in sync) only through the naming rule.
    assert_refused(&plain, &fk("`_test_parents`"), "not a shadow table");
    assert_eq!(naming.check(&fk("`_test_parents`")), Ok(()));
    // The affix alone has no source part; another spelling is another name to the guard.
    assert_refused(&naming, &fk("`_test_`"), "not a shadow table");
    assert_refused(&naming, &fk("`_TEST_parents`"), "not a shadow table");
    assert_refused(&naming, &fk("`x_test_parents`"), "not a shadow table");
    // Inline column references are foreign keys too.
    assert_refused(
        &naming,
        "CREATE TABLE `_test_orders` (`c` int REFERENCES `customers` (`id`))",
        "not a shadow table",
    );
    let suffix = SafetyGuard::new("shop", ["orders_t".to_owned()])
        .with_naming(ShadowNaming::suffix(None).unwrap());
    assert_eq!(
        suffix
            .check("ALTER TABLE `orders_t` ADD FOREIGN KEY (`c`) REFERENCES `customers_t` (`id`)"),
        Ok(())
    );
    assert_refused(
        &suffix,
        "ALTER TABLE `orders_t` ADD FOREIGN KEY (`c`) REFERENCES `_t` (`id`)",
        "not a shadow table",
    );
    // The naming rule never widens the targets.
    assert_refused(
        &naming,
        "ALTER TABLE `_test_parents` ADD COLUMN `x` int",
        "not one of this task's shadow tables",
    );
}

#[test]
fn sequences_and_non_local_engines_are_refused() {
    let guard = guard();
    for statement in [
        "ALTER TABLE `_test_customers` ADD COLUMN `n` int DEFAULT (NEXTVAL(`seq`))",
        "ALTER TABLE `_test_customers` ADD COLUMN `n` int DEFAULT nextval(seq)",
        "ALTER TABLE `_test_customers` ADD COLUMN `n` int DEFAULT (NEXT VALUE FOR `seq`)",
        "ALTER TABLE `_test_customers` ADD COLUMN `n` int DEFAULT (previous value for `seq`)",
        "ALTER TABLE `_test_customers` ADD COLUMN `n` int DEFAULT (LASTVAL(`seq`))",
        "ALTER TABLE `_test_customers` ADD COLUMN `n` int DEFAULT (SETVAL(`seq`, 1))",
    ] {
        assert_refused(&guard, statement, "sequence");
    }
    for engine in [
        "OQGRAPH",
        "S3",
        "SEQUENCE",
        "`Spider`",
        "'CONNECT'",
        "FederatedX",
    ] {
        assert_refused(
            &guard,
            &format!("CREATE TABLE `_test_orders` (`id` int) ENGINE={engine}"),
            "not a local engine",
        );
    }
    for engine in ["InnoDB", "innodb", "Aria", "MyISAM", "MEMORY", "`InnoDB`"] {
        let statement = format!("CREATE TABLE `_test_orders` (`id` int) ENGINE = {engine}");
        assert_eq!(guard.check(&statement), Ok(()), "{statement}");
    }
}

#[test]
fn a_statement_may_change_only_the_shadow_of_its_own_table() {
    let guard = guard();
    let sql = "ALTER TABLE `_test_orders` ADD COLUMN `note` varchar(20)";
    assert_eq!(guard.check_for(sql, "_test_orders"), Ok(()));
    // Both are shadows of the task, but the statement belongs to the other table's plan.
    let refusal = guard
        .check_for(sql, "_test_customers")
        .expect_err("a sibling shadow's statement is refused");
    assert!(
        refusal
            .reason()
            .contains("belongs to the plan of `_test_customers`"),
        "{refusal}"
    );
    // Everything `check` refuses, `check_for` refuses too.
    assert!(
        guard
            .check_for("ALTER TABLE `orders` ADD COLUMN `x` int", "orders")
            .is_err()
    );
}
