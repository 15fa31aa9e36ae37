//! A differential fuzz of the safety guard against MariaDB.
//!
//! A seeded generator wraps legitimate shadow DDL (`ALTER TABLE `_test_x` ADD COLUMN …`,
//! `COMMENT '…'`, `CHECK (…)`, `DEFAULT '…'`, generated columns) in quotes, backticks, comments
//! of every kind (`--` followed by anything, `#`, `/* */`, `/*!…*/`, `/*M!…*/`), backslash
//! escapes, control and non-ASCII characters, and now and then a second statement or clause that
//! would hurt a canary, smuggled in the shapes where lexers are known to disagree (a quote in an
//! executable comment's body, `--` before a control character or a Unicode space, a backslash
//! before a closing quote), each shape mutated at random. Every statement the guard accepts runs on a scratch MariaDB world (see
//! `support`) through a session like the executor's, and must run as **exactly one statement
//! that changes nothing but `_test_x`** (no canary, no other table, no user, no session
//! setting); a statement the server rejects (a syntax error, say) is fine.
//!
//! In CI (`cargo test`), `fuzz_against_mariadb` runs 300 cases from seed 14. The long run is the
//! same code behind `#[ignore]`, sized by environment variables:
//!
//! ```text
//! SS_FUZZ_CASES=20000 SS_FUZZ_SEED=20261207 \
//!   cargo test -p shadowsync-executor --test guard_fuzz -- --ignored --nocapture long_fuzz
//! ```
//!
//! Both print their figures (cases, accepted, executed, rejected by the server, violations,
//! wall time). A violation names its seed and case number; `SS_FUZZ_SEED=<seed>
//! SS_FUZZ_CASES=<n + 1>` replays it (the generator depends on nothing but the seed).

mod support;

use std::time::Instant;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use shadowsync_executor::guard::SafetyGuard;
use shadowsync_schema::ShadowNaming;
use support::{PREFIX, SHADOWS, Scratch, Snapshot};

const CI_CASES: u64 = 300;
const CI_SEED: u64 = 14;
/// The table every generated statement means to change.
const TARGET: &str = "_test_x";

#[tokio::test]
async fn fuzz_against_mariadb() {
    let figures = fuzz(env_or("SS_FUZZ_CI_SEED", CI_SEED), CI_CASES).await;
    figures.assert_clean();
    // A generator whose statements the guard always refuses, or the server always rejects,
    // proves nothing: both must see real work.
    assert!(figures.accepted * 5 >= figures.cases, "{figures:#?}");
    assert!(figures.succeeded * 10 >= figures.accepted, "{figures:#?}");
}

#[tokio::test]
#[ignore = "the long run: SS_FUZZ_CASES and SS_FUZZ_SEED (see the file's documentation)"]
async fn long_fuzz() {
    let seed = env_or("SS_FUZZ_SEED", 20_261_207);
    let cases = env_or("SS_FUZZ_CASES", 20_000);
    fuzz(seed, cases).await.assert_clean();
}

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(default)
}

#[derive(Debug, Default)]
struct Figures {
    seed: u64,
    cases: u64,
    accepted: u64,
    executed: u64,
    rejected_by_server: u64,
    succeeded: u64,
    violations: Vec<String>,
    seconds: f64,
}

impl Figures {
    fn assert_clean(&self) {
        println!(
            "guard fuzz: seed {} cases {} accepted {} executed {} rejected by the server {} \
             succeeded {} violations {} wall {:.1} s",
            self.seed,
            self.cases,
            self.accepted,
            self.executed,
            self.rejected_by_server,
            self.succeeded,
            self.violations.len(),
            self.seconds
        );
        assert!(
            self.violations.is_empty(),
            "{} accepted statement(s) did more than change `{TARGET}`:\n{}",
            self.violations.len(),
            self.violations.join("\n")
        );
    }
}

