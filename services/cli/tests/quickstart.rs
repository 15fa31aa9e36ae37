//! The README's "Run it" section, run as written: every command in its `sh` blocks, in order,
//! against an embedded server and the local MariaDB. Only the placeholders a reader fills in
//! by hand (ANALYSIS_ID, TASK_ID) and the database name (`shop`, made unique per run so
//! concurrent runs cannot meet) are substituted. A command the runner does not know fails the
//! test, so the README cannot drift from what works.

mod support;

use std::path::Path;
use std::process::{Command, Output};

use support::*;

const README: &str = include_str!("../../../README.md");

#[test]
fn the_readme_quickstart_works_as_written() {
    let commands = quickstart_commands(README);
    assert!(
        commands
            .iter()
            .any(|c| c.first().is_some_and(|w| w == "shadowctl")),
        "no shadowctl commands found in the README"
    );
    let database = format!("ss_quickstart_{}", std::process::id());
    let server = Embedded::start();
    wait_healthy(server.data_dir());
    let mut run = Run {
        data_dir: server.data_dir(),
        database: &database,
        token: None,
        analysis_id: None,
        task_id: None,
        outputs: Vec::new(),
    };
    for command in &commands {
        run.execute(command);
    }

    let shown = run.shadowctl(&["--output", "json", "task", "show", run.task()]);
    let task: serde_json::Value = serde_json::from_slice(&shown.stdout).expect("task json");
    assert_eq!(
        task["task"]["status"], "TASK_STATUS_EXECUTION_SUCCEEDED",
        "{task}"
    );
    let process = run.output_of(&["task", "show", "TASK_ID", "--process"]);
    assert!(
        process.contains("APPROVED") && process.contains("bob"),
        "{process}"
    );
    let logs = run.output_of(&["task", "logs", "TASK_ID", "--follow"]);
    assert!(logs.contains("EXECUTION_SUCCEEDED"), "{logs}");

    // The quickstart's promise: orders' shadow now matches and references customers' shadow
    // (a shadow never references a production table), the skipped notes has none (and `plan`,
    // which syncs everything, proposes only that).
    let shadow = mariadb_query(&format!("SHOW CREATE TABLE `{database}`.`_test_orders`"));
    assert!(
        shadow.contains("`total` decimal(10,2) NOT NULL DEFAULT 0.00")
            && shadow.contains("FOREIGN KEY (`customer_id`) REFERENCES `_test_customers` (`id`)"),
        "{shadow}"
    );
    let tables = mariadb_query(&format!("SHOW TABLES FROM `{database}`"));
    assert!(
        tables.contains("_test_customers") && !tables.contains("_test_notes"),
        "{tables}"
    );
    let plan = run.output_of(&["plan"]);
    assert!(
        plan.starts_with("CREATE TABLE `_test_notes`") && !plan.contains("customers"),
        "{plan}"
    );
    mariadb(&format!("DROP DATABASE `{database}`"));
}

struct Run<'a> {
    data_dir: &'a Path,
    database: &'a str,
    token: Option<String>,
    analysis_id: Option<String>,
    task_id: Option<String>,
    /// Each command as written in the README, with what it printed.
    outputs: Vec<(Vec<String>, String)>,
}

