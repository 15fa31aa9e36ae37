//! `shadowctl guard` as a process: the JSON-lines verdicts, the executor's own check behind
//! them, and the three exit statuses (0 all accepted, 1 some refused, 2 bad input).

use std::io::Write as _;
use std::process::{Command, Output, Stdio};

use shadowsync_executor::guard::SafetyGuard;

const ACCEPTED: &str = "ALTER TABLE `_test_orders` ADD COLUMN `note` varchar(20) DEFAULT 'it''s'";
const PRODUCTION: &str = "ALTER TABLE `orders` ADD COLUMN `note` varchar(20)";
const SECOND_STATEMENT: &str = "ALTER TABLE `_test_orders` COMMENT 'x'; DROP TABLE `orders`";

/// Runs `shadowctl guard <args>` with `stdin` as its standard input.
fn guard(args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_shadowctl"))
        .arg("guard")
        .args(args)
        .env_remove("SHADOWSYNC_TOKEN")
        .env_remove("SHADOWSYNC_ENDPOINT")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run shadowctl");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin.as_bytes())
        .expect("write stdin");
    child.wait_with_output().expect("shadowctl ends")
}

fn lines(output: &Output) -> Vec<serde_json::Value> {
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{line}: {e}")))
        .collect()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

const SHOP: [&str; 4] = [
    "--database",
    "shop",
    "--shadows",
    "_test_orders,_test_customers",
];

#[test]
fn every_statement_accepted_exits_0_with_one_line_each_and_no_reason() {
    let input = serde_json::json!([
        ACCEPTED,
        "ALTER TABLE `shop`.`_test_customers` ENGINE=InnoDB"
    ]);
    let output = guard(&SHOP, &input.to_string());
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert_eq!(
        lines(&output),
        vec![
            serde_json::json!({"index": 0, "verdict": "ACCEPT"}),
            serde_json::json!({"index": 1, "verdict": "ACCEPT"}),
        ]
    );
    assert!(output.stderr.is_empty(), "{}", stderr(&output));
}

#[test]
fn one_refusal_exits_1_and_the_verdicts_are_the_executors_own() {
    let statements = [ACCEPTED, PRODUCTION, SECOND_STATEMENT];
    let output = guard(&SHOP, &serde_json::json!(statements).to_string());
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    let verdicts = lines(&output);
    assert_eq!(verdicts.len(), statements.len());
    let executor = SafetyGuard::new("shop", ["_test_orders".into(), "_test_customers".into()]);
    for (index, (verdict, statement)) in verdicts.iter().zip(statements).enumerate() {
        assert_eq!(verdict["index"], index, "{verdict}");
        match executor.check(statement) {
            Ok(()) => {
                assert_eq!(verdict["verdict"], "ACCEPT", "{statement}");
                assert!(verdict.get("reason").is_none(), "{verdict}");
            }
            Err(refusal) => {
                assert_eq!(verdict["verdict"], "REFUSE", "{statement}");
                assert_eq!(verdict["reason"], refusal.reason(), "{statement}");
                assert!(!refusal.reason().is_empty());
            }
        }
    }
    assert_eq!(verdicts[0]["verdict"], "ACCEPT");
    assert_eq!(verdicts[1]["verdict"], "REFUSE");
    assert!(
        verdicts[1]["reason"]
            .as_str()
            .is_some_and(|reason| reason.contains("orders")),
        "the reason names the table: {}",
        verdicts[1]
    );
    assert_eq!(verdicts[2]["verdict"], "REFUSE");
}

#[test]
fn the_lines_keep_the_documented_field_order() {
    let output = guard(&SHOP, &serde_json::json!([PRODUCTION]).to_string());
    let line = String::from_utf8_lossy(&output.stdout);
    assert!(
        line.starts_with("{\"index\":0,\"verdict\":\"REFUSE\",\"reason\":\""),
        "{line}"
    );
}

#[test]
fn the_naming_rule_lets_foreign_keys_reference_any_shadow() {
    let statement = serde_json::json!([
        "ALTER TABLE `_test_orders` ADD CONSTRAINT `_test_fk` FOREIGN KEY (`item`) REFERENCES `_test_items` (`id`)"
    ])
    .to_string();
    let without = guard(&SHOP, &statement);
    assert_eq!(without.status.code(), Some(1), "{}", stderr(&without));
    let mut with_prefix = SHOP.to_vec();
    with_prefix.extend(["--prefix", "_test_"]);
    let with = guard(&with_prefix, &statement);
    assert_eq!(with.status.code(), Some(0), "{}", stderr(&with));
    let mut with_suffix = SHOP.to_vec();
    with_suffix.extend(["--suffix", "_t"]);
    assert_eq!(guard(&with_suffix, &statement).status.code(), Some(1));
}

#[test]
fn bad_input_exits_2_naming_what_is_wrong_and_prints_no_verdict() {
    for (stdin, expected) in [
        ("ALTER TABLE `_test_orders` ENGINE=InnoDB", "not JSON"),
        ("{\"statements\": []}", "array of strings"),
        (
            "[\"ALTER TABLE `_test_orders` ENGINE=InnoDB\", null]",
            "element 1 is null",
        ),
    ] {
        let output = guard(&SHOP, stdin);
        assert_eq!(
            output.status.code(),
            Some(2),
            "{stdin}: {}",
            stderr(&output)
        );
        assert!(output.stdout.is_empty(), "{stdin}");
        assert!(
            stderr(&output).contains(expected),
            "{stdin}: {}",
            stderr(&output)
        );
    }
    // Missing flags are clap's usage errors, also exit status 2.
    for args in [
        &["--database", "shop"][..],
        &["--shadows", "_test_orders"][..],
        &["--database", "", "--shadows", "_test_orders"][..],
    ] {
        let output = guard(args, "[]");
        assert_eq!(
            output.status.code(),
            Some(2),
            "{args:?}: {}",
            stderr(&output)
        );
        assert!(output.stdout.is_empty(), "{args:?}");
    }
}

#[test]
fn the_help_shows_the_format_the_exit_statuses_and_an_example() {
    let output = Command::new(env!("CARGO_BIN_EXE_shadowctl"))
        .args(["guard", "--help"])
        .output()
        .expect("run shadowctl");
    assert!(output.status.success());
    let help = String::from_utf8_lossy(&output.stdout);
    for expected in [
        "\"verdict\":\"ACCEPT\"",
        "no \"reason\"",
        "Exit status",
        "Example",
    ] {
        assert!(help.contains(expected), "{expected}: {help}");
    }
}

/// The README's example (a `shell` block, which the quickstart test does not run because it
/// pipes): its statements on stdin, its flags, exit status 0.
#[test]
fn the_readme_example_runs_as_written() {
    let readme = include_str!("../../../README.md");
    let example = readme
        .split("```shell\n")
        .nth(1)
        .and_then(|rest| rest.split("```").next())
        .expect("README has the shadowctl guard example");
    let (echo, command) = example
        .split_once("|\n")
        .expect("echo … | shadowctl guard …");
    let statements = echo
        .trim()
        .strip_prefix("echo '")
        .and_then(|rest| rest.strip_suffix('\''))
        .expect("echo '<json>'");
    let args: Vec<&str> = command.split_whitespace().collect();
    assert_eq!(args[..2], ["shadowctl", "guard"], "{command}");
    let output = guard(&args[2..], statements);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert_eq!(lines(&output).len(), 1);
}