async fn fuzz(seed: u64, cases: u64) -> Figures {
    let started = Instant::now();
    let mut scratch = Scratch::create("fuzz").await;
    let mut guard = guard_for(&scratch);
    let mut baseline = scratch.snapshot().await;
    let mut figures = Figures {
        seed,
        ..Figures::default()
    };
    let mut rng = StdRng::seed_from_u64(seed);
    for case in 0..cases {
        if case > 0 && case % 2_000 == 0 {
            // The long run takes minutes: show it is alive.
            println!(
                "guard fuzz: {case} cases, {} accepted, {} violations, {:.0} s",
                figures.accepted,
                figures.violations.len(),
                started.elapsed().as_secs_f64()
            );
        }
        let sql = scratch.fill(&statement(&mut rng));
        figures.cases += 1;
        if guard.check(&sql).is_err() {
            continue;
        }
        figures.accepted += 1;
        let outcome = scratch.execute(&sql).await;
        figures.executed += 1;
        match &outcome.error {
            Some(_) if outcome.results == 0 => figures.rejected_by_server += 1,
            None => figures.succeeded += 1,
            Some(_) => {}
        }
        let after = scratch.snapshot().await;
        let mut problems = scratch.violations(&baseline, &after, &[TARGET], &sql).await;
        if outcome.split() {
            problems.push(format!("the server split it: {outcome:?}"));
        }
        if !problems.is_empty() {
            figures.violations.push(format!(
                "seed {seed} case {case}: {}\n    {}",
                sql.escape_debug(),
                problems.join("\n    ")
            ));
            // The next case starts in a new world: this one may be damaged anywhere.
            scratch.drop_all().await;
            scratch = Scratch::create("fuzz").await;
            guard = guard_for(&scratch);
            baseline = scratch.snapshot().await;
        } else if changed(&baseline, &after, TARGET, &scratch.database) {
            scratch.reset_table(TARGET).await;
        }
    }
    scratch.drop_all().await;
    figures.seconds = started.elapsed().as_secs_f64();
    figures
}

/// The guard as the executor builds it for a task: its shadows and its naming rule.
fn guard_for(scratch: &Scratch) -> SafetyGuard {
    let naming = ShadowNaming::prefix(Some(PREFIX)).expect("a valid prefix");
    SafetyGuard::new(
        scratch.database.clone(),
        SHADOWS.iter().map(|s| s.to_string()),
    )
    .with_naming(naming)
}

/// Whether `table`'s definition or rows differ from the baseline.
fn changed(baseline: &Snapshot, after: &Snapshot, table: &str, database: &str) -> bool {
    let prefix = format!("table {database}.{table} ");
    let part = |snapshot: &Snapshot| -> Vec<(String, String)> {
        snapshot
            .iter()
            .filter(|(key, _)| key.starts_with(&prefix))
            .map(|(key, value)| (key.clone(), value.clone()))
            .collect()
    };
    part(baseline) != part(after)
}

// ------------------------------------------------------------------------------- generator

/// Fragments that make lexers disagree, for inside literals, names and comments.
const FRAGMENTS: &[&str] = &[
    "'",
    "''",
    "\\'",
    "\\\\",
    "\\",
    "\"",
    "\"\"",
    "\\\"",
    "`",
    "``",
    ";",
    "--",
    "-- ",
    "--\t",
    "--\u{1}",
    "--\u{1f}",
    "--\u{7f}",
    "--\u{a0}",
    "#",
    "/*",
    "*/",
    "/*!",
    "/*!80000 ",
    "/*!50000 ",
    "/*M!",
    "/*M!999999 ",
    "/*M!100000 ",
    "\n",
    "\r",
    "\t",
    "\u{0}",
    "\u{1}",
    "\u{b}",
    "\u{c}",
    "\u{1a}",
    "\u{7f}",
    "\u{a0}",
    "\u{2028}",
    "é",
    "x",
    "ab",
    " ",
    "0",
    " DROP TABLE orders",
    "RENAME",
    "SELECT",
    "NEXTVAL(order_seq)",
];