impl Run<'_> {
    fn execute(&mut self, words: &[String]) {
        let words: Vec<&str> = words.iter().map(String::as_str).collect();
        match words.as_slice() {
            // The server is this test's embedded one.
            [
                "cargo",
                "run",
                "--release",
                "--bin",
                "shadowsync",
                "--",
                "serve",
                "all",
            ] => {}
            ["alias", alias] => assert!(alias.starts_with("shadowctl="), "{alias}"),
            ["mariadb", "-uroot", "-e", sql] => mariadb(&sql.replace("shop", self.database)),
            ["unset", "SHADOWSYNC_TOKEN"] => self.token = None,
            ["export", assignment, rest @ ..] if *assignment == "SHADOWSYNC_TOKEN=$(shadowctl" => {
                let mut inner = vec!["shadowctl"];
                inner.extend(rest.iter().map(|w| w.trim_end_matches(')')));
                let output = self.run_shadowctl(&inner);
                self.token = Some(String::from_utf8_lossy(&output.stdout).trim().to_string());
            }
            ["shadowctl", ..] => {
                let output = self.run_shadowctl(&words);
                self.capture(&words, &stdout(&output));
            }
            other => panic!("a README command this test does not know how to run: {other:?}"),
        }
    }

    fn run_shadowctl(&self, words: &[&str]) -> Output {
        let args: Vec<String> = words[1..].iter().map(|w| self.substitute(w)).collect();
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let output = self.shadowctl(&args);
        assert!(
            output.status.success(),
            "`{}` failed:\n{}{}",
            words.join(" "),
            stdout(&output),
            String::from_utf8_lossy(&output.stderr)
        );
        output
    }

    fn substitute(&self, word: &str) -> String {
        match word {
            "ANALYSIS_ID" => self
                .analysis_id
                .clone()
                .expect("analysis started before use"),
            "TASK_ID" => self.task_id.clone().expect("task submitted before use"),
            _ => word.replace("shop", self.database),
        }
    }

    /// Picks up the ids a reader would copy from the output.
    fn capture(&mut self, words: &[&str], printed: &str) {
        match words {
            ["shadowctl", "analysis", "start", ..] => {
                let first = printed.lines().next().unwrap_or_default();
                let mut fields = first.split_whitespace();
                assert_eq!(fields.next(), Some("analysis"), "{printed}");
                self.analysis_id = fields.next().map(str::to_string);
            }
            ["shadowctl", "task", "submit", ..] => {
                let id = printed
                    .lines()
                    .find_map(|line| line.strip_prefix("id "))
                    .map(|id| id.trim().to_string());
                assert!(id.is_some(), "{printed}");
                self.task_id = id;
            }
            _ => {}
        }
        self.outputs.push((
            words.iter().map(|w| w.to_string()).collect(),
            printed.to_string(),
        ));
    }

    fn shadowctl(&self, args: &[&str]) -> Output {
        let mut command = Command::new(env!("CARGO_BIN_EXE_shadowctl"));
        command
            .arg("--data-dir")
            .arg(self.data_dir)
            .args(args)
            .env_remove("SHADOWSYNC_TOKEN")
            .env_remove("SHADOWSYNC_ENDPOINT");
        if let Some(token) = &self.token {
            command.env("SHADOWSYNC_TOKEN", token);
        }
        command.output().expect("run shadowctl")
    }

    fn task(&self) -> &str {
        self.task_id.as_deref().expect("a task was submitted")
    }

    /// What the README command starting with `prefix` (after `shadowctl`) printed.
    fn output_of(&self, prefix: &[&str]) -> &str {
        self.outputs
            .iter()
            .find(|(words, _)| words.len() > prefix.len() && words[1..=prefix.len()] == prefix[..])
            .map(|(_, printed)| printed.as_str())
            .unwrap_or_else(|| panic!("the README no longer runs shadowctl {prefix:?}"))
    }
}

/// The commands of every `sh` block in the "Run it" section, split into words as a shell
/// would: quotes group (and may span lines), a backslash-newline continues, `#` starts a
/// comment.
fn quickstart_commands(readme: &str) -> Vec<Vec<String>> {
    let section = readme
        .split("\n## ")
        .find(|s| s.starts_with("Run it"))
        .expect("README has a Run it section");
    let mut commands = Vec::new();
    let mut blocks = section.split("```");
    while let (Some(_prose), Some(code)) = (blocks.next(), blocks.next()) {
        if let Some(script) = code.strip_prefix("sh\n") {
            commands.extend(split_words(script));
        }
    }
    commands
}

fn split_words(script: &str) -> Vec<Vec<String>> {
    let mut commands = Vec::new();
    let mut words: Vec<String> = Vec::new();
    let mut word: Option<String> = None;
    let mut quote: Option<char> = None;
    let mut chars = script.chars().peekable();
    while let Some(c) = chars.next() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), c) => word.get_or_insert_default().push(c),
            (None, '"' | '\'') => {
                quote = Some(c);
                word.get_or_insert_default();
            }
            (None, '\\') if chars.peek() == Some(&'\n') => {
                chars.next();
            }
            (None, '#') if word.is_none() => {
                while chars.peek().is_some_and(|&c| c != '\n') {
                    chars.next();
                }
            }
            (None, ' ' | '\t' | '\n') => {
                words.extend(word.take());
                if c == '\n' && !words.is_empty() {
                    commands.push(std::mem::take(&mut words));
                }
            }
            (None, c) => word.get_or_insert_default().push(c),
        }
    }
    words.extend(word.take());
    if !words.is_empty() {
        commands.push(words);
    }
    commands
}

#[test]
fn words_split_like_a_shell() {
    let commands = split_words("a b \"c d\" # note\nx='y z' \\\n  w\nm -e \"1;\n 2\"\n");
    assert_eq!(
        commands,
        vec![
            vec!["a", "b", "c d"],
            vec!["x=y z", "w"],
            vec!["m", "-e", "1;\n 2"],
        ]
    );
}
