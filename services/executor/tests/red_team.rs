//! The red-team suite: statements an attacker would hand the executor, each with the
//! verdict the safety guard must give (`red_team/candidates.toml`), and proof on a real MariaDB
//! that what the guard accepts changes nothing outside the task's shadows.
//!
//! - `every_candidate_gets_its_expected_verdict`: the guard alone, no server;
//! - `accepted_candidates_change_only_the_shadows`: every candidate the guard accepts runs on a
//!   scratch database full of canaries (see `support`), on a session like the executor's
//!   (pinned `sql_mode`, multi-statements on as sqlx always has them); the server must run it
//!   as exactly one statement, nothing outside the named shadows may change, and no shadow may
//!   come to reference production. Legitimate DDL (`runs = true`) must also succeed.
//! - `the_canaries_see_what_the_attacks_do`: the oracle's own test. The candidates marked
//!   `harms = true` run without the guard and must be caught, so a green run above means
//!   something.

mod support;

use std::collections::BTreeSet;

use serde::Deserialize;
use shadowsync_executor::guard::SafetyGuard;
use shadowsync_schema::ShadowNaming;
use support::{PREFIX, SHADOWS, Scratch};

#[derive(Debug, Deserialize)]
struct Candidates {
    candidate: Vec<Candidate>,
}

#[derive(Debug, Deserialize)]
struct Candidate {
    class: String,
    sql: String,
    verdict: Verdict,
    #[serde(default)]
    runs: bool,
    #[serde(default)]
    harms: bool,
    why: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
enum Verdict {
    #[serde(rename = "ACCEPT")]
    Accept,
    #[serde(rename = "REFUSE")]
    Refuse,
}

fn candidates() -> Vec<Candidate> {
    let text = include_str!("red_team/candidates.toml");
    toml::from_str::<Candidates>(text)
        .expect("red_team/candidates.toml parses")
        .candidate
}

/// The guard as the executor builds it for a task: its shadows and its naming rule.
fn guard(database: &str) -> SafetyGuard {
    let naming = ShadowNaming::prefix(Some(PREFIX)).expect("a valid prefix");
    SafetyGuard::new(database, SHADOWS.iter().map(|name| name.to_string())).with_naming(naming)
}

/// The candidate as the report shows it: control characters visible.
fn shown(sql: &str) -> String {
    sql.escape_debug().to_string()
}

#[test]
fn every_candidate_gets_its_expected_verdict() {
    let candidates = candidates();
    assert!(
        candidates.len() >= 80,
        "only {} candidates",
        candidates.len()
    );
    let classes: BTreeSet<&str> = candidates.iter().map(|c| c.class.as_str()).collect();
    for class in [
        "legitimate",
        "executable-comment",
        "comment",
        "escape",
        "rename",
        "partition",
        "engine",
        "multi-statement",
        "sequence",
        "foreign-key",
        "cross-database",
        "case",
        "create",
    ] {
        assert!(classes.contains(class), "no candidate of class {class}");
    }
    let (database, other) = ("ssrt_verdicts", "ssrt_verdicts_other");
    let guard = guard(database);
    let mut wrong = Vec::new();
    for (index, candidate) in candidates.iter().enumerate() {
        let sql = candidate
            .sql
            .replace("{db}", database)
            .replace("{other}", other)
            .replace("{user}", "ssrt_user");
        let verdict = guard.check(&sql);
        let actual = if verdict.is_ok() {
            Verdict::Accept
        } else {
            Verdict::Refuse
        };
        if actual != candidate.verdict {
            wrong.push(format!(
                "#{index} [{}] expected {:?}, got {verdict:?}: {}\n    ({})",
                candidate.class,
                candidate.verdict,
                shown(&sql),
                candidate.why
            ));
        }
    }
    assert!(
        wrong.is_empty(),
        "{} of {} candidates got the wrong verdict:\n{}",
        wrong.len(),
        candidates.len(),
        wrong.join("\n")
    );
}

#[tokio::test]
async fn accepted_candidates_change_only_the_shadows() {
    let mut scratch = Scratch::create("accept").await;
    let mut failures = Vec::new();
    let mut executed = 0;
    for (index, candidate) in candidates().iter().enumerate() {
        let sql = scratch.fill(&candidate.sql);
        if guard(&scratch.database).check(&sql).is_err() {
            continue;
        }
        executed += 1;
        let (_, problems) = run_and_judge(&mut scratch, &sql, candidate.runs).await;
        if !problems.is_empty() {
            failures.push(format!(
                "#{index} [{}] {}\n    {}",
                candidate.class,
                shown(&sql),
                problems.join("\n    ")
            ));
            // What it damaged could hide what the next candidate does: start a new world.
            scratch.drop_all().await;
            scratch = Scratch::create("accept").await;
        }
    }
    scratch.drop_all().await;
    assert!(executed > 0, "the guard accepted no candidate");
    assert!(
        failures.is_empty(),
        "{} of {executed} accepted candidates did what an accepted statement must not:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[tokio::test]
async fn the_canaries_see_what_the_attacks_do() {
    let harmful: Vec<Candidate> = candidates().into_iter().filter(|c| c.harms).collect();
    assert!(
        harmful.len() >= 10,
        "only {} harmful candidates",
        harmful.len()
    );
    let mut unseen = Vec::new();
    for candidate in &harmful {
        // Each attack gets an intact world: an earlier one may have dropped its canary.
        let mut scratch = Scratch::create("oracle").await;
        let sql = scratch.fill(&candidate.sql);
        let (outcome, problems) = run_and_judge(&mut scratch, &sql, false).await;
        if problems.is_empty() {
            unseen.push(format!("{}\n    ({outcome:?})", shown(&sql)));
        }
        scratch.drop_all().await;
    }
    assert!(
        unseen.is_empty(),
        "run without the guard, these attacks left no trace the suite could see:\n{}",
        unseen.join("\n")
    );
}

/// Runs `sql` on fresh shadows: what the server did, and everything wrong with it.
async fn run_and_judge(
    scratch: &mut Scratch,
    sql: &str,
    must_succeed: bool,
) -> (support::Outcome, Vec<String>) {
    scratch.reset_shadows().await;
    let before = scratch.snapshot().await;
    let outcome = scratch.execute(sql).await;
    let after = scratch.snapshot().await;
    let mut problems = scratch.violations(&before, &after, &SHADOWS, sql).await;
    if outcome.split() {
        problems.push(format!(
            "the server ran it as {} statement(s){}",
            outcome.results.max(2),
            outcome
                .error
                .as_ref()
                .map(|e| format!(", the last failing: {e}"))
                .unwrap_or_default()
        ));
    }
    if must_succeed && let Some(error) = &outcome.error {
        problems.push(format!("legitimate DDL failed on the server: {error}"));
    }
    scratch.restore_session().await;
    (outcome, problems)
}