/// What an attacker wants to run after (or inside) the legitimate statement; all of it stays
/// inside the scratch databases.
const PAYLOADS: &[&str] = &[
    "; DROP TABLE orders",
    "; UPDATE customers SET name = 'pwned'",
    "; INSERT INTO orders VALUES (99, 1, 1)",
    "; RENAME TABLE _test_x TO `{other}`.`moved`",
    "; CREATE TABLE `{other}`.`pwned` (id int)",
    "; CREATE USER '{user}'@'localhost'",
    "; ALTER TABLE _test_p EXCHANGE PARTITION p0 WITH TABLE orders_flat",
    "; SET SESSION sql_mode = 'NO_BACKSLASH_ESCAPES'",
    "; USE `{other}`",
    ", RENAME TO orders_gone",
    ", ADD COLUMN `seq` bigint DEFAULT (NEXTVAL(order_seq))",
    ", ADD CONSTRAINT `fk_prod` FOREIGN KEY (`id`) REFERENCES customers (`id`)",
    ", ADD CONSTRAINT `_test_fk` FOREIGN KEY (`id`) REFERENCES `_test_items` (`id`)",
    ", ENGINE=FEDERATED",
];

fn pick<'a>(rng: &mut StdRng, items: &[&'a str]) -> &'a str {
    items[rng.random_range(0..items.len())]
}

/// Text made of fragments and letters, `length` pieces long.
fn noise(rng: &mut StdRng, length: usize) -> String {
    let mut text = String::new();
    for _ in 0..length {
        if rng.random_bool(0.15) {
            text.push_str(pick(rng, PAYLOADS));
        } else {
            text.push_str(pick(rng, FRAGMENTS));
        }
    }
    text
}

/// A string literal: usually well formed (quotes doubled or escaped), sometimes raw.
fn literal(rng: &mut StdRng) -> String {
    let quote = if rng.random_bool(0.8) { '\'' } else { '"' };
    let length = rng.random_range(0..6);
    let body = noise(rng, length);
    let body = match rng.random_range(0..10) {
        0..=4 => body
            .replace('\\', "\\\\")
            .replace(quote, &format!("{quote}{quote}")),
        5..=8 => body
            .replace('\\', "\\\\")
            .replace(quote, &format!("\\{quote}")),
        _ => body,
    };
    format!("{quote}{body}{quote}")
}

/// A backticked column name: usually well formed, sometimes raw.
fn column(rng: &mut StdRng, index: usize) -> String {
    let mut name = format!("c{index}");
    if rng.random_bool(0.3) {
        let length = rng.random_range(1..3);
        name.push_str(&noise(rng, length));
    }
    if rng.random_bool(0.8) {
        name = name.replace('`', "``");
    }
    format!("`{name}`")
}

/// What goes between two tokens: whitespace, or a comment of any kind.
fn gap(rng: &mut StdRng) -> String {
    match rng.random_range(0..50) {
        0 => format!("/*{}*/", noise(rng, 2)),
        1 => format!("-- {}\n", noise(rng, 2)),
        2 => format!("#{}\n", noise(rng, 2)),
        3 => format!(
            "--{}{}\n",
            pick(rng, &["\u{1}", "\u{7f}", "\t", "\u{a0}", "\u{b}"]),
            noise(rng, 2)
        ),
        4 => format!("/*!{}*/", noise(rng, 2)),
        5 => format!(
            "/*M!{} {}*/",
            pick(rng, &["", "100000", "999999"]),
            noise(rng, 2)
        ),
        6 => pick(
            rng,
            &["\n", "\t", "\r\n", "\u{b}", "\u{c}", "\u{a0}", "\u{1}"],
        )
        .to_string(),
        7 => "/* plain */".to_string(),
        8 => "-- plain\n".to_string(),
        9 => "\n".to_string(),
        _ => " ".to_string(),
    }
}

/// One clause of legitimate shadow DDL around generated literals and names.
fn clause(rng: &mut StdRng, index: usize) -> String {
    let g = |rng: &mut StdRng| gap(rng);
    match rng.random_range(0..6) {
        0 => format!(
            "ADD COLUMN{}{} varchar(200){}DEFAULT{}{}",
            g(rng),
            column(rng, index),
            g(rng),
            g(rng),
            literal(rng)
        ),
        1 => format!("COMMENT{}{}", g(rng), literal(rng)),
        2 => format!(
            "ADD CONSTRAINT `ck{index}` CHECK ({}`v`{}<>{}{})",
            g(rng),
            g(rng),
            g(rng),
            literal(rng)
        ),
        3 => format!(
            "ADD COLUMN {} varchar(200) GENERATED ALWAYS AS (concat(`v`,{}{})) VIRTUAL",
            column(rng, index),
            g(rng),
            literal(rng)
        ),
        4 => format!(
            "CHANGE COLUMN `v` `v` varchar(200) NULL DEFAULT {}{}COMMENT {}",
            literal(rng),
            g(rng),
            literal(rng)
        ),
        _ => format!(
            "ADD COLUMN {} int{}COMMENT{}{}",
            column(rng, index),
            g(rng),
            g(rng),
            literal(rng)
        ),
    }
}

/// After `--`: control characters (a comment for the server), Unicode spaces (code for the
/// server), or plain whitespace.
fn after_dashes(rng: &mut StdRng) -> char {
    const UNICODE_SPACES: [char; 6] = [
        '\u{a0}', '\u{85}', '\u{2003}', '\u{2028}', '\u{3000}', '\u{feff}',
    ];
    const WHITESPACE: [char; 3] = [' ', '\t', '\n'];
    match rng.random_range(0..4) {
        0 => char::from(rng.random_range(1u8..0x20)),
        1 => '\u{7f}',
        2 => UNICODE_SPACES[rng.random_range(0..UNICODE_SPACES.len())],
        _ => WHITESPACE[rng.random_range(0..WHITESPACE.len())],
    }
}

/// A known shape of lexer disagreement carrying a payload, lightly mutated: what the server
/// reads as code, a careless lexer reads as a string or a comment.
fn smuggle(rng: &mut StdRng) -> String {
    let quote = pick(rng, &["'", "\"", "`"]);
    let payload = pick(rng, PAYLOADS);
    let tail = pick(rng, &["-- ", "#", "--\t"]);
    let text = match rng.random_range(0..3) {
        0 => {
            let version = match rng.random_range(0..4) {
                0 => String::new(),
                1 => format!("{:05}", rng.random_range(0..100_000)),
                2 => format!("{:06}", rng.random_range(0..1_000_000)),
                _ => "80000".into(),
            };
            let marker = pick(rng, &["!", "M!"]);
            format!("/*{marker}{version} {quote}x */ {payload} {tail}{quote} */\n")
        }
        1 => format!("--{} {quote}\n{payload} {tail}{quote}\n", after_dashes(rng)),
        _ => format!("'a\\{}' {payload} {tail}'\n", pick(rng, &["", "\\"])),
    };
    let mut chars: Vec<char> = text.chars().collect();
    if rng.random_bool(0.3) {
        let at = rng.random_range(0..=chars.len());
        let fragment: Vec<char> = pick(rng, FRAGMENTS).chars().collect();
        chars.splice(at..at, fragment);
    }
    if rng.random_bool(0.2) && !chars.is_empty() {
        let at = rng.random_range(0..chars.len());
        chars.remove(at);
    }
    chars.into_iter().collect()
}

/// One generated statement (with `{db}`, `{other}`, `{user}` to fill).
fn statement(rng: &mut StdRng) -> String {
    let target = match rng.random_range(0..20) {
        0 => "`{db}`.`_test_x`",
        1 => "_test_x",
        2 => "`_TEST_x`",
        3 => "orders",
        _ => "`_test_x`",
    };
    let mut sql = format!("ALTER{}TABLE{}{target}{}", gap(rng), gap(rng), gap(rng));
    let clauses = rng.random_range(1..4);
    // The ADD COLUMN ... CHANGE `v` combination stays valid for the server: one CHANGE at most.
    let mut changed_v = false;
    for index in 0..clauses {
        let mut next = clause(rng, index);
        if next.starts_with("CHANGE") {
            if changed_v {
                next = format!("COMMENT {}", literal(rng));
            }
            changed_v = true;
        }
        if index > 0 {
            sql.push(',');
            sql.push_str(&gap(rng));
        }
        sql.push_str(&next);
        if index + 1 < clauses && rng.random_bool(0.05) {
            sql.push(' ');
            sql.push_str(&smuggle(rng));
        }
    }
    if rng.random_bool(0.25) {
        sql.push(' ');
        sql.push_str(&smuggle(rng));
    }
    if rng.random_bool(0.1) {
        sql.push_str(pick(rng, PAYLOADS));
    }
    if rng.random_bool(0.2) {
        sql.push_str(&gap(rng));
    }
    sql
}
